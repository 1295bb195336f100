import BursarAPI
@_spi(Testing) import BursarAdmin
import BursarClient
import BursarConsole
import BursarRBAC
import BursarRedis
import BursarServer
@_spi(Testing) import BursarStore
import BursarWire
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOPosix
import Testing

/// A real redis-server on an ephemeral port; the store, the admin service and its router on it;
/// and an in-process data plane (engine + TCP listener) so tests can CHECK keys the API made.
/// Every admin response a test receives is validated against proto/openapi.json.
struct AdminHarness: Sendable {
    let redis: RedisClient
    let redisServer: RedisServerProcess
    let store: MetadataStore
    let service: AdminService
    let engine: DecisionEngine
    let metrics: ServerMetrics
    let port: Int
    let api: API

    static let logger: Logger = {
        var l = Logger(label: "test")
        l.logLevel = .critical
        return l
    }()

    static let document: OpenAPIDocument = {
        do { return try OpenAPIDocument.load() } catch { fatalError("proto/openapi.json does not load: \(error)") }
    }()

    func connect() async throws -> BursarConnection {
        try await BursarConnection.connect(host: "127.0.0.1", port: port)
    }

    /// CHECKs one request with a secret; returns the result.
    func check(_ secret: String, model: String = "m", tokens: UInt32 = 10, cost: Int64 = 1_000) async throws -> CheckResult {
        let c = try await connect()
        let result: CheckResult
        do {
            result = try await c.check(CheckRequest(
                digest: KeyDigest(secret: secret), model: try ModelName(model), inputTokens: tokens, maxOutputTokens: 0, estimatedCost: cost))
        } catch {
            await c.close()
            throw error
        }
        await c.close()
        return result
    }
}

/// Runs `body` with a fresh harness, then tears it down. With `clock: .testFrozen` the data plane's
/// limiter and the admin API's usage reads both take an organization's time from
/// `MetadataStore.setTestClock` once it is set.
/// The router serves the web console too (`/console`), with sessions of `consoleSessionTTL` seconds.
func withAdmin<T: Sendable>(
    clock: ScriptClock = .redis, consoleSessionTTL: Int = 3600, _ body: @Sendable (AdminHarness) async throws -> T
) async throws -> T {
    let redisServer = try RedisServerProcess.ephemeral()
    let metrics = ServerMetrics(version: "test")
    let redis = RedisClient(
        configuration: RedisClientConfiguration(endpoint: redisServer.endpoint, ioTimeoutMs: 5_000, onRoundTrip: metrics.roundTripObserver),
        logger: AdminHarness.logger)
    // Provider secrets are stored only sealed: a fresh random key-encryption key per harness.
    let keyring = try SecretKeyring(parsing: "test:" + SecretKeyring.newKey(), source: "test")
    let store = MetadataStore(redis: redis, secrets: keyring)
    let engine = DecisionEngine(
        redis: redis, limiter: Limiter(clock: clock), configuration: EngineConfiguration(deadline: .seconds(10)), logger: AdminHarness.logger,
        metrics: metrics)
    let maintenance = engine.startMaintenance()
    let server = DataPlaneServer(
        configuration: ListenerConfiguration(host: "127.0.0.1", port: 0), engine: engine,
        group: MultiThreadedEventLoopGroup.singleton, logger: AdminHarness.logger)
    let port = try await server.start()
    metrics.observe(engine: engine, server: server, invalidation: nil)
    let service = AdminService(store: store, audit: AuditLog(redis: redis), logger: AdminHarness.logger, clock: clock)
    let probes = OpsProbes(metrics: { metrics.render() }, readiness: { await engine.readiness() })
    let console = Console(service: service, configuration: ConsoleConfiguration(sessionTTLSeconds: consoleSessionTTL), logger: AdminHarness.logger)
    let app = Application(router: OpsServer.router(service: service, probes: probes, pages: { console.add(to: $0) }), logger: AdminHarness.logger)
    defer {
        maintenance.cancel()
        redis.shutdown()
        redisServer.stop()
    }
    do {
        let result = try await app.test(.router) { client in
            try await body(AdminHarness(
                redis: redis, redisServer: redisServer, store: store, service: service, engine: engine, metrics: metrics, port: port,
                api: API(client: client)))
        }
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}

/// An admin API reply.
struct Reply: Sendable, CustomStringConvertible {
    let status: Int
    let body: Data

    /// The body decoded as `T`.
    func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try APIJSON.decoder().decode(T.self, from: body)
    }

    /// The error code of an error reply.
    var code: String? { (try? decode(ErrorBody.self))?.error.code }

    var description: String { "\(status) \(String(decoding: body, as: UTF8.self))" }
}

/// The admin API through Hummingbird's router test client. Every response is checked against
/// the OpenAPI document: an undocumented status or a body off its schema records an issue.
struct API: Sendable {
    let client: any TestClientProtocol

