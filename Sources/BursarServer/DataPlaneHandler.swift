import BursarWire
import Logging
import NIOCore
import Prometheus
import Synchronization

/// Serves one data-plane connection: decodes frames (done by the `FrameReader` before it), hands
/// them to the engine, writes answers in completion order, and on bad input answers every frame
/// already accepted before sending one ERROR and closing.
///
/// It also enforces the connection's share of `ConnectionLimits` (SPEC 15.1): the in-flight
/// bounds (a CHECK over them is answered `overloaded` at once; a SETTLE or RELEASE only at twice
/// them), the unknown-digest throttle, the idle and frame timeouts, and back-pressure: while the
/// channel is not writable (the client is not reading its answers) it stops reading, and closes
/// the connection if that lasts longer than the write timeout.
final class DataPlaneHandler: ChannelDuplexHandler {
    typealias InboundIn = Frame
    typealias OutboundIn = Frame
    typealias OutboundOut = Frame

    private let engine: DecisionEngine
    private let connectionStats: ConnectionStats
    private let limits: ConnectionLimits
    private let partialFrame: PartialFrameClock
    private let logger: Logger
    private var inFlight = 0
    private var pendingError: ProtocolError?
    private var inputClosed = false
    private var closed = false
    private var flushScheduled = false
    /// Admissions answered after the client closed its side. A client that only half-closed
    /// reads them; one that closed entirely cannot, and its kernel answers them with a reset.
    /// Until the connection is closed they may be orphans (see `closeIfDone`).
    private var unconfirmed: [ReservationID] = []

    /// How long a connection whose input closed stays open after its last answer, so that a
    /// reset (the client had closed entirely) can reach it and the admissions be released.
    static let resetWindow: TimeAmount = .milliseconds(250)
    /// The last frame read or answer completed (the idle clock).
    private var lastActivity = NIODeadline.now()
    /// Since when the channel has not been writable; nil while it is.
    private var unwritableSince: NIODeadline?
    /// A `read` held back while the channel was not writable.
    private var readHeld = false
    private var ticker: RepeatedTask?
    private var unknownKeys = UnknownKeyWindow(start: .now())

    init(engine: DecisionEngine, connectionStats: ConnectionStats, limits: ConnectionLimits, partialFrame: PartialFrameClock, logger: Logger) {
        self.engine = engine
        self.connectionStats = connectionStats
        self.limits = limits
        self.partialFrame = partialFrame
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        connectionStats.open.add(1, ordering: .relaxed)
        lastActivity = .now()
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let interval = Self.tickInterval(limits)
        ticker = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            let (handler, context) = bound.value
            handler.tick(context: context)
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        // Closed by the peer (a reset) before we closed it: nobody read these answers.
        for reservation in unconfirmed { engine.releaseOrphan(reservation) }
        unconfirmed.removeAll()
        ticker?.cancel()
        ticker = nil
        connectionStats.open.subtract(1, ordering: .relaxed)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard pendingError == nil else { return }
        let id = frame.requestID
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        let now = NIODeadline.now()
        lastActivity = now
        switch frame.body {
        case .ping:
            context.writeAndFlush(wrapOutboundOut(Frame(requestID: id, body: .pong)), promise: nil)
        case .check(let request):
            if limits.maxUnknownKeysPerMinute > 0,
               unknownKeys.count(now: now) > limits.maxUnknownKeysPerMinute,
               !engine.isDigestCached(request.digest)
            {
                var result = CheckResult.deny(.keyLookupsThrottled)
                result.retryAfterMs = UInt32(clamping: unknownKeys.msToNextWindow(now: now))
                engine.stats.decisions[Int(DenyReason.keyLookupsThrottled.rawValue)].increment()
                connectionStats.throttledLookups.increment()
                write(Frame(requestID: id, body: .checkResult(result)), context: context)
                return
            }
            guard admit(headroom: 1) else {
                return refused(.checkResult(engine.overloaded(.bound)), id: id, kind: 0, context: context)
            }
            engine.check(request, on: loop) { result in
                let (handler, context) = bound.value
                if handler.closed {
                    if result.allowed { handler.engine.releaseOrphan(result.reservation) }
                } else {
                    if handler.inputClosed && result.allowed { handler.unconfirmed.append(result.reservation) }
                    // An admission is confirmed delivered once its bytes are in the socket
                    // (`FrameWriter` reports it to `handedOver`).
                    handler.write(Frame(requestID: id, body: .checkResult(result)), context: context)
                    handler.engine.metrics?.checkDuration.record(.nanoseconds((NIODeadline.now() - now).nanoseconds))
                }
                if result.reason == .unknownKey { handler.unknownKeys.record(now: .now()) }
                handler.completed(context: context)
            }
        case .settle(let request):
            guard admit(headroom: 2) else {
                return refused(.settleResult(ReservationResult(status: .overloaded)), id: id, kind: 1, context: context)
            }
            let started = now
            let latency = engine.metrics?.settleDuration
            engine.settle(request, on: loop) { result in
                let (handler, context) = bound.value
                handler.answered(.settleResult(result), id: id, started: started, latency: latency, context: context)
            }
        case .release(let request):
            guard admit(headroom: 2) else {
                return refused(.releaseResult(ReservationResult(status: .overloaded)), id: id, kind: 2, context: context)
            }
            let started = now
            let latency = engine.metrics?.releaseDuration
            engine.release(request, on: loop) { result in
                let (handler, context) = bound.value
                handler.answered(.releaseResult(result), id: id, started: started, latency: latency, context: context)
            }
        case .checkResult, .settleResult, .releaseResult, .pong, .error:
            // The decoder refuses answer types from a client; this is defence in depth.
            errorCaught(context: context, error: ProtocolError(.unexpectedFrameType, "answer frames are not accepted by the server", requestID: id))
        }
    }

