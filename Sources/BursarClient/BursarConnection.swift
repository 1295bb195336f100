public import BursarWire
import Crypto
public import NIOCore
public import NIOPosix
import NIOSSL
import Synchronization

/// A failure of the client connection.
public struct BursarClientError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public var code: String
    /// Detail.
    public var message: String
    /// The server's ERROR frame, when it sent one.
    public var serverError: ErrorFrame?

    /// The connection closed with requests outstanding.
    public static func closed(_ serverError: ErrorFrame? = nil) -> BursarClientError {
        BursarClientError(code: "connection_closed", message: serverError.map { "server sent ERROR \($0.code): \($0.message)" } ?? "connection closed", serverError: serverError)
    }

    public var description: String { "\(code): \(message)" }
}

/// A client's side of the data plane's mutual TLS: the CA that issued bursard's certificate, and
/// this client's own certificate and key (PEM files).
public struct BursarClientTLS: Sendable, Hashable {
    /// The CAs that bursard's certificate must chain to.
    public var caPath: String
    /// This client's certificate chain, leaf first.
    public var certificatePath: String
    /// Its private key.
    public var keyPath: String
    /// The name bursard's certificate must carry; nil: the host connected to.
    public var serverName: String?

    public init(caPath: String, certificatePath: String, keyPath: String, serverName: String? = nil) {
        self.caPath = caPath
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.serverName = serverName
    }

    func makeContext() throws -> NIOSSLContext {
        func read<T>(_ what: String, _ path: String, _ load: () throws -> T) throws -> T {
            do { return try load() } catch {
                throw BursarClientError(code: "tls_file", message: "\(what) \(path): \(error)")
            }
        }
        let roots = try read("CA certificates", caPath) { try NIOSSLCertificate.fromPEMFile(caPath) }
        let chain = try read("client certificate", certificatePath) { try NIOSSLCertificate.fromPEMFile(certificatePath) }
        let key = try read("client key", keyPath) { try NIOSSLPrivateKey(file: keyPath, format: .pem) }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.trustRoots = .certificates(roots)
        configuration.certificateChain = chain.map { .certificate($0) }
        configuration.privateKey = .privateKey(key)
        return try NIOSSLContext(configuration: configuration)
    }
}

/// A pipelined connection to bursard. Any number of requests may be outstanding; answers are
/// matched to requests by request id.
public final class BursarConnection: Sendable {
    /// The channel.
    public let channel: any Channel
    private let nextID = Atomic<UInt64>(1)
    /// The server's ERROR, once it sent one (it closes the connection after it).
    private let serverError: ServerErrorBox

    private init(channel: any Channel, serverError: ServerErrorBox) {
        self.channel = channel
        self.serverError = serverError
    }

    /// The ERROR the server ended the connection with, if it did (e.g. `unauthorized` for a
    /// revoked gateway credential, sent while no request was outstanding).
    public var lastServerError: ErrorFrame? { serverError.value.withLock { $0 } }

