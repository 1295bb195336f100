import BursarClient
import BursarLimits
import BursarRedis
import BursarStore
import BursarWire
import Foundation
import Synchronization
import Testing

/// SIGTERM/SIGINT under load: bursard stops accepting, answers every frame it has received, and
/// exits 0 in time; what the clients were answered is exactly what Redis holds.
@Suite("graceful shutdown", .serialized)
struct ShutdownTests {
    /// What one client saw.
    struct Ledger: Sendable {
        /// Net debit the answers imply: admitted estimates, then settle deltas and releases.
        var debit: Int64 = 0
        var admitted = 0
        var settled = 0
        var released = 0
        var denied: [DenyReason: Int] = [:]
        /// Requests that got no answer (the connection closed first).
        var unanswered = 0
        /// Answers that arrived after the signal was sent.
        var answeredAfterSignal = 0

        mutating func add(_ other: Ledger) {
            debit += other.debit
            admitted += other.admitted
            settled += other.settled
            released += other.released
            unanswered += other.unanswered
            answeredAfterSignal += other.answeredAfterSignal
            for (k, v) in other.denied { denied[k, default: 0] += v }
        }
    }

    final class Progress: Sendable {
        let answers = Atomic<Int>(0)
        let signalled = Atomic<Bool>(false)
    }

    /// `workers` request loops per connection, each sending CHECK → (SETTLE | RELEASE | nothing)
    /// back to back until the connection closes. Returns the sum of what was answered.
    func load(_ connections: [ProbeConnection], workers: Int, digest: KeyDigest, progress: Progress) async -> Ledger {
        await withTaskGroup(of: Ledger.self) { group in
            for (ci, connection) in connections.enumerated() {
                for wi in 0..<workers {
                    group.addTask {
                        var ledger = Ledger()
                        var n = ci * 7919 + wi * 104_729
                        func answered() {
                            progress.answers.add(1, ordering: .relaxed)
                            if progress.signalled.load(ordering: .relaxed) { ledger.answeredAfterSignal += 1 }
                        }
                        while true {
                            n += 1
                            let cost = Int64(1_000 + n % 9_000)
                            guard case .checkResult(let r)? = try? await connection.send(.check(.make(digest, input: 3, output: 5, cost: cost))) else {
                                ledger.unanswered += 1
                                break
                            }
                            answered()
                            guard r.allowed else {
                                ledger.denied[r.reason, default: 0] += 1
                                continue
                            }
                            ledger.admitted += 1
                            ledger.debit += cost
                            switch n % 3 {
                            case 0:
                                let actual = n % 2 == 0 ? cost / 3 : cost + 555
                                let body = Frame.Body.settle(SettleRequest(reservation: r.reservation, inputTokens: 3, outputTokens: 4, cost: actual))
                                guard case .settleResult(let s)? = try? await connection.send(body) else {
                                    ledger.unanswered += 1
                                    return ledger
                                }
                                answered()
                                #expect(s.status == .applied)
                                if s.status == .applied {
                                    ledger.settled += 1
                                    ledger.debit += actual - cost
                                }
                            case 1:
                                guard case .releaseResult(let s)? = try? await connection.send(.release(ReleaseRequest(reservation: r.reservation))) else {
                                    ledger.unanswered += 1
                                    return ledger
                                }
                                answered()
                                #expect(s.status == .applied)
                                if s.status == .applied {
                                    ledger.released += 1
                                    ledger.debit -= cost
                                }
                            default:
                                break
                            }
                        }
                        return ledger
                    }
                }
            }
            var total = Ledger()
            for await part in group { total.add(part) }
            return total
        }
    }

    /// The key's spend over all its windows and the org's credit balance, read from Redis.
    func holdings(_ redis: RedisClient, org: UInt64, key: UInt64) async throws -> (spend: Int64, credits: Int64) {
        let names = try await redis.send(RedisCommand("KEYS", Keyspace.org(org) + "s:k:\(key):*")).array ?? []
        var spend: Int64 = 0
        for name in names.compactMap(\.string) { spend += try await redis.send(RedisCommand("GET", name)).int ?? 0 }
        let credits = try await redis.send(RedisCommand("GET", Keyspace.credits(org))).int ?? 0
        return (spend, credits)
    }

