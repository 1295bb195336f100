import BursarClient
import BursarLimits
import BursarRedis
import BursarServer
@_spi(Testing) import BursarStore
import BursarWire
import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing

/// A real redis-server on an ephemeral loopback port, the store on it, and one in-process bursard
/// data plane (engine + TCP listener on port 0) whose scripts run on the test clock.
final class Harness: Sendable {
    let redisServer: RedisServerProcess
    let redis: RedisClient
    let store: MetadataStore
    let engine: DecisionEngine
    let server: DataPlaneServer
    let port: Int
    let maintenance: Task<Void, Never>

    static let logger: Logger = {
        var l = Logger(label: "test")
        l.logLevel = .critical
        return l
    }()

    private init(redisServer: RedisServerProcess, redis: RedisClient, engine: DecisionEngine, server: DataPlaneServer, port: Int) {
        self.redisServer = redisServer
        self.redis = redis
        self.store = MetadataStore(redis: redis)
        self.engine = engine
        self.server = server
        self.port = port
        self.maintenance = engine.startMaintenance()
    }

    /// Starts everything. A missing redis-server fails the test with the install hint.
    static func start(
        reservationTTLMs: Int64 = 15 * 60 * 1000, deadline: TimeAmount = .seconds(10),
        negativeCacheTTL: TimeAmount = .seconds(1), appendOnly: Bool = false, storeFailure: StoreFailurePolicy = StoreFailurePolicy(),
        redisIOTimeoutMs: Int = 5_000, cacheTTL: TimeAmount = .seconds(5)
    ) async throws -> Harness {
        let redisServer = try RedisServerProcess.ephemeral(appendOnly: appendOnly)
        let redis = RedisClient(
            configuration: RedisClientConfiguration(
                endpoint: redisServer.endpoint, ioTimeoutMs: redisIOTimeoutMs, eventLoops: MultiThreadedEventLoopGroup.singleton),
            logger: logger)
        let engine = DecisionEngine(
            redis: redis, limiter: Limiter(clock: .testFrozen, reservationTTLMs: reservationTTLMs),
            configuration: EngineConfiguration(
                deadline: deadline, cacheTTL: cacheTTL, negativeCacheTTL: negativeCacheTTL, storeFailure: storeFailure,
                replayInterval: .milliseconds(50),
                // One engine per Redis: no other instance to sweep, and a heartbeat only every 15 s
                // (tests that count commands see none).
                instanceLease: .seconds(60)),
            logger: logger)
        await engine.prepare()
        let server = DataPlaneServer(
            configuration: ListenerConfiguration(host: "127.0.0.1", port: 0), engine: engine,
            group: MultiThreadedEventLoopGroup.singleton, logger: logger)
        let port = try await server.start()
        return Harness(redisServer: redisServer, redis: redis, engine: engine, server: server, port: port)
    }

    func connect() async throws -> BursarConnection {
        try await BursarConnection.connect(host: "127.0.0.1", port: port)
    }

    func stop() async {
        await server.stop()
        await engine.shutdown(timeout: .seconds(1))
        maintenance.cancel()
        redis.shutdown()
        redisServer.stop()
    }

    /// Moves the frozen clock of `org` forward.
    func advance(org: UInt64, by duration: Duration) async throws {
        let us = duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
        try await store.setTestClock(org: org, us: try await clockUs(org: org) + us)
    }

    /// Freezes the clock of `org` at `ms` (Unix ms).
    func setClock(org: UInt64, toMs ms: Int64) async throws {
        try await store.setTestClock(org: org, us: ms * 1000)
    }

    /// Freezes the clock of `org` at Redis's current time.
    func freezeClock(org: UInt64) async throws {
        try await store.setTestClock(org: org, us: try await redisTimeUs())
    }

    /// The limiter's time for `org`, Unix µs (frozen if set, else Redis's).
    func clockUs(org: UInt64) async throws -> Int64 {
        if let frozen = try await redis.send(RedisCommand("GET", Keyspace.testClock(org))).int { return frozen }
        return try await redisTimeUs()
    }

    func redisTimeUs() async throws -> Int64 {
        let t = try await redis.send(RedisCommand("TIME")).array ?? []
        return (t[0].int ?? 0) * 1_000_000 + (t[1].int ?? 0)
    }

    func integer(_ key: String) async throws -> Int64 {
        try await redis.send(RedisCommand("GET", key)).int ?? 0
    }

    /// A seeded org with an owner, a member, a project and a key.
    struct World: Sendable {
        var org: Organization
        var owner: User
        var member: User
        var project: Project
        var key: CreatedKey
        var digest: KeyDigest { KeyDigest(secret: key.secret) }
    }

    /// Seeds a world. The key belongs to `member` (a Project Member) unless `ownerKey`.
    func world(
        metered: Bool = false, credits: Int64 = 0, project: (models: [String], rpm: Int64?, tpm: Int64?, budget: Int64?) = ([], nil, nil, nil),
        grant: Grant = Grant(), limits: KeyLimits = KeyLimits(), ownerKey: Bool = false
    ) async throws -> World {
        let org = try await store.createOrganization(name: "acme", metered: metered, credits: credits)
        try await freezeClock(org: org.id)
        let owner = try await store.createUser(org: org.id, email: "olivia-\(org.id)@acme.test", name: "olivia", role: .owner)
        let member = try await store.createUser(org: org.id, email: "mo-\(org.id)@acme.test", name: "mo", role: .member)
        let p = try await store.createProject(
            org: org.id, name: "prod", models: project.models, rpm: project.rpm, tpm: project.tpm, monthlyBudget: project.budget)
        try await store.setMembership(Membership(orgID: org.id, projectID: p.id, userID: member.id, role: .member, grant: grant))
        let key = try await store.createKey(
            org: org.id, project: p.id, user: ownerKey ? owner.id : member.id, name: "k", limits: limits)
        return World(org: org, owner: owner, member: member, project: p, key: key)
    }
}

