public import BursarWire
public import Logging
public import NIOCore
import NIOPosix
import NIOSSL
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

    /// Bounds on connections and queued work.
    public var limits: ConnectionLimits
    /// Mutual TLS on the TCP listener; nil: plain TCP. The unix socket is always plain.
    public var tls: DataPlaneTLS?

    /// Defaults: 127.0.0.1:7420, no unix socket, 10 s to drain, the default bounds, no TLS.
    public init(
        host: String = "127.0.0.1", port: Int = 7420, unixSocketPath: String? = nil, shutdownTimeout: Duration = .seconds(10),
        limits: ConnectionLimits = ConnectionLimits(), tls: DataPlaneTLS? = nil
    ) {
        self.host = host
        self.port = port
        self.unixSocketPath = unixSocketPath
        self.shutdownTimeout = shutdownTimeout
        self.limits = limits
        self.tls = tls
    }
}

/// Mutual TLS on the TCP data plane (SPEC 2): bursard presents its certificate, and accepts only
/// a client that presents a certificate issued by one of the client CAs — a gateway without one
/// is refused in the handshake, before it can send a frame. PEM files, read at start.
public struct DataPlaneTLS: Sendable, Hashable {
    /// The certificate chain, leaf first (`--listen-tls-cert`).
    public var certificatePath: String
    /// Its private key (`--listen-tls-key`).
    public var keyPath: String
    /// The CAs whose client certificates are accepted (`--listen-tls-client-ca`).
    public var clientCAPath: String

    public init(certificatePath: String, keyPath: String, clientCAPath: String) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.clientCAPath = clientCAPath
    }

    /// Reads the files and makes the server context once, so that a file that cannot be used
    /// stops start-up with a message naming its flag.
    public func check() throws(DataPlaneTLSError) { _ = try makeContext() }

    /// The server context: TLS 1.2 or later, a client certificate required and verified against
    /// the client CAs (no host name: a gateway's address says nothing about who it is).
    /// Throws `DataPlaneTLSError` naming the flag whose file is missing or unreadable.
    func makeContext() throws(DataPlaneTLSError) -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        let roots: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMFile(certificatePath) } catch {
            throw DataPlaneTLSError("--listen-tls-cert \(certificatePath): cannot read a PEM certificate chain: \(error)")
        }
        do { key = try NIOSSLPrivateKey(file: keyPath, format: .pem) } catch {
            throw DataPlaneTLSError("--listen-tls-key \(keyPath): cannot read a PEM private key: \(error)")
        }
        do { roots = try NIOSSLCertificate.fromPEMFile(clientCAPath) } catch {
            throw DataPlaneTLSError("--listen-tls-client-ca \(clientCAPath): cannot read PEM certificates: \(error)")
        }
        guard !chain.isEmpty else { throw DataPlaneTLSError("--listen-tls-cert \(certificatePath): no certificate in the file") }
        guard !roots.isEmpty else { throw DataPlaneTLSError("--listen-tls-client-ca \(clientCAPath): no certificate in the file") }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates(roots)
        do { return try NIOSSLContext(configuration: configuration) } catch {
            throw DataPlaneTLSError("--listen-tls-cert/--listen-tls-key: the certificate and key do not make a TLS server: \(error)")
        }
    }
}

/// A data-plane TLS file that cannot be used, named by its flag.
public struct DataPlaneTLSError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The data plane's bounds on connections and queued work (SPEC 15.1): what keeps a flood, a
/// slow client or a client that never reads from growing bursard's memory or queue without end.
public struct ConnectionLimits: Sendable, Hashable {
    /// Open data-plane connections, TCP and unix together; one more gets ERROR
    /// `too_many_connections` and is closed.
    public var maxConnections: Int
    /// CHECKs, SETTLEs and RELEASEs in flight (sent to the engine, not yet answered) across all
    /// connections. A CHECK over it is answered `overloaded` at once; SETTLE and RELEASE are
    /// refused (status `overloaded`) only at twice this.
    public var maxInFlight: Int
    /// The same bound for one connection (SETTLE and RELEASE again at twice it).
    public var maxInFlightPerConnection: Int
    /// A connection with no frame and nothing in flight for this long gets ERROR `idle_timeout`
    /// and is closed; `.zero` turns it off.
    public var idleTimeout: Duration
    /// A frame whose first byte arrived but which is not complete after this long gets ERROR
    /// `frame_timeout` and the connection is closed.
    public var frameTimeout: Duration
    /// A connection whose answers cannot be written (the client does not read them) for this
    /// long is closed. While they cannot, nothing more is read from it.
    public var writeTimeout: Duration
    /// `unknown_key` answers a connection may get in a rolling minute; past it, its CHECKs for
    /// digests not in the digest cache are answered `key_lookups_throttled`. 0 turns it off.
    public var maxUnknownKeysPerMinute: Int
    /// Whether a connection must present a gateway credential (AUTH, SPEC §6.5) before its first
    /// CHECK, SETTLE or RELEASE (`--data-plane-auth required`). Without it, a connection that
    /// never sends AUTH serves every organization.
    public var requireAuthentication: Bool

