import BursarWire
public import Logging
public import NIOCore
import NIOPosix
public import ServiceLifecycle
public import Synchronization

/// Where the data plane listens, and how long it may take to stop.
public struct ListenerConfiguration: Sendable {
    /// TCP host.
    public var host: String
    /// TCP port; 0 picks a free one (logged, and returned by `start()`).
    public var port: Int
    /// Optional unix socket path.
    public var unixSocketPath: String?
    /// On graceful shutdown, how long open connections may take to have every frame already
    /// received answered before they are closed hard.
    public var shutdownTimeout: Duration

    /// Defaults: 127.0.0.1:7420, no unix socket, 10 s to drain.
    public init(host: String = "127.0.0.1", port: Int = 7420, unixSocketPath: String? = nil, shutdownTimeout: Duration = .seconds(10)) {
        self.host = host
        self.port = port
        self.unixSocketPath = unixSocketPath
        self.shutdownTimeout = shutdownTimeout
    }
}

/// Connection counters.
public final class ConnectionStats: Sendable {
    /// Open connections.
    public let open = Atomic<Int>(0)
    /// Protocol errors by `ProtocolErrorCode.rawValue`.
    public let protocolErrors: [Counter] = (0...16).map { _ in Counter() }
    init() {}
}

/// The data-plane listeners (TCP and optionally a unix socket), run as a `Service`.
///
/// Graceful shutdown (`run()` when the service group shuts down, or `shutdown()`): the listeners
/// close, every connection stops reading, answers every frame it has already received, sends
/// them (then FIN) and closes once the client has read them; connections still open after
/// `shutdownTimeout` are closed hard. A request the server never read gets no answer, never a
/// wrong one.
public final class DataPlaneServer: Service, Sendable {
    /// Listeners.
    public let configuration: ListenerConfiguration
    /// The engine.
    public let engine: DecisionEngine
    /// Connection counters.
    public let connectionStats = ConnectionStats()
    private let group: any EventLoopGroup
    private let logger: Logger
    private let channels = Mutex<[any Channel]>([])
    private let connections = ConnectionRegistry()

    /// A server; nothing is bound until `start()` or `run()`.
    public init(configuration: ListenerConfiguration, engine: DecisionEngine, group: any EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        self.engine = engine
        self.group = group
        self.logger = logger
    }

    /// Binds the listeners; returns the TCP port actually bound.
    @discardableResult
    public func start() async throws -> Int {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { [engine, connectionStats, logger, connections] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(FrameDecoder(direction: .toServer)),
                        MessageToByteHandler(FrameEncoder()),
                        ConnectionDrainHandler(logger: logger),
                        DataPlaneHandler(engine: engine, connectionStats: connectionStats, logger: logger),
                    ])
                    guard connections.add(channel) else {
                        // Accepted while the listeners were closing: nothing was read from it, so
                        // closing answers nothing wrongly.
                        channel.close(promise: nil)
                        return
                    }
                    let peer = channel.remoteAddress.map { "\($0)" } ?? "?"
                    logger.debug("data-plane connection opened", metadata: ["peer": "\(peer)"])
                    channel.closeFuture.whenComplete { _ in
                        connections.remove(channel)
                        logger.debug("data-plane connection closed", metadata: ["peer": "\(peer)"])
                    }
                }
            }
        let tcp = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
        channels.withLock { $0.append(tcp) }
        let port = tcp.localAddress?.port ?? configuration.port
        logger.info("data plane listening", metadata: ["address": "\(configuration.host):\(port)"])
        if let path = configuration.unixSocketPath {
            let unix = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
            channels.withLock { $0.append(unix) }
            logger.info("data plane listening", metadata: ["unix": "\(path)"])
        }
        return port
    }

    /// Open connections.
    public var openConnections: Int { connections.count }

    /// Closes the listeners (open connections stay as they are; see `shutdown()`).
    public func stop() async {
        let list = channels.withLock { c -> [any Channel] in
            defer { c.removeAll() }
            return c
        }
        for channel in list { try? await channel.close() }
    }

    /// Stops accepting, drains every open connection (answers what it has received, then closes
    /// it) and closes whatever is still open after `timeout` (default: the configuration's) hard.
    /// Cancelling the calling task skips the wait: remaining connections are closed hard at once.
    public func shutdown(timeout: Duration? = nil) async {
        let timeout = timeout ?? configuration.shutdownTimeout
        let started = ContinuousClock.now
        await stop()
        let open = connections.beginDraining()
        logger.info("data plane stopped accepting; draining connections", metadata: [
            "connections": "\(open.count)", "timeout_ms": "\(timeout.wholeMilliseconds)",
        ])
        for channel in open { channel.pipeline.fireUserInboundEventTriggered(ConnectionDrainHandler.Drain()) }
        while connections.count > 0 && ContinuousClock.now - started < timeout {
            do {
                try await Task.sleep(for: .milliseconds(5))
            } catch {
                break
            }
        }
        let left = connections.all
        if !left.isEmpty {
            logger.warning("shutdown timeout: closing connections hard", metadata: ["connections": "\(left.count)"])
            for channel in left { try? await channel.close() }
        }
        logger.info("data plane stopped", metadata: ["drained_ms": "\((ContinuousClock.now - started).wholeMilliseconds)"])
    }

    /// Binds, serves until graceful shutdown is requested, then `shutdown()`. If the task is
    /// cancelled instead, connections are closed at once.
    public func run() async throws {
        if channels.withLock({ $0.isEmpty }) { try await start() }
        try? await gracefulShutdown()
        await shutdown()
        // Local admissions (store failure policy `allow`) go to Redis before the process goes.
        let unreplayed = await engine.replayLocalAdmissions()
        if unreplayed > 0 {
            logger.error("local admissions not replayed into Redis; their debits are lost", metadata: ["admissions": "\(unreplayed)"])
        }
    }
}