    /// Writes the answer to a SETTLE or RELEASE and records its latency.
    private func answered(
        _ body: Frame.Body, id: UInt64, started: NIODeadline, latency: DurationHistogram?,
        context: ChannelHandlerContext
    ) {
        write(Frame(requestID: id, body: body), context: context)
        latency?.record(.nanoseconds((NIODeadline.now() - started).nanoseconds))
        completed(context: context)
    }

    private func write(_ frame: Frame, context: ChannelHandlerContext) {
        guard !closed else { return }
        context.write(wrapOutboundOut(frame), promise: nil)
        // Answers completed by one Redis round trip arrive as consecutive loop tasks: one flush
        // scheduled behind them writes them all in one syscall.
        if !flushScheduled {
            flushScheduled = true
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.execute {
                let (handler, context) = bound.value
                handler.flushScheduled = false
                if !handler.closed { context.flush() }
            }
        }
    }

    /// What became of the admissions among answers `FrameWriter` handed to the channel:
    /// `written`, their bytes are in the socket, and Redis is told they were delivered (so no
    /// sweep voids them, SPEC §13.7); else the connection closed first, and they are voided.
    /// Confirmed when merely queued, a bursard killed before the flush would leave admissions no
    /// client saw and no sweep gives back.
    func handedOver(_ admissions: [CheckResult], written: Bool) {
        if written {
            for result in admissions { engine.delivered(result) }
        } else {
            for result in admissions { orphan(result.reservation) }
        }
    }

    private func orphan(_ reservation: ReservationID) {
        // Unwritten admissions are reported before this handler's `channelInactive`, which
        // releases what is left in `unconfirmed`: released here, not twice.
        unconfirmed.removeAll { $0 == reservation }
        engine.releaseOrphan(reservation)
    }

    /// Counts a request in flight unless that would pass `headroom` times the connection's or
    /// the server's bound; false if it would (the request is then answered `overloaded`).
    private func admit(headroom: Int) -> Bool {
        guard inFlight < limits.maxInFlightPerConnection * headroom else { return false }
        let total = connectionStats.inFlight.wrappingAdd(1, ordering: .relaxed).newValue
        guard total <= limits.maxInFlight * headroom else {
            connectionStats.inFlight.wrappingSubtract(1, ordering: .relaxed)
            return false
        }
        inFlight += 1
        return true
    }

    /// Answers a request over the in-flight bound at once: nothing was sent to the engine.
    private func refused(_ body: Frame.Body, id: UInt64, kind: Int, context: ChannelHandlerContext) {
        connectionStats.overloaded[kind].increment()
        switch body {
        case .checkResult(let result): engine.stats.decisions[Int(result.reason.rawValue)].increment()
        case .settleResult(let result), .releaseResult(let result): engine.stats.settlements[Int(result.status.rawValue)].increment()
        default: break
        }
        write(Frame(requestID: id, body: body), context: context)
    }

    private func completed(context: ChannelHandlerContext) {
        inFlight -= 1
        connectionStats.inFlight.wrappingSubtract(1, ordering: .relaxed)
        lastActivity = .now()
        closeIfDone(context: context)
    }

    // MARK: Back-pressure and timeouts