    /// Bytes of answers queued for a connection beyond which it stops being writable (and so
    /// stops being read), and below which it is writable again.
    public static let writeBufferWaterMark = ChannelOptions.Types.WriteBufferWaterMark(low: 32 * 1024, high: 64 * 1024)

    /// Defaults: 4096 connections, 8192 in flight (1024 per connection), 300 s idle, 10 s per
    /// frame, 10 s write timeout, 600 unknown keys a minute per connection.
    public init(
        maxConnections: Int = 4096, maxInFlight: Int = 8192, maxInFlightPerConnection: Int = 1024,
        idleTimeout: Duration = .seconds(300), frameTimeout: Duration = .seconds(10), writeTimeout: Duration = .seconds(10),
        maxUnknownKeysPerMinute: Int = 600, requireAuthentication: Bool = false
    ) {
        self.requireAuthentication = requireAuthentication
        self.maxConnections = maxConnections
        self.maxInFlight = maxInFlight
        self.maxInFlightPerConnection = maxInFlightPerConnection
        self.idleTimeout = idleTimeout
        self.frameTimeout = frameTimeout
        self.writeTimeout = writeTimeout
        self.maxUnknownKeysPerMinute = maxUnknownKeysPerMinute
    }
}

/// One counter per `ProtocolErrorCode`, sized from the enum: a code added there has its counter.
public struct ProtocolErrorCounters: Sendable {
    private let counters: [Counter]

    init() {
        let highest = ProtocolErrorCode.allCases.map { Int($0.rawValue) }.max() ?? 0
        counters = (0...highest).map { _ in Counter() }
    }

    /// The counter of `code`.
    public subscript(code: ProtocolErrorCode) -> Counter { counters[Int(code.rawValue)] }
}