extension CheckRequest {
    /// A CHECK for a secret with small defaults.
    static func make(_ digest: KeyDigest, model: String = "gpt-5", input: UInt32 = 10, output: UInt32 = 10, cost: Int64 = 1_000) -> CheckRequest {
        CheckRequest(digest: digest, model: try! ModelName(model), inputTokens: input, maxOutputTokens: output, estimatedCost: cost)
    }
}

/// Sends `request` until the answer is something other than `store_unavailable` (Redis starting,
/// restarting, or a short deadline on a loaded machine) or the attempts run out; returns the last answer.
func checkUntilAnswered(_ c: BursarConnection, _ request: CheckRequest, attempts: Int, pause: Duration) async throws -> CheckResult {
    var result = CheckResult.deny(.storeUnavailable)
    for _ in 0..<attempts {
        result = try await c.check(request)
        if result.reason != .storeUnavailable { break }
        try await Task.sleep(for: pause)
    }
    return result
}

/// Runs `body` with a started harness and always stops it.
func withHarness<T>(
    reservationTTLMs: Int64 = 15 * 60 * 1000, deadline: TimeAmount = .seconds(10), appendOnly: Bool = false,
    negativeCacheTTL: TimeAmount = .seconds(1), storeFailure: StoreFailurePolicy = StoreFailurePolicy(), redisIOTimeoutMs: Int = 5_000,
    cacheTTL: TimeAmount = .seconds(5), _ body: (Harness) async throws -> T
) async throws -> T {
    let h = try await Harness.start(
        reservationTTLMs: reservationTTLMs, deadline: deadline, negativeCacheTTL: negativeCacheTTL, appendOnly: appendOnly,
        storeFailure: storeFailure, redisIOTimeoutMs: redisIOTimeoutMs, cacheTTL: cacheTTL)
    do {
        let result = try await body(h)
        await h.stop()
        return result
    } catch {
        await h.stop()
        throw error
    }
}

/// How many times Redis has run `command` (lowercase), from `INFO commandstats`.
func commandCalls(_ h: Harness, _ command: String) async throws -> Int {
    let info = try await h.redis.send(RedisCommand("INFO", "commandstats")).string ?? ""
    guard let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("cmdstat_\(command):") }),
          let range = line.range(of: "calls="), let end = line[range.upperBound...].firstIndex(of: ",")
    else { return 0 }
    return Int(line[range.upperBound..<end]) ?? 0
}

/// Waits (up to 30 s) until Redis has run at least `count` more limiter steps than when called:
/// load has reached it. Steps are counted by their `MGET` (a CHECK that gets past the key's own
/// checks, and a SETTLE or RELEASE of an open reservation, makes exactly one), not by script calls: the steps of one organization that reach Redis
/// together are one call of a batch script (SPEC §13.11), so a count of calls would mean more
/// requests, and more of the run gone, the more requests bursard batches.
func waitForScripts(_ h: Harness, atLeast count: Int) async throws {
    func calls() async throws -> Int { try await commandCalls(h, "mget") }
    let start = try await calls()
    var polls = 0
    while try await calls() < start + count, polls < 3000 {
        polls += 1
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// The installation's reservation seal, read from Redis as every bursard reads it (SPEC §5).
func reservationSeal(_ redis: RedisClient) async throws -> ReservationSeal {
    try #require(try await ReservationSeal.stored(in: redis), "no reservation key in Redis")
}

extension Harness {
    /// The name inside the installation (organization, sequence) of the reservation a client
    /// was given; what Redis keys it by.
    func name(_ id: ReservationID) throws -> ReservationID {
        try #require(engine.reservation(fromClient: id), "the id \(id.hex) names no reservation")
    }

    func name(_ r: CheckResult) throws -> ReservationID { try name(r.reservation) }

    /// The Redis key of the reservation a client was given.
    func recordKey(_ id: ReservationID) throws -> String {
        let n = try name(id)
        return Keyspace.reservation(n.orgID, n.sequence)
    }

    func recordKey(_ r: CheckResult) throws -> String { try recordKey(r.reservation) }

    /// A client's id for a reservation of `org` that was never made: sealed like a real one, so
    /// bursard asks Redis about it (an id that opens to nothing is answered without Redis).
    func unmadeID(org: UInt64) -> ReservationID {
        let counter = ReservationSequence.maxCounter - UInt64.random(in: 0..<1_000_000)
        return engine.clientID(for: ReservationID(orgID: org, sequence: ReservationSequence.make(epoch: max(1, engine.epoch), counter: counter)))
    }
}

extension DecisionEngine {
    /// Runs the engine's maintenance (`run()`) in a task, as bursard's service group does; the
    /// caller cancels it when done.
    func startMaintenance() -> Task<Void, Never> { Task { try? await self.run() } }
}