    @Test("SIGTERM under pipelined CHECK/SETTLE/RELEASE: exit 0 in time, Redis holds exactly what the clients were answered")
    func sigtermUnderLoad() async throws {
        try await withHarness { h in
            let credits: Int64 = 1 << 50
            let w = try await h.world(metered: true, credits: credits, limits: KeyLimits(budget: 1 << 50))
            let timeout = 10
            let bursard = try await TestBursard.start([
                "--redis", h.redisServer.endpoint.description, "--deadline-ms", "10000", "--shutdown-timeout", "\(timeout)",
            ])
            defer { bursard.stop() }
            var connections: [ProbeConnection] = []
            for _ in 0..<6 { connections.append(try await ProbeConnection.connect(port: bursard.port)) }
            let progress = Progress()
            let digest = w.digest
            let running = Task { [connections] in await load(connections, workers: 12, digest: digest, progress: progress) }

            // Mid-load: well after the first answers, with ~72 requests in flight.
            let warm = ContinuousClock.now + .seconds(30)
            while progress.answers.load(ordering: .relaxed) < 2_000 && ContinuousClock.now < warm { try await Task.sleep(for: .milliseconds(5)) }
            try #require(progress.answers.load(ordering: .relaxed) >= 2_000, "the load never got going: \(bursard.log)")
            progress.signalled.store(true, ordering: .relaxed)
            let signalledAt = ContinuousClock.now
            bursard.child.signal(SIGTERM)

            // Once the listeners are closed, a new connection is refused (or closed unanswered).
            #expect(try await bursard.waitForLog("data plane stopped accepting"))
            if let late = try? await ProbeConnection.connect(port: bursard.port) {
                #expect((try? await late.send(.ping)) == nil, "a connection made after shutdown began was served")
                await late.close()
            }

            let ledger = await running.value
            let exited = await bursard.waitForExit(within: .seconds(timeout + 10))
            let took = ContinuousClock.now - signalledAt
            for c in connections { await c.close() }
            let log = bursard.log
            #expect(exited, "bursard still runs after SIGTERM: \(log)")
            #expect(bursard.child.exitCode == 0, "\(log)")
            #expect(took < .seconds(timeout), "shutdown took \(took)")
            #expect(!log.contains("closing connections hard"), "every connection drains well within the timeout: \(log)")
            for step in ["SIGTERM received", "data plane stopped accepting", "data plane stopped", "ops port stopped", "invalidation listener stopping", "bursard stopped"] {
                #expect(log.contains(step), "missing lifecycle line '\(step)'")
            }

            #expect(ledger.denied.isEmpty, "\(ledger.denied)")
            #expect(ledger.settled > 0 && ledger.released > 0)
            #expect(ledger.answeredAfterSignal > 0, "requests in flight at the signal are answered")
            // Exactness: every debit Redis holds was answered to a client, and every answer is in Redis.
            let held = try await holdings(h.redis, org: w.org.id, key: w.key.key.id)
            #expect(held.spend == ledger.debit, "Redis holds \(held.spend), clients were answered \(ledger.debit) (\(ledger))")
            #expect(held.credits == credits - ledger.debit)
        }
    }