/// Connection counters.
public final class ConnectionStats: Sendable {
    /// Open connections.
    public let open = Atomic<Int>(0)
    /// Protocol errors by code (`too_many_connections`, `idle_timeout` and `frame_timeout` among
    /// them).
    public let protocolErrors = ProtocolErrorCounters()
    /// CHECKs, SETTLEs and RELEASEs in flight across all connections (the bound's counter).
    public let inFlight = Atomic<Int>(0)
    /// Requests answered `overloaded`, by kind: 0 CHECK, 1 SETTLE, 2 RELEASE.
    public let overloaded: [Counter] = (0...2).map { _ in Counter() }
    /// Connections refused at `maxConnections`.
    public let refused = Counter()
    /// Connections closed because their answers could not be written for the write timeout.
    public let writeTimeouts = Counter()
    /// CHECKs answered `key_lookups_throttled`.
    public let throttledLookups = Counter()
    /// AUTHs refused: an unknown or revoked gateway credential.
    public let refusedCredentials = Counter()
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
        let tls = try configuration.tls?.makeContext()
        let tcp = try await bootstrap(tls: tls).bind(host: configuration.host, port: configuration.port).get()
        channels.withLock { $0.append(tcp) }
        let port = tcp.localAddress?.port ?? configuration.port
        logger.info("data plane listening", metadata: ["address": "\(configuration.host):\(port)", "mutual_tls": "\(tls != nil)"])
        if let path = configuration.unixSocketPath {
            let unix = try await bootstrap(tls: nil).bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
            channels.withLock { $0.append(unix) }
            logger.info("data plane listening", metadata: ["unix": "\(path)"])
        }
        return port
    }

    /// The listeners' bootstrap; with `tls`, each connection starts with the TLS handshake.
    private func bootstrap(tls: NIOSSLContext?) -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.writeBufferWaterMark, value: ConnectionLimits.writeBufferWaterMark)
            // At most 16 KiB (128 CHECKs) read from a connection per event-loop pass: a connection
            // flooding pipelined frames cannot hold its loop while others wait.
            .childChannelOption(.maxMessagesPerRead, value: 1)
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 4096, maximum: 16384))
            .childChannelInitializer { [engine, connectionStats, logger, connections, limits = configuration.limits] channel in
                channel.eventLoop.makeCompletedFuture {
                    // First in the pipeline, so that even the refusal below is sent over TLS.
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                    }
                    switch connections.add(channel, limit: limits.maxConnections) {
                    case .added:
                        break
                    case .draining:
                        // Accepted while the listeners were closing: nothing was read from it, so
                        // closing answers nothing wrongly.
                        channel.close(promise: nil)
                        return
                    case .full:
                        connectionStats.refused.increment()
                        connectionStats.protocolErrors[.tooManyConnections].increment()
                        logger.debug("data-plane connection refused: too many connections", metadata: ["max_connections": "\(limits.maxConnections)"])
                        try channel.pipeline.syncOperations.addHandler(RefusedConnectionHandler(limit: limits.maxConnections))
                        return
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        DataPlaneConnection(engine: engine, connectionStats: connectionStats, limits: limits, logger: logger))
                    let peer = channel.remoteAddress.map { "\($0)" } ?? "?"
                    logger.debug("data-plane connection opened", metadata: ["peer": "\(peer)"])
                    channel.closeFuture.whenComplete { _ in
                        connections.remove(channel)
                        logger.debug("data-plane connection closed", metadata: ["peer": "\(peer)"])
                    }
                }
            }
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
        for channel in open { channel.pipeline.fireUserInboundEventTriggered(DataPlaneConnection.Drain()) }
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
        // Local admissions (store failure policy `allow`) go to Redis before the process goes,
        // and so do the voids and delivery confirmations still owed.
        let unreplayed = await engine.shutdown()
        if unreplayed > 0 {
            logger.error("local admissions not replayed into Redis; their debits are lost", metadata: ["admissions": "\(unreplayed)"])
        }
    }
}

extension Duration {
    /// Whole milliseconds.
    fileprivate var wholeMilliseconds: Int64 { TimeAmount(self).nanoseconds / 1_000_000 }
}

/// The open data-plane connections, and whether new ones are still welcome.
final class ConnectionRegistry: Sendable {
    private struct State {
        var open: [ObjectIdentifier: any Channel] = [:]
        var draining = false
    }

    private let state = Mutex(State())

    /// What `add` did with a new connection.
    enum Admission { case added, draining, full }

    /// Registers a new connection unless draining began or `limit` connections are open (the
    /// caller closes it, or refuses it).
    func add(_ channel: any Channel, limit: Int) -> Admission {
        state.withLock { s in
            guard !s.draining else { return .draining }
            guard s.open.count < limit else { return .full }
            s.open[ObjectIdentifier(channel)] = channel
            return .added
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

/// The only handler of a connection refused at `maxConnections`: sends one ERROR
/// `too_many_connections` (request id 0), half-closes, discards whatever the client sends, and
/// closes when the client does or after `DataPlaneConnection.linger` (closing with unread
/// input would send RST, which can destroy the ERROR before the client reads it).
final class RefusedConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let limit: Int

    init(limit: Int) { self.limit = limit }

    func channelActive(context: ChannelHandlerContext) {
        let message = "the server has its maximum of \(limit) connections open; retry later"
        var buffer = context.channel.allocator.buffer(capacity: FrameHeader.size + 4 + message.utf8.count)
        Frame(requestID: 0, body: .error(ErrorFrame(code: .tooManyConnections, message: message))).encode(into: &buffer)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in
            let context = bound.value
            context.close(mode: .output, promise: nil)
            context.eventLoop.scheduleTask(in: DataPlaneConnection.linger) { bound.value.close(promise: nil) }
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .some(ChannelEvent.inputClosed) = event as? ChannelEvent { context.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
