import BursarWire
public import Logging
public import NIOCore
import NIOPosix
public import ServiceLifecycle
public import Synchronization

/// Where the data plane listens.
public struct ListenerConfiguration: Sendable {
    /// TCP host.
    public var host: String
    /// TCP port; 0 picks a free one (logged, and returned by `start()`).
    public var port: Int
    /// Optional unix socket path.
    public var unixSocketPath: String?

    /// Defaults: 127.0.0.1:7420, no unix socket.
    public init(host: String = "127.0.0.1", port: Int = 7420, unixSocketPath: String? = nil) {
        self.host = host
        self.port = port
        self.unixSocketPath = unixSocketPath
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
            .childChannelInitializer { [engine, connectionStats, logger] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(FrameDecoder(direction: .toServer)),
                        MessageToByteHandler(FrameEncoder()),
                        DataPlaneHandler(engine: engine, connectionStats: connectionStats, logger: logger),
                    ])
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

    /// Closes the listeners (open connections finish what they have).
    public func stop() async {
        let list = channels.withLock { c -> [any Channel] in
            defer { c.removeAll() }
            return c
        }
        for channel in list { try? await channel.close() }
    }

    /// Binds, serves until graceful shutdown is requested, then stops listening.
    public func run() async throws {
        if channels.withLock({ $0.isEmpty }) { try await start() }
        try? await gracefulShutdown()
        logger.info("data plane stopping")
        await stop()
    }
}