    func call(_ method: HTTPRequest.Method, _ path: String, token: String?, json: String? = nil) async throws -> Reply {
        var headers: HTTPFields = [:]
        if let token { headers[.authorization] = "Bearer \(token)" }
        if json != nil { headers[.contentType] = "application/json" }
        let response = try await client.execute(uri: path, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) })
        let body = Data(response.body.readableBytesView)
        // proto/openapi.json is the admin API (`/v1`); the probes (/metrics, /healthz, /readyz)
        // are not part of it and are checked by their own tests.
        guard path.hasPrefix("/v1/") else { return Reply(status: Int(response.status.code), body: body) }
        do {
            try AdminHarness.document.validateResponse(
                method: method.rawValue, path: path, status: Int(response.status.code), body: body, contentType: response.headers[.contentType])
        } catch {
            Issue.record("\(method) \(path) → \(response.status.code) does not match proto/openapi.json: \(error)\nbody: \(String(decoding: body, as: UTF8.self))")
        }
        return Reply(status: Int(response.status.code), body: body)
    }

    /// A request the OpenAPI document does not describe (a method a path does not have), so its
    /// answer is not validated against it; returns the status, the `Allow` header and the body.
    func undocumented(_ method: HTTPRequest.Method, _ path: String, token: String?) async throws -> (reply: Reply, allow: String?) {
        var headers: HTTPFields = [:]
        if let token { headers[.authorization] = "Bearer \(token)" }
        let response = try await client.execute(uri: path, method: method, headers: headers, body: nil)
        return (Reply(status: Int(response.status.code), body: Data(response.body.readableBytesView)), response.headers[.allow])
    }

    func call(_ method: HTTPRequest.Method, _ path: String, token: String?, body: some Encodable) async throws -> Reply {
        try await call(method, path, token: token, json: String(decoding: try APIJSON.encoder().encode(body), as: UTF8.self))
    }

    func get(_ path: String, _ token: String?) async throws -> Reply { try await call(.get, path, token: token) }
}

/// One organization seeded for permission tests: an Owner; a Project Admin, a Project Member and
/// a target member ("tess", whose key admins may manage) of project P; a member with no project;
/// and a second project Q with nobody but the Owner.
struct World: Sendable {
    let org: UInt64
    let owner: (id: UInt64, token: String)
    let admin: (id: UInt64, token: String)
    let member: (id: UInt64, token: String)
    let tess: (id: UInt64, token: String)
    let outsider: (id: UInt64, token: String)
    let p: UInt64
    let q: UInt64
    /// A key of tess in P.
    let tessKey: UInt64
    /// A key of the project member in P.
    let memberKey: UInt64
    /// An org member in no project, to be added to P.
    let spare: UInt64

    /// The token of a standing (a column of permissions.tsv).
    func token(_ standing: Standing) -> String {
        switch standing {
        case .orgOwner: owner.token
        case .projectAdmin: admin.token
        case .projectMember: member.token
        case .orgMemberNoProject: outsider.token
        }
    }

    func id(_ standing: Standing) -> UInt64 {
        switch standing {
        case .orgOwner: owner.id
        case .projectAdmin: admin.id
        case .projectMember: member.id
        case .orgMemberNoProject: outsider.id
        }
    }
}

extension AdminHarness {
    /// Seeds a world through the store (fast), with unique e-mails.
    func world(_ tag: String = UUID().uuidString.prefix(8).lowercased()) async throws -> World {
        let org = try await store.createOrganization(name: "org-\(tag)")
        func person(_ name: String, _ role: OrgRole) async throws -> (id: UInt64, token: String) {
            let (u, token) = try await store.addMember(org: org.id, email: "\(name)-\(tag)@example.test", name: name, role: role)
            return (u.id, token!)
        }
        let owner = try await person("olivia", .owner)
        let admin = try await person("adam", .member)
        let member = try await person("mia", .member)
        let tess = try await person("tess", .member)
        let outsider = try await person("nora", .member)
        let spare = try await person("sam", .member)
        let p = try await store.createProject(org: org.id, name: "Production", models: ["gpt-5.5", "claude-opus-4.8", "m"], rpm: 600, tpm: 120_000, monthlyBudget: 2_000_000_000_000)
        let q = try await store.createProject(org: org.id, name: "Sandbox")
        try await store.setMembership(Membership(orgID: org.id, projectID: p.id, userID: admin.id, role: .admin))
        try await store.setMembership(Membership(orgID: org.id, projectID: p.id, userID: member.id, role: .member))
        try await store.setMembership(Membership(orgID: org.id, projectID: p.id, userID: tess.id, role: .member))
        let tessKey = try await store.createKey(org: org.id, project: p.id, user: tess.id, name: "tess-key", limits: KeyLimits())
        let memberKey = try await store.createKey(org: org.id, project: p.id, user: member.id, name: "mia-key", limits: KeyLimits())
        return World(
            org: org.id, owner: owner, admin: admin, member: member, tess: tess, outsider: outsider, p: p.id, q: q.id,
            tessKey: tessKey.key.id, memberKey: memberKey.key.id, spare: spare.id)
    }
}

extension DecisionEngine {
    /// Runs the engine's maintenance (`run()`) in a task, as bursard's service group does; the
    /// caller cancels it when done.
    func startMaintenance() -> Task<Void, Never> { Task { try? await self.run() } }
}
