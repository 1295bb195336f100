import BursarWire
import Logging
import NIOCore
import Prometheus

/// Serves one data-plane connection: decodes frames (done by the `FrameDecoder` before it), hands
/// them to the engine, writes answers in completion order, and on bad input answers every frame
/// already accepted before sending one ERROR and closing.
final class DataPlaneHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    private let engine: DecisionEngine
    private let connectionStats: ConnectionStats
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

    init(engine: DecisionEngine, connectionStats: ConnectionStats, logger: Logger) {
        self.engine = engine
        self.connectionStats = connectionStats
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        connectionStats.open.add(1, ordering: .relaxed)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        // Closed by the peer (a reset) before we closed it: nobody read these answers.
        for reservation in unconfirmed { engine.releaseOrphan(reservation) }
        unconfirmed.removeAll()
        connectionStats.open.subtract(1, ordering: .relaxed)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard pendingError == nil else { return }
        let id = frame.requestID
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        switch frame.body {
        case .ping:
            context.writeAndFlush(wrapOutboundOut(Frame(requestID: id, body: .pong)), promise: nil)
        case .check(let request):
            inFlight += 1
            let started = NIODeadline.now()
            engine.check(request, on: loop) { result in
                let (handler, context) = bound.value
                if handler.closed {
                    if result.allowed { handler.engine.releaseOrphan(result.reservation) }
                } else {
                    if handler.inputClosed && result.allowed { handler.unconfirmed.append(result.reservation) }
                    handler.write(Frame(requestID: id, body: .checkResult(result)), context: context)
                    handler.engine.metrics?.checkDuration.record(.nanoseconds((NIODeadline.now() - started).nanoseconds))
                }
                handler.completed(context: context)
            }
        case .settle(let request):
            inFlight += 1
            let started = NIODeadline.now()
            let latency = engine.metrics?.settleDuration
            engine.settle(request, on: loop) { result in
                let (handler, context) = bound.value
                handler.answered(.settleResult(result), id: id, started: started, latency: latency, context: context)
            }
        case .release(let request):
            inFlight += 1
            let started = NIODeadline.now()
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

    private func completed(context: ChannelHandlerContext) {
        inFlight -= 1
        closeIfDone(context: context)
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