    /// Connects over TCP; with `tls`, over mutual TLS (a data plane started with
    /// `--listen-tls-*`, SPEC 2).
    public static func connect(
        host: String, port: Int, tls: BursarClientTLS? = nil, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> BursarConnection {
        let context = try tls?.makeContext()
        let serverName = tls?.serverName ?? host
        let error = ServerErrorBox()
        let channel = try await bootstrap(group, tls: context.map { ($0, serverName) }, error: error).connect(host: host, port: port).get()
        return BursarConnection(channel: channel, serverError: error)
    }

    /// Connects over a unix socket.
    public static func connect(unixSocketPath: String, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> BursarConnection {
        let error = ServerErrorBox()
        let channel = try await bootstrap(group, error: error).connect(unixDomainSocketPath: unixSocketPath).get()
        return BursarConnection(channel: channel, serverError: error)
    }

    private static func bootstrap(_ group: any EventLoopGroup, tls: (NIOSSLContext, String)? = nil, error: ServerErrorBox) -> ClientBootstrap {
        ClientBootstrap(group: group)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let (context, serverName) = tls {
                        // An IP address is verified against the certificate's IP entries, and is
                        // not sent as SNI (which names hosts only).
                        let sni = serverName.contains(where: { $0.isLetter }) ? serverName : nil
                        try channel.pipeline.syncOperations.addHandler(
                            try NIOSSLClientHandler(context: context, serverHostname: sni))
                    }
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(FrameDecoder(direction: .toClient)),
                        MessageToByteHandler(FrameEncoder()),
                        ClientHandler(error: error),
                    ])
                }
            }
    }

    /// Sends a request body; the future (on the channel's event loop) holds the answer frame, or
    /// fails with `BursarClientError` when the connection closes first.
    public func request(_ body: Frame.Body) -> EventLoopFuture<Frame> {
        request(body, flush: true)
    }

    /// Sends a request body, flushing it to the socket at once when `flush`, else leaving it in
    /// the channel's outbound buffer until `flush()`: a client that sends many requests in one
    /// event-loop pass then writes them with one syscall. The future is as for `request(_:)`.
    public func request(_ body: Frame.Body, flush: Bool) -> EventLoopFuture<Frame> {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let promise = channel.eventLoop.makePromise(of: Frame.self)
        // A write that fails (the channel already closed) never reaches the handler's table of
        // outstanding requests, so it fails the answer here.
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { [serverError] _ in promise.fail(BursarClientError.closed(serverError.value.withLock { $0 })) }
        let outgoing = Outgoing(frame: Frame(requestID: id, body: body), promise: promise)
        if flush {
            channel.writeAndFlush(outgoing, promise: written)
        } else {
            channel.write(outgoing, promise: written)
        }
        return promise.futureResult
    }

    /// Writes every request sent with `flush: false` and not yet flushed.
    public func flush() {
        channel.flush()
    }

    /// Sends a request body and returns the answer frame.
    public func send(_ body: Frame.Body) async throws -> Frame {
        try await request(body).get()
    }

    /// CHECK.
    public func check(_ request: CheckRequest) async throws -> CheckResult {
        let frame = try await send(.check(request))
        guard case .checkResult(let r) = frame.body else { throw unexpected(frame) }
        return r
    }

    /// SETTLE.
    public func settle(_ request: SettleRequest) async throws -> ReservationResult {
        let frame = try await send(.settle(request))
        guard case .settleResult(let r) = frame.body else { throw unexpected(frame) }
        return r
    }

    /// RELEASE.
    public func release(_ reservation: ReservationID) async throws -> ReservationResult {
        let frame = try await send(.release(ReleaseRequest(reservation: reservation)))
        guard case .releaseResult(let r) = frame.body else { throw unexpected(frame) }
        return r
    }

    /// AUTH with a gateway credential's secret (SPEC §6.5): send it first on a connection. The
    /// connection then serves only the credential's organizations; a refused credential throws
    /// (the server's ERROR `unauthorized`) and the connection is closed.
    public func authenticate(credential secret: String) async throws {
        let frame = try await send(.auth(AuthRequest(credentialDigest: KeyDigest(secret: secret))))
        guard case .authResult = frame.body else { throw unexpected(frame) }
    }

    /// PING; returns when PONG arrives.
    public func ping() async throws {
        let frame = try await send(.ping)
        guard case .pong = frame.body else { throw unexpected(frame) }
    }

    /// Closes the connection.
    public func close() async {
        try? await channel.close()
    }

    /// The error for an answer `frame` that does not match its request: the server's ERROR, or
    /// `unexpected_answer`.
    public func unexpected(_ frame: Frame) -> BursarClientError {
        if case .error(let e) = frame.body { return .closed(e) }
        return BursarClientError(code: "unexpected_answer", message: "answer type \(frame.body.type) does not match the request")
    }
}

extension KeyDigest {
    /// The digest of an API key secret, as a gateway computes it before calling bursard.
    public init(secret: String) {
        self.init(bytes: Array(SHA256.hash(data: Array(secret.utf8))))!
    }
}

/// The ERROR a server ended a connection with, shared by the connection and its handler.
final class ServerErrorBox: Sendable {
    let value = Mutex<ErrorFrame?>(nil)
}

struct Outgoing {
    var frame: Frame
    var promise: EventLoopPromise<Frame>
}

/// Matches answers to outstanding requests by id.
final class ClientHandler: ChannelDuplexHandler {
    typealias InboundIn = Frame
    typealias OutboundIn = Outgoing
    typealias OutboundOut = Frame

    private var waiting: [UInt64: EventLoopPromise<Frame>] = [:]
    private var serverError: ErrorFrame?
    /// Shared with the connection, which reports it for requests written after the close.
    private let sharedError: ServerErrorBox

    init(error: ServerErrorBox) { self.sharedError = error }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let out = unwrapOutboundIn(data)
        waiting[out.frame.requestID] = out.promise
        context.write(wrapOutboundOut(out.frame), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if case .error(let e) = frame.body {
            serverError = e
            sharedError.value.withLock { $0 = e }
            if let p = waiting.removeValue(forKey: frame.requestID) { p.succeed(frame) }
            return
        }
        waiting.removeValue(forKey: frame.requestID)?.succeed(frame)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let pending = waiting
        waiting.removeAll()
        for p in pending.values { p.fail(BursarClientError.closed(serverError)) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