extension Duration {
    /// Whole milliseconds.
    fileprivate var wholeMilliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}

/// The open data-plane connections, and whether new ones are still welcome.
final class ConnectionRegistry: Sendable {
    private struct State {
        var open: [ObjectIdentifier: any Channel] = [:]
        var draining = false
    }

    private let state = Mutex(State())

    /// Registers a new connection; false once draining began (the caller closes it).
    func add(_ channel: any Channel) -> Bool {
        state.withLock { s in
            guard !s.draining else { return false }
            s.open[ObjectIdentifier(channel)] = channel
            return true
        }
    }

    func remove(_ channel: any Channel) {
        _ = state.withLock { $0.open.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// Refuses new connections from now on; returns the open ones.
    func beginDraining() -> [any Channel] {
        state.withLock { s in
            s.draining = true
            return Array(s.open.values)
        }
    }

    var count: Int { state.withLock { $0.open.count } }
    var all: [any Channel] { state.withLock { Array($0.open.values) } }
}

/// Sits between the codec and `DataPlaneHandler`, sees every request and answer (and logs them,
/// at trace and debug only, never with the key digest), and closes a connection gracefully on `Drain`:
/// it stops reading, lets every request already received be answered (it counts requests in and
/// answers out), flushes and half-closes (FIN after the last answer), then discards whatever
/// still arrives until the client closes, or `linger` passes, before closing. Closing at once
/// with unread input would make the kernel send RST, which can destroy answers the client has
/// not read yet.
final class ConnectionDrainHandler: ChannelDuplexHandler {
    typealias InboundIn = Frame
    typealias InboundOut = Frame
    typealias OutboundIn = Frame
    typealias OutboundOut = Frame

    /// The user event that starts draining (fire it through the pipeline from any thread).
    struct Drain: Sendable {}

    /// Longest wait for the client to close after the last answer.
    static let linger: TimeAmount = .seconds(1)

    private enum State { case serving, draining, lingering }
    private var state = State.serving
    private var unanswered = 0
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard state != .lingering else { return }  // arrived after the last answer: never read
        unanswered += 1
        logger.trace("request", metadata: Self.metadata(unwrapInboundIn(data)))
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        unanswered -= 1
        logger.debug("answer", metadata: Self.metadata(unwrapOutboundIn(data)))
        context.write(data, promise: promise)
        if state == .draining && unanswered <= 0 { finish(context: context) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is Drain {
            guard state == .serving else { return }
            state = .draining
            _ = context.channel.setOption(ChannelOptions.autoRead, value: false)
            if unanswered <= 0 { finish(context: context) }
            return
        }
        if state == .lingering, case .some(ChannelEvent.inputClosed) = event as? ChannelEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if state == .lingering {
            context.close(promise: nil)
        } else {
            context.fireErrorCaught(error)
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
            m["reservation"] = "\(r.reservation)"
            m["cost_nusd"] = "\(r.cost)"
        case .release(let r):
            m["reservation"] = "\(r.reservation)"
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
        case .ping, .pong:
            break
        }
        return m
    }

    private func finish(context: ChannelHandlerContext) {
        state = .lingering
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let halfClosed = context.eventLoop.makePromise(of: Void.self)
        context.flush()
        context.close(mode: .output, promise: halfClosed)
        halfClosed.futureResult.whenComplete { result in
            let context = bound.value
            guard case .success = result else {
                context.close(promise: nil)
                return
            }
            // Read (and discard) until the client closes, so the final close sends no RST.
            _ = context.channel.setOption(ChannelOptions.autoRead, value: true)
            context.read()
            context.eventLoop.scheduleTask(in: Self.linger) { bound.value.close(promise: nil) }
        }
    }
}
