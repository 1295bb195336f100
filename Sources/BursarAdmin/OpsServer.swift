public import Hummingbird
import HummingbirdCore
import HummingbirdTLS
public import Logging
public import NIOCore

/// Where the ops port listens and what it serves.
public struct OpsConfiguration: Sendable {
    /// Host to bind (default loopback: the admin API is not meant for the open network).
    public var host: String
    /// Port (0 picks a free one).
    public var port: Int
    /// Serve HTTPS with this certificate chain and key (PEM files); nil serves plain HTTP.
    public var tls: OpsTLS?

    /// A configuration; the default is 127.0.0.1:7421, plain HTTP.
    public init(host: String = "127.0.0.1", port: Int = 7421, tls: OpsTLS? = nil) {
        self.host = host
        self.port = port
        self.tls = tls
    }
}

/// The ops port's TLS identity: PEM files read at start-up.
public struct OpsTLS: Sendable, Hashable {
    /// The certificate chain, leaf first (PEM).
    public var certificatePath: String
    /// The private key (PEM).
    public var keyPath: String

    /// A TLS identity.
    public init(certificatePath: String, keyPath: String) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
    }
}

/// Where the data plane stands with its store, as `/readyz` reports it.
public struct StoreStatus: Sendable {
    /// `available`, `unavailable_deny` or `unavailable_local` (docs/protocol.md, "Store failure policy").
    public var mode: String
    /// Whether CHECKs can still be admitted without Redis (the store failure policy `allow`).
    public var admitsLocally: Bool
    /// Local admissions awaiting replay into Redis.
    public var pendingReplay: Int

    /// A status.
    public init(mode: String, admitsLocally: Bool, pendingReplay: Int) {
        self.mode = mode
        self.admitsLocally = admitsLocally
        self.pendingReplay = pendingReplay
    }
}

/// What the ops port reports about the process: metrics text and readiness.
public struct OpsProbes: Sendable {
    /// The Prometheus text exposition.
    public var metrics: @Sendable () -> String
    /// nil when ready to decide, else why not (Redis unreachable, scripts not loaded…).
    public var readiness: @Sendable () async -> String?
    /// The store's status, read after `readiness` (nil: not reported).
    public var store: (@Sendable () -> StoreStatus)?

    /// Probes.
    public init(
        metrics: @escaping @Sendable () -> String, readiness: @escaping @Sendable () async -> String?,
        store: (@Sendable () -> StoreStatus)? = nil
    ) {
        self.metrics = metrics
        self.readiness = readiness
        self.store = store
    }
}

/// The ops port: bursard's HTTP server (Hummingbird): `/metrics`, `/healthz`, `/readyz` (no
/// authentication) and the admin API under `/v1`.
public enum OpsServer {
    /// The router with every ops route. `pages` adds routes served beside the admin API (the web
    /// console); they are added first, so the admin API's JSON error middleware does not wrap them.
    public static func router(
        service: AdminService, probes: OpsProbes? = nil, pages: (Router<BasicRequestContext>) -> Void = { _ in }
    ) -> Router<BasicRequestContext> {
        let router = Router()
        // First, so that it wraps every route: the console's pages and the admin API alike.
        router.add(middleware: RequestBodyDrainMiddleware())
        pages(router)
        if let probes {
            router.get("metrics") { _, _ in
                var headers = HTTPFields()
                headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: probes.metrics())))
            }
            router.get("healthz") { _, _ in APIError.render(status: .ok, ProbeBody(status: "ok", reason: nil)) }
            router.get("readyz") { _, _ in
                let reason = await probes.readiness()
                let store = probes.store?()
                var body = ProbeBody(status: "ready", reason: reason, store: store?.mode, pendingReplay: store?.pendingReplay)
                guard reason != nil else { return APIError.render(status: .ok, body) }
                // Redis is away. Still ready when CHECKs are admitted locally (store failure policy
                // `allow`): pulling the sidecar out of service would deny everything instead.
                if store?.admitsLocally == true {
                    body.status = "degraded"
                    return APIError.render(status: .ok, body)
                }
                body.status = "not_ready"
                return APIError.render(status: .serviceUnavailable, body)
            }
        }
        AdminRoutes.add(to: router, service: service)
        return router
    }

    /// Reads and checks the TLS identity (bursard does this before it starts anything, so a bad
    /// file stops it with a message rather than a failed service).
    public static func checkTLS(_ tls: OpsTLS) throws {
        _ = try tlsConfiguration(tls)
    }

    static func tlsConfiguration(_ tls: OpsTLS) throws -> TLSConfiguration {
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        do {
            chain = try NIOSSLCertificate.fromPEMFile(tls.certificatePath)
        } catch {
            throw OpsTLSError("--ops-tls-cert \(tls.certificatePath): not a readable PEM certificate chain (\(error))")
        }
        guard !chain.isEmpty else { throw OpsTLSError("--ops-tls-cert \(tls.certificatePath) holds no PEM certificate") }
        do {
            key = try NIOSSLPrivateKey(file: tls.keyPath, format: .pem)
        } catch {
            throw OpsTLSError("--ops-tls-key \(tls.keyPath): not a readable PEM private key (\(error))")
        }
        return .makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
    }

    /// The ops application, a `Service` to run in bursard's `ServiceGroup`. `onRunning` receives
    /// the bound port. Throws when the TLS certificate or key cannot be read.
    public static func application(
        configuration: OpsConfiguration, service: AdminService, probes: OpsProbes? = nil,
        pages: (Router<BasicRequestContext>) -> Void = { _ in }, group: any EventLoopGroup, logger: Logger,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        var server = HTTPServerBuilder.http1()
        if let tls = configuration.tls { server = try .tls(.http1(), tlsConfiguration: tlsConfiguration(tls)) }
        return Application(
            router: router(service: service, probes: probes, pages: pages),
            server: server,
            configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port), serverName: "bursard"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? configuration.port) },
            eventLoopGroupProvider: .shared(group),
            logger: logger)
    }
}

/// The ops port's TLS identity could not be used.
public struct OpsTLSError: Error, Sendable, CustomStringConvertible {
    /// What is wrong.
    public var description: String
    init(_ description: String) { self.description = description }
}

/// The body of `/healthz` and `/readyz`.
struct ProbeBody: Codable, Sendable {
    /// `ok`, `ready`, `degraded` (Redis away, CHECKs admitted locally) or `not_ready`.
    var status: String
    /// Why not ready or degraded.
    var reason: String?
    /// The store mode (`/readyz` only).
    var store: String?
    /// Local admissions awaiting replay (`/readyz` only).
    var pendingReplay: Int?

    enum CodingKeys: String, CodingKey {
        case status, reason, store
        case pendingReplay = "pending_replay"
    }
}
