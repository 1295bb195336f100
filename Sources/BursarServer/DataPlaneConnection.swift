import BursarWire
import Logging
import NIOCore
import Prometheus
import Synchronization

/// One data-plane connection, as the only handler of its channel: it reads the request frames
/// from the bytes that arrive, hands them to the engine, encodes the answers in completion order
/// into one buffer per flush, and follows the connection's life in a `ConnectionStateMachine`.
/// No frame travels through the pipeline (nothing boxed, no handler-to-handler calls per frame).
///
/// What it does, beyond that:
/// - **Bad input**: every frame already accepted is answered, then one ERROR, then close. When
///   the input ends, what is left must be whole frames; an unfinished frame is `truncated`.
/// - **Bounds** (SPEC 15.1): the in-flight bounds (a CHECK over them is answered `overloaded` at
///   once; a SETTLE or RELEASE only at twice them), the unknown-digest throttle, the idle and
///   frame timeouts, and back-pressure: while the channel is not writable (the client is not
///   reading its answers) it stops reading, and closes if that lasts the write timeout.
/// - **Delivery**: what became of every admission it answered: its bytes in the socket (Redis is
///   told it was delivered, so no sweep voids it, SPEC §13.7), or not, because the connection
///   closed first (released). A bursard killed before the flush would otherwise leave admissions
///   no client saw and no sweep gives back.
/// - **Graceful close** on `Drain`: it stops reading, answers every request already received,
///   half-closes after the last answer and discards input until the client closes, or
///   `linger` passes.
/// - It logs every request (trace) and answer (debug), never with the key digest.
final class DataPlaneConnection: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The user event that starts draining (fire it through the pipeline from any thread).
    struct Drain: Sendable {}

    /// Longest wait for the client to close after the last answer of a drain.
    static let linger: TimeAmount = .seconds(1)
    /// How long a connection whose input closed stays open after its last answer, if that
    /// carried admissions, so that a reset (the client had closed entirely) can reach it and the
    /// admissions be released.
    static let resetWindow: TimeAmount = .milliseconds(250)

    private let engine: DecisionEngine
    private let connectionStats: ConnectionStats
    private let limits: ConnectionLimits
    private let logger: Logger
    private var machine = ConnectionStateMachine()

    // Reading.
    private var decoder = FrameDecoder(direction: .toServer)
    /// Bytes received and not yet decoded.
    private var received: ByteBuffer?
    /// When the first byte of a frame not yet complete arrived; nil between frames.
    private var partialFrameSince: NIODeadline?
    /// A `read` held back while the channel was not writable.
    private var readHeld = false

    // Writing.
    /// Answers encoded since the last hand-over to the channel. After a hand-over it is cleared
    /// at the next answer, when the channel has usually written it (no new allocation).
    private var pending: ByteBuffer?
    private var pendingHandedOver = false
    /// The admissions among `pending`.
    private var pendingAdmissions: [CheckResult] = []
    private var flushScheduled = false
    /// Since when the channel has not been writable; nil while it is.
    private var unwritableSince: NIODeadline?

    // Clocks.
    /// The last frame read or answer completed (the idle clock).
    private var lastActivity = NIODeadline.now()
    private var ticker: RepeatedTask?
    private var unknownKeys = UnknownKeyWindow(start: .now())

    // Gateway credential (SPEC §6.5).
    /// The organizations this connection serves, once AUTH was accepted; nil: every one.
    private var scope: GatewayScope?
    /// An AUTH is being looked up: nothing after it is decoded until it is answered.
    private var authenticating = false
    /// A CHECK, SETTLE, RELEASE or AUTH was received (AUTH must come first, and once).
    private var requested = false
    /// The input ended while an AUTH was being looked up.
    private var inputEndedWhileAuthenticating = false

    init(engine: DecisionEngine, connectionStats: ConnectionStats, limits: ConnectionLimits, logger: Logger) {
        self.engine = engine
        self.connectionStats = connectionStats
        self.limits = limits
        self.logger = logger
    }

    // MARK: Lifecycle

    func channelActive(context: ChannelHandlerContext) {
        connectionStats.open.add(1, ordering: .relaxed)
        lastActivity = .now()
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let interval = Self.tickInterval(limits)
        ticker = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            let (connection, context) = bound.value
            connection.tick(context: context)
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        // Admissions never handed to the channel were never sent.
        let unsent = pendingAdmissions
        pendingAdmissions = []
        for result in unsent { orphan(result.reservation) }
        if let scope {
            engine.gateways.release(scope.digest)
            self.scope = nil
        }
        // Closed by the peer (a reset) in the reset window: nobody read these.
        for reservation in machine.inactive() { engine.releaseOrphan(reservation) }
        ticker?.cancel()
        ticker = nil
        connectionStats.open.subtract(1, ordering: .relaxed)
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is Drain {
            if machine.state == .serving { _ = context.channel.setOption(ChannelOptions.autoRead, value: false) }
            perform(machine.drain(), context: context)
            return
        }
        if case .some(ChannelEvent.inputClosed) = event as? ChannelEvent {
            // What is left of the input must be whole frames: they are served before the end.
            if authenticating { inputEndedWhileAuthenticating = true }
            if machine.serves { decodeFrames(context: context, last: true) }
            perform(machine.inputClosed(), context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? ProtocolError {
            fail(error, context: context)
        } else {
            if machine.state != .lingering { logger.debug("connection error", metadata: ["error": "\(error)"]) }
            perform(machine.broken(), context: context)
        }
    }

    // MARK: Reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard machine.serves else { return }  // after an ERROR was due, or a drain's last answer: discarded
        var incoming = unwrapInboundIn(data)
        if var held = received, held.readableBytes > 0 {
            received = nil  // unique again, so the write below does not copy what is held
            held.writeBuffer(&incoming)
            received = held
        } else {
            received = incoming
        }
        decodeFrames(context: context, last: false)
    }

    /// Serves every complete frame received, in order; `last`: the input ended, and bytes of an
    /// unfinished frame are `truncated`.
    private func decodeFrames(context: ChannelHandlerContext, last: Bool) {
        guard var bytes = received else { return }
        received = nil
        var decodedAny = false
        while machine.serves && !authenticating {
            let frame: Frame?
            do {
                frame = last ? try decoder.decodeLast(buffer: &bytes, seenEOF: true) : try decoder.decode(buffer: &bytes)
            } catch {
                partialFrameSince = nil
                errorCaught(context: context, error: error)
                return
            }
            guard let frame else { break }
            decodedAny = true
            serve(frame, context: context)
        }
        if bytes.readableBytes == 0 {
            partialFrameSince = nil
            bytes.clear()
        } else {
            // An unfinished frame: its clock starts with its first byte, which came in this read
            // if a frame before it was completed here.
            if decodedAny || partialFrameSince == nil { partialFrameSince = .now() }
            if bytes.readerIndex >= 16_384 { bytes.discardReadBytes() }
        }
        received = bytes
    }

    private func serve(_ frame: Frame, context: ChannelHandlerContext) {
        logger.trace("request", metadata: Self.metadata(frame))
        let id = frame.requestID
        let loop = context.eventLoop
        let now = NIODeadline.now()
        lastActivity = now
        switch frame.body {
        case .ping:
            answerAtOnce(Frame(requestID: id, body: .pong), context: context)
        case .auth(let request):
            authenticate(request, id: id, context: context)
        case .check(let request):
            guard authorized(id, context: context) else { return }
            if limits.maxUnknownKeysPerMinute > 0,
               unknownKeys.count(now: now) > limits.maxUnknownKeysPerMinute,
               !engine.isDigestCached(request.digest)
            {
                var result = CheckResult.deny(.keyLookupsThrottled)
                result.retryAfterMs = UInt32(clamping: unknownKeys.msToNextWindow(now: now))
                engine.stats.decisions[Int(DenyReason.keyLookupsThrottled.rawValue)].increment()
                connectionStats.throttledLookups.increment()
                return answerAtOnce(Frame(requestID: id, body: .checkResult(result)), context: context)
            }
            guard admit(headroom: 1) else {
                return refused(.checkResult(engine.overloaded(.bound)), id: id, kind: 0, context: context)
            }
            let bound = NIOLoopBound((self, context), eventLoop: loop)
            engine.check(request, serving: scope?.organizations, on: loop) { result in
                let (connection, context) = bound.value
                if result.reason == .unknownKey { connection.unknownKeys.record(now: .now()) }
                guard connection.machine.writable else {
                    if result.allowed { connection.engine.releaseOrphan(result.reservation) }
                    return connection.completed(admission: nil, context: context)
                }
                connection.write(Frame(requestID: id, body: .checkResult(result)), context: context)
                connection.engine.metrics?.checkDuration.record(.nanoseconds((NIODeadline.now() - now).nanoseconds))
                connection.completed(admission: result.allowed ? result.reservation : nil, context: context)
            }
        case .settle(var request):
            guard authorized(id, context: context) else { return }
            guard let reservation = reservation(request.reservation) else {
                return answerAtOnce(Frame(requestID: id, body: .settleResult(unknownReservation())), context: context)
            }
            request.reservation = reservation
            guard admit(headroom: 2) else {
                return refused(.settleResult(ReservationResult(status: .overloaded)), id: id, kind: 1, context: context)
            }
            let bound = NIOLoopBound((self, context), eventLoop: loop)
            let latency = engine.metrics?.settleDuration
            engine.settle(request, on: loop) { result in
                let (connection, context) = bound.value
                connection.answered(.settleResult(result), id: id, started: now, latency: latency, context: context)
            }
        case .release(var request):
            guard authorized(id, context: context) else { return }
            guard let reservation = reservation(request.reservation) else {
                return answerAtOnce(Frame(requestID: id, body: .releaseResult(unknownReservation())), context: context)
            }
            request.reservation = reservation
            guard admit(headroom: 2) else {
                return refused(.releaseResult(ReservationResult(status: .overloaded)), id: id, kind: 2, context: context)
            }
            let bound = NIOLoopBound((self, context), eventLoop: loop)
            let latency = engine.metrics?.releaseDuration
            engine.release(request, on: loop) { result in
                let (connection, context) = bound.value
                connection.answered(.releaseResult(result), id: id, started: now, latency: latency, context: context)
            }
        case .checkResult, .settleResult, .releaseResult, .pong, .authResult, .error:
            // The decoder refuses answer types from a client; this is defence in depth.
            fail(ProtocolError(.unexpectedFrameType, "answer frames are not accepted by the server", requestID: id), context: context)
        }
    }

    /// AUTH (SPEC §6.5): the connection's first request, once. Nothing after it is read until the
    /// credential is looked up; then the connection serves its organizations, or is refused.
    private func authenticate(_ request: AuthRequest, id: UInt64, context: ChannelHandlerContext) {
        guard !requested, scope == nil else {
            return fail(ProtocolError(.unauthorized, "AUTH must be the connection's first request, and sent once", requestID: id), context: context)
        }
        requested = true
        authenticating = true
        machine.accepted()
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        engine.gateways.authenticate(request.credentialDigest, on: context.eventLoop) { lookup in
            let (connection, context) = bound.value
            connection.authenticated(lookup, id: id, context: context)
        }
    }

    private func authenticated(_ lookup: GatewayAuthority.Lookup, id: UInt64, context: ChannelHandlerContext) {
        authenticating = false
        switch lookup {
        case .accepted(let scope):
            guard context.channel.isActive else { return engine.gateways.release(scope.digest) }
            self.scope = scope
            write(Frame(requestID: id, body: .authResult), context: context)
            // What the client pipelined behind AUTH is served now, under its scope; then the
            // AUTH counts as answered (so a client that half-closed is not closed before them).
            if machine.serves { decodeFrames(context: context, last: inputEndedWhileAuthenticating) }
            perform(machine.answered(), context: context)
            if machine.serves, !inputEndedWhileAuthenticating { read(context: context) }
        case .refused:
            perform(machine.answered(), context: context)
            connectionStats.refusedCredentials.increment()
            fail(ProtocolError(.unauthorized, "gateway credential refused: unknown or revoked", requestID: id), context: context)
        case .unavailable:
            perform(machine.answered(), context: context)
            fail(ProtocolError(.internalError, "the gateway credential could not be looked up (Redis did not answer); reconnect", requestID: id), context: context)
        }
    }

    /// Whether this connection may send a CHECK, SETTLE or RELEASE now; if not, it was failed
    /// `unauthorized`: the server requires AUTH and none came, or its credential was revoked.
    private func authorized(_ id: UInt64, context: ChannelHandlerContext) -> Bool {
        requested = true
        if var scope {
            let generation = engine.gateways.generation.load(ordering: .acquiring)
            guard generation != scope.generation else { return true }
            if engine.gateways.isRevoked(scope.digest) {
                fail(ProtocolError(.unauthorized, "the connection's gateway credential was revoked"), context: context)
                return false
            }
            scope.generation = generation
            self.scope = scope
            return true
        }
        guard !limits.requireAuthentication else {
            fail(ProtocolError(
                .unauthorized, "this server requires AUTH with a gateway credential before CHECK, SETTLE or RELEASE", requestID: id), context: context)
            return false
        }
        return true
    }

    /// The reservation a client's id names, if it names one this connection may touch (SPEC §5,
    /// §6.5): one the installation issued, of an organization the connection serves.
    private func reservation(_ id: ReservationID) -> ReservationID? {
        guard let reservation = engine.reservation(fromClient: id) else { return nil }
        if let scope, !scope.serves(reservation.orgID) { return nil }
        return reservation
    }

    /// The answer to a SETTLE or RELEASE of an id that names nothing this connection may touch:
    /// `unknown`, as for a reservation that never existed; nothing asked of Redis.
    private func unknownReservation() -> ReservationResult {
        engine.stats.settlements[Int(ReservationStatus.unknown.rawValue)].increment()
        return ReservationResult(status: .unknown)
    }

    /// Counts a request in flight unless that would pass `headroom` times the connection's or
    /// the server's bound; false if it would (the request is then answered `overloaded`).
    private func admit(headroom: Int) -> Bool {
        guard machine.inFlight < limits.maxInFlightPerConnection * headroom else { return false }
        let total = connectionStats.inFlight.wrappingAdd(1, ordering: .relaxed).newValue
        guard total <= limits.maxInFlight * headroom else {
            connectionStats.inFlight.wrappingSubtract(1, ordering: .relaxed)
            return false
        }
        machine.accepted()
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
        answerAtOnce(Frame(requestID: id, body: body), context: context)
    }

    /// Answers a request without the engine (a PONG, a throttled or refused CHECK).
    private func answerAtOnce(_ frame: Frame, context: ChannelHandlerContext) {
        machine.accepted()
        write(frame, context: context)
        perform(machine.answered(), context: context)
    }

    /// Writes the answer to a SETTLE or RELEASE and records its latency.
    private func answered(
        _ body: Frame.Body, id: UInt64, started: NIODeadline, latency: DurationHistogram?, context: ChannelHandlerContext
    ) {
        write(Frame(requestID: id, body: body), context: context)
        latency?.record(.nanoseconds((NIODeadline.now() - started).nanoseconds))
        completed(admission: nil, context: context)
    }

    /// An engine request ended (answered, or its answer dropped because the connection closed).
    private func completed(admission: ReservationID?, context: ChannelHandlerContext) {
        connectionStats.inFlight.wrappingSubtract(1, ordering: .relaxed)
        lastActivity = .now()
        perform(machine.answered(admission: admission), context: context)
    }

    private func fail(_ error: ProtocolError, context: ChannelHandlerContext) {
        guard machine.serves else { return }  // the first error is answered, later ones are not
        connectionStats.protocolErrors[error.code].increment()
        logger.debug("protocol error", metadata: ["code": "\(error.code)", "detail": "\(error.message)"])
        perform(machine.failed(error), context: context)
    }

    // MARK: Writing

    /// Encodes an answer behind the ones before it; one flush, scheduled behind the answers
    /// completed by the same Redis round trip (they arrive as consecutive loop tasks), writes them
    /// all in one syscall.
    private func write(_ frame: Frame, context: ChannelHandlerContext) {
        guard machine.writable else { return }
        logger.debug("answer", metadata: Self.metadata(frame))
        encode(frame, context: context)
        if !flushScheduled {
            flushScheduled = true
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.execute {
                let (connection, context) = bound.value
                connection.flushScheduled = false
                if connection.machine.writable { connection.flush(context: context) }
            }
        }
    }

    private func encode(_ frame: Frame, context: ChannelHandlerContext) {
        if pending == nil {
            pending = context.channel.allocator.buffer(capacity: 4096)
        } else if pendingHandedOver {
            pending!.clear()
            pendingHandedOver = false
        }
        if case .checkResult(var result) = frame.body, result.allowed {
            // The client is told its reservation's sealed id (SPEC §5); bursard keeps the name.
            pendingAdmissions.append(result)
            result.reservation = engine.clientID(for: result.reservation)
            Frame(requestID: frame.requestID, body: .checkResult(result)).encode(into: &pending!)
        } else {
            frame.encode(into: &pending!)
        }
    }

    func flush(context: ChannelHandlerContext) {
        handOver(context: context, promise: nil)
        context.flush()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        // Answers written but not yet flushed go out before the connection (or its output) closes.
        flush(context: context)
        context.close(mode: mode, promise: promise)
    }

    /// Hands the encoded answers to the channel as one write; `promise` completes when they are
    /// written. The admissions among them are reported written or orphaned when that is known.
    private func handOver(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        guard !pendingHandedOver, let bytes = pending, bytes.readableBytes > 0 else {
            promise?.succeed(())
            return
        }
        pendingHandedOver = true
        if pendingAdmissions.isEmpty {
            context.write(wrapOutboundOut(bytes), promise: promise)
            return
        }
        let admissions = pendingAdmissions
        pendingAdmissions = []
        let written = context.eventLoop.makePromise(of: Void.self)
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        written.futureResult.whenComplete { result in
            let connection = bound.value
            if case .success = result {
                for admission in admissions { connection.engine.delivered(admission) }
            } else {
                for admission in admissions { connection.orphan(admission.reservation) }
            }
        }
        if let promise { written.futureResult.cascade(to: promise) }
        context.write(wrapOutboundOut(bytes), promise: written)
    }

    /// An admission the client cannot have read: released.
    private func orphan(_ reservation: ReservationID) {
        machine.unwritten(reservation)
        engine.releaseOrphan(reservation)
    }

    /// Carries out what the state machine decided.
    private func perform(_ action: ConnectionStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .sendErrorAndClose(let error):
            encode(Frame(requestID: error.requestID, body: .error(ErrorFrame(code: error.code, message: error.message))), context: context)
            let sent = context.eventLoop.makePromise(of: Void.self)
            handOver(context: context, promise: sent)
            context.flush()
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            sent.futureResult.whenComplete { _ in bound.value.close(promise: nil) }
        case .close:
            // This handler is the channel's last: its own close does not pass through `close` above.
            flush(context: context)
            context.close(promise: nil)
        case .flushAndAwaitReset:
            flush(context: context)
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: Self.resetWindow) {
                let (connection, context) = bound.value
                connection.perform(connection.machine.waitPassed(), context: context)
            }
        case .halfCloseAndLinger:
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let halfClosed = context.eventLoop.makePromise(of: Void.self)
            flush(context: context)
            context.close(mode: .output, promise: halfClosed)
            halfClosed.futureResult.whenComplete { result in
                let (connection, context) = bound.value
                guard case .success = result else {
                    return connection.perform(connection.machine.broken(), context: context)
                }
                // Read (and discard) until the client closes, so the final close sends no RST.
                _ = context.channel.setOption(ChannelOptions.autoRead, value: true)
                context.read()
                context.eventLoop.scheduleTask(in: Self.linger) {
                    let (connection, context) = bound.value
                    connection.perform(connection.machine.waitPassed(), context: context)
                }
            }
        }
    }

    // MARK: Back-pressure and timeouts

    /// Holds back reading while answers cannot be written: a client that does not read its
    /// answers stops being read, so what bursard queues for it stays under the write buffer's
    /// high watermark plus its in-flight bound.
    func read(context: ChannelHandlerContext) {
        if machine.state == .lingering || (context.channel.isWritable && !authenticating) {
            context.read()
        } else {
            readHeld = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            unwritableSince = nil
            // A frame cut off by the pause was not the client's delay: its clock starts again.
            if partialFrameSince != nil { partialFrameSince = .now() }
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
        return .nanoseconds(min(max(TimeAmount(shortest).nanoseconds / 4, 10_000_000), 1_000_000_000))
    }

    private func tick(context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        let now = NIODeadline.now()
        // A revoked credential ends its connections even while they are idle.
        if let scope, machine.serves, engine.gateways.generation.load(ordering: .acquiring) != scope.generation,
           engine.gateways.isRevoked(scope.digest)
        {
            return fail(ProtocolError(.unauthorized, "the connection's gateway credential was revoked"), context: context)
        }
        // Checked in every state but the last: a client that does not read would keep an ERROR
        // (and the connection) forever.
        if let since = unwritableSince, limits.writeTimeout > .zero, machine.writable, now - since >= TimeAmount(limits.writeTimeout) {
            // Nothing can be written, not even an ERROR.
            connectionStats.writeTimeouts.increment()
            logger.debug("connection closed: answers unread for the write timeout")
            return perform(machine.broken(), context: context)
        }
        // While answers cannot be written the connection is neither idle nor slow: it is not read.
        guard machine.timesOut, unwritableSince == nil else { return }
        if let since = partialFrameSince, limits.frameTimeout > .zero, now - since >= TimeAmount(limits.frameTimeout) {
            fail(ProtocolError(
                .frameTimeout, "frame not completed within \(TimeAmount(limits.frameTimeout).nanoseconds / 1_000_000) ms of its first byte"), context: context)
        } else if limits.idleTimeout > .zero, machine.inFlight == 0, partialFrameSince == nil,
                  now - lastActivity >= TimeAmount(limits.idleTimeout)
        {
            fail(ProtocolError(.idleTimeout, "no frame for \(TimeAmount(limits.idleTimeout).nanoseconds / 1_000_000) ms"), context: context)
        }
    }

    /// What a log line may say about a frame: never the key digest.
    static func metadata(_ frame: Frame) -> Logger.Metadata {
        var m: Logger.Metadata = ["request_id": "\(frame.requestID)", "type": "\(frame.body.type)"]
        switch frame.body {
        case .check(let r):
            m["model"] = "\(r.model)"
            m["input_tokens"] = "\(r.inputTokens)"
            m["max_output_tokens"] = "\(r.maxOutputTokens)"
            m["estimated_cost_nusd"] = "\(r.estimatedCost)"
        case .settle(let r):
            m["reservation"] = "\(r.reservation.hex)"
            m["cost_nusd"] = "\(r.cost)"
        case .release(let r):
            m["reservation"] = "\(r.reservation.hex)"
        case .checkResult(let r):
            m["decision"] = r.allowed ? "allowed" : "\(r.reason)"
            m["org"] = "\(r.orgID)"
            m["project"] = "\(r.projectID)"
            m["key"] = "\(r.keyID)"
            if r.allowed { m["reservation"] = "\(r.reservation)" }
        case .settleResult(let r), .releaseResult(let r):
            m["status"] = "\(r.status)"
        case .error(let e):
            m["code"] = "\(e.code)"
        case .ping, .pong, .auth, .authResult:
            break
        }
        return m
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