    @Test("SIGINT with the embedded redis-server: exit 0, and a restart on the same --data-dir finds every answered debit (AOF intact)")
    func embeddedRestart() async throws {
        let dir = NSTemporaryDirectory() + "bursar-shutdown-\(UUID().uuidString)"
        let endpoint = RedisEndpoint.unix(path: dir + "/redis.sock", db: 0)
        let first = try await TestBursard.start(["--data-dir", dir, "--shutdown-timeout", "10", "--deadline-ms", "10000"])
        defer { first.stop() }

        let credits: Int64 = 1 << 40
        let (orgID, keyID, digest): (UInt64, UInt64, KeyDigest)
        do {
            let redis = RedisClient(configuration: RedisClientConfiguration(endpoint: endpoint), logger: Harness.logger)
            defer { redis.shutdown() }
            let store = MetadataStore(redis: redis)
            let org = try await store.createOrganization(name: "aof", metered: true, credits: credits)
            let owner = try await store.createUser(org: org.id, email: "o-\(org.id)@aof.test", name: "o", role: .owner)
            let project = try await store.createProject(org: org.id, name: "p")
            let key = try await store.createKey(org: org.id, project: project.id, user: owner.id, name: "k", limits: KeyLimits())
            (orgID, keyID, digest) = (org.id, key.key.id, KeyDigest(secret: key.secret))
        }

        var connections: [ProbeConnection] = []
        for _ in 0..<3 { connections.append(try await ProbeConnection.connect(port: first.port)) }
        let progress = Progress()
        let running = Task { [connections] in await load(connections, workers: 8, digest: digest, progress: progress) }
        let warm = ContinuousClock.now + .seconds(30)
        while progress.answers.load(ordering: .relaxed) < 1_000 && ContinuousClock.now < warm { try await Task.sleep(for: .milliseconds(5)) }
        try #require(progress.answers.load(ordering: .relaxed) >= 1_000, "the load never got going: \(first.log)")
        progress.signalled.store(true, ordering: .relaxed)
        first.child.signal(SIGINT)
        let ledger = await running.value
        #expect(await first.waitForExit(within: .seconds(20)))
        #expect(first.child.exitCode == 0, "\(first.log)")
        for c in connections { await c.close() }
        #expect(first.log.contains("SIGINT received"))
        #expect(first.log.contains("embedded redis-server stopped"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/redis.sock"), "redis-server is gone")

        // Same data dir, new process: the AOF brings back exactly what was answered.
        let second = try await TestBursard.start(["--data-dir", dir])
        defer { second.stop() }
        let redis = RedisClient(configuration: RedisClientConfiguration(endpoint: endpoint), logger: Harness.logger)
        defer { redis.shutdown() }
        let held = try await holdings(redis, org: orgID, key: keyID)
        #expect(ledger.admitted > 0)
        #expect(held.spend == ledger.debit, "after restart Redis holds \(held.spend), clients were answered \(ledger.debit)")
        #expect(held.credits == credits - ledger.debit)
        let probe = try await BursarConnection.connect(host: "127.0.0.1", port: second.port)
        let again = try await checkUntilAnswered(probe, .make(digest, cost: 1_000), attempts: 100, pause: .milliseconds(50))
        #expect(again.allowed)
        #expect(again.orgCreditsRemaining == credits - ledger.debit - 1_000)
        await probe.close()
    }

    @Test("a connection whose frame cannot finish is closed hard at --shutdown-timeout, and bursard still exits 0")
    func timeoutClosesHard() async throws {
        try await withHarness { h in
            let w = try await h.world()
            let bursard = try await TestBursard.start([
                "--redis", h.redisServer.endpoint.description, "--deadline-ms", "60000", "--shutdown-timeout", "0.3", "--log-level", "trace",
            ])
            defer { bursard.stop() }
            let idle = try await ProbeConnection.connect(port: bursard.port)
            let stuck = try await ProbeConnection.connect(port: bursard.port)
            #expect(try await stuck.send(.ping) == .pong)

            // Redis frozen: the CHECK is in flight and stays there (its connection's I/O timeout is 1 s).
            h.redisServer.signal(SIGSTOP)
            defer { h.redisServer.signal(SIGCONT) }
            let pending = Task { try? await stuck.send(.check(.make(w.digest))) }
            // Signal only once bursard has read the CHECK (a frame it never read is rightly unanswered).
            #expect(try await bursard.waitForLog("type=check [BursarServer] request"))
            let signalledAt = ContinuousClock.now
            bursard.child.signal(SIGTERM)
            let exited = await bursard.waitForExit(within: .seconds(10))
            let took = ContinuousClock.now - signalledAt
            h.redisServer.signal(SIGCONT)
            #expect(exited)
            #expect(bursard.child.exitCode == 0, "\(bursard.log)")
            #expect(took < .seconds(6), "exit took \(took)")
            let answer = await pending.value
            let log = bursard.log
            if answer == nil {
                #expect(log.contains("shutdown timeout: closing connections hard"), "\(log)")
            } else {
                // The Redis connection's I/O timeout won the race: the answer is the safe one.
                #expect(answer == .checkResult(.deny(.storeUnavailable)))
            }
            #expect((try? await idle.send(.ping)) == nil, "the idle connection is closed")
            await idle.close()
            await stuck.close()
        }
    }
}