    /// Holds back reading while answers cannot be written: a client that does not read its
    /// answers stops being read, so what bursard queues for it stays under the write buffer's
    /// high watermark plus its in-flight bound.
    func read(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            context.read()
        } else {
            readHeld = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            unwritableSince = nil
            // A frame cut off by the pause was not the client's delay: its clock starts again.
            if partialFrame.since != nil { partialFrame.since = .now() }
            if readHeld {
                readHeld = false
                context.read()
            }
        } else if unwritableSince == nil {
            unwritableSince = .now()
        }
        context.fireChannelWritabilityChanged()
    }

    /// How often a connection checks its timeouts: a quarter of the shortest, 10 ms … 1 s.
    static func tickInterval(_ limits: ConnectionLimits) -> TimeAmount {
        let timeouts = [limits.idleTimeout, limits.frameTimeout, limits.writeTimeout].filter { $0 > .zero }
        let shortest = timeouts.min() ?? .seconds(4)
        let quarter = (shortest.components.seconds * 1_000_000_000 + shortest.components.attoseconds / 1_000_000_000) / 4
        return .nanoseconds(min(max(quarter, 10_000_000), 1_000_000_000))
    }

    private func tick(context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        let now = NIODeadline.now()
        // Checked even after an ERROR was queued: a client that does not read would keep it (and
        // the connection) forever.
        if let since = unwritableSince, limits.writeTimeout > .zero, now - since >= Self.amount(limits.writeTimeout) {
            // Nothing can be written, not even an ERROR.
            connectionStats.writeTimeouts.increment()
            logger.debug("connection closed: answers unread for the write timeout")
            closed = true
            context.close(promise: nil)
            return
        }
        // While answers cannot be written the connection is neither idle nor slow: it is not read.
        guard !closed, pendingError == nil, unwritableSince == nil else { return }
        if let since = partialFrame.since, limits.frameTimeout > .zero, now - since >= Self.amount(limits.frameTimeout) {
            errorCaught(context: context, error: ProtocolError(
                .frameTimeout, "frame not completed within \(Self.amount(limits.frameTimeout).nanoseconds / 1_000_000) ms of its first byte"))
        } else if limits.idleTimeout > .zero, inFlight == 0, partialFrame.since == nil, now - lastActivity >= Self.amount(limits.idleTimeout) {
            errorCaught(context: context, error: ProtocolError(
                .idleTimeout, "no frame for \(Self.amount(limits.idleTimeout).nanoseconds / 1_000_000) ms"))
        }
    }

    private static func amount(_ duration: Duration) -> TimeAmount {
        .nanoseconds(duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }

    private func closeIfDone(context: ChannelHandlerContext) {
        guard inFlight == 0, !closed else { return }
        if let error = pendingError {
            closed = true
            let frame = Frame(requestID: error.requestID, body: .error(ErrorFrame(code: error.code, message: error.message)))
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(frame)).whenComplete { _ in bound.value.close(promise: nil) }
        } else if inputClosed {
            context.flush()
            guard !unconfirmed.isEmpty else {
                closed = true
                context.close(promise: nil)
                return
            }
            // Admissions went out after the client's FIN: give a reset time to come back.
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: Self.resetWindow) {
                let (handler, context) = bound.value
                guard !handler.closed else { return }
                handler.unconfirmed.removeAll()  // no reset: the client read them
                handler.closed = true
                context.close(promise: nil)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? ProtocolError {
            guard pendingError == nil else { return }
            connectionStats.protocolErrors[Int(error.code.rawValue)].increment()
            logger.debug("protocol error", metadata: ["code": "\(error.code)", "detail": "\(error.message)"])
            pendingError = error
            closeIfDone(context: context)
        } else {
            logger.debug("connection error", metadata: ["error": "\(error)"])
            closed = true
            context.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .some(ChannelEvent.inputClosed) = event as? ChannelEvent {
            inputClosed = true
            closeIfDone(context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// `unknown_key` answers on one connection over a rolling minute: a two-bucket sliding estimate
/// (this minute's count plus last minute's, weighted by how much of it the rolling minute still
/// covers). Integer arithmetic only.
struct UnknownKeyWindow {
    static let window: Int64 = 60_000_000_000

    private var start: NIODeadline
    private var current = 0
    private var previous = 0

    init(start: NIODeadline) { self.start = start }

    mutating func record(now: NIODeadline) {
        roll(now)
        current += 1
    }

    /// The estimated count over the minute ending `now`.
    mutating func count(now: NIODeadline) -> Int {
        roll(now)
        let windowMs = Self.window / 1_000_000
        let intoMs = min(windowMs, (now - start).nanoseconds / 1_000_000)
        return Int(Int64(min(previous, 1 << 40)) * (windowMs - intoMs) / windowMs) + current
    }

    /// Milliseconds until this window ends (when the estimate next falls).
    mutating func msToNextWindow(now: NIODeadline) -> Int64 {
        roll(now)
        return max(1, (Self.window - (now - start).nanoseconds) / 1_000_000)
    }

    private mutating func roll(_ now: NIODeadline) {
        let elapsed = (now - start).nanoseconds
        if elapsed >= 2 * Self.window {
            previous = 0
            current = 0
            start = now
        } else if elapsed >= Self.window {
            previous = current
            current = 0
            start = start + .nanoseconds(Self.window)
        }
    }
}
