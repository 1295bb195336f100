import BursarClient
import BursarLimits
import BursarRedis
import BursarStore
import BursarWire
import Foundation
import Logging
import Testing

/// bursard as operators run it: one command, its own Redis.
@Suite("the bursard process")
struct ProcessTests {
    @Test("with no --redis, bursard runs its own redis-server with AOF in --data-dir and stops it cleanly")
    func embedded() async throws {
        let bin = try BursardProcess.binary()
        let dir = NSTemporaryDirectory() + "bursar-embedded-\(UUID().uuidString)"
        let port = try RedisServerProcess.freeLoopbackPort()
        let log = dir + ".log"
        let child = try ChildProcess([bin, "--data-dir", dir, "--listen", "127.0.0.1:\(port)", "--ops", "127.0.0.1:0", "--unix", dir + ".sock"], logPath: log)
        defer { child.terminate() }
        let endpoint = RedisEndpoint.unix(path: dir + "/redis.sock", db: 0)
        let up = try await BursardProcess.answersPing(port: port, while: child, attempts: 400)
        try #require(up, "bursard did not start: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")

        // Seed through the embedded Redis's private socket, then CHECK over TCP and the unix socket.
        let redis = RedisClient(configuration: RedisClientConfiguration(endpoint: endpoint), logger: Harness.logger)
        defer { redis.shutdown() }
        let store = MetadataStore(redis: redis)
        let org = try await store.createOrganization(name: "solo", metered: true, credits: 9_000)
        let owner = try await store.createUser(org: org.id, email: "o-\(org.id)@solo.test", name: "o", role: .owner)
        let project = try await store.createProject(org: org.id, name: "p")
        let key = try await store.createKey(org: org.id, project: project.id, user: owner.id, name: "k", limits: KeyLimits())
        let tcp = try await BursarConnection.connect(host: "127.0.0.1", port: port)
        #expect(try await tcp.check(.make(KeyDigest(secret: key.secret), cost: 1_000)).allowed)
        let unix = try await BursarConnection.connect(unixSocketPath: dir + ".sock")
        #expect(try await unix.check(.make(KeyDigest(secret: key.secret), cost: 1_000)).orgCreditsRemaining == 7_000)

        // The supervisor restarts a crashed redis-server; the AOF (fsync every second) keeps the counters.
        try await Task.sleep(for: .milliseconds(1_500))
        let info = try await redis.send(RedisCommand("INFO", "server")).string ?? ""
        let redisPID = try #require(info.split(separator: "\r\n").first { $0.hasPrefix("process_id:") }.flatMap { Int32($0.dropFirst(11)) })
        kill(redisPID, SIGKILL)
        let afterCrash = try await checkUntilAnswered(tcp, .make(KeyDigest(secret: key.secret), cost: 1_000), attempts: 200, pause: .milliseconds(50))
        #expect(afterCrash.allowed)
        #expect(afterCrash.orgCreditsRemaining == 6_000)
        #expect(try String(contentsOfFile: log, encoding: .utf8).contains("embedded redis-server restarted"))
        await tcp.close()
        await unix.close()

        // SIGTERM: bursard exits 0, its redis-server is gone, and the AOF holds the debits.
        child.signal(SIGTERM)
        #expect(await TestBursard.waitForExit(child, within: .seconds(10)))
        #expect(child.exitCode == 0)
        #expect(!FileManager.default.fileExists(atPath: dir + "/redis.sock"))
        let aof = try FileManager.default.contentsOfDirectory(atPath: dir + "/appendonlydir")
            .map { String(decoding: try Data(contentsOf: URL(fileURLWithPath: dir + "/appendonlydir/" + $0)), as: UTF8.self) }.joined()
        // Scripts are replicated to the AOF as their effects: the credit debits are in the log.
        let credits = "br:{o\(org.id)}:credits"
        #expect(aof.contains("INCRBY\r\n$\(credits.utf8.count)\r\n\(credits)\r\n$5\r\n-1000\r\n"))
    }

    @Test("--appendfsync always: a redis-server killed straight after a burst of debits loses none of them")
    func appendFsyncAlways() async throws {
        let bin = try BursardProcess.binary()
        let dir = NSTemporaryDirectory() + "bursar-fsync-\(UUID().uuidString)"
        let port = try RedisServerProcess.freeLoopbackPort()
        let log = dir + ".log"
        let child = try ChildProcess([bin, "--data-dir", dir, "--appendfsync", "always", "--listen", "127.0.0.1:\(port)", "--ops", "127.0.0.1:0"], logPath: log)
        defer { child.terminate() }
        let up = try await BursardProcess.answersPing(port: port, while: child, attempts: 400)
        try #require(up, "bursard did not start: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        let redis = RedisClient(configuration: RedisClientConfiguration(endpoint: .unix(path: dir + "/redis.sock", db: 0)), logger: Harness.logger)
        defer { redis.shutdown() }
        #expect(try await redis.send(RedisCommand("CONFIG", "GET", "appendfsync")).array?.last?.string == "always")

        let store = MetadataStore(redis: redis)
        let org = try await store.createOrganization(name: "fsync", metered: true, credits: 100_000)
        let owner = try await store.createUser(org: org.id, email: "o-\(org.id)@fsync.test", name: "o", role: .owner)
        let project = try await store.createProject(org: org.id, name: "p")
        let key = try await store.createKey(org: org.id, project: project.id, user: owner.id, name: "k", limits: KeyLimits())
        let tcp = try await BursarConnection.connect(host: "127.0.0.1", port: port)
        defer { Task { await tcp.close() } }
        var last: CheckResult?
        // Twenty admissions (a CHECK that misses the 50 ms deadline on a loaded machine is
        // released again, and retried).
        for _ in 0..<20 { last = try await checkUntilAnswered(tcp, .make(KeyDigest(secret: key.secret), cost: 1_000), attempts: 50, pause: .milliseconds(20)) }
        #expect(last?.orgCreditsRemaining == 80_000)
        // No pause: the last debit was acknowledged a moment ago.
        let info = try await redis.send(RedisCommand("INFO", "server")).string ?? ""
        let redisPID = try #require(info.split(separator: "\r\n").first { $0.hasPrefix("process_id:") }.flatMap { Int32($0.dropFirst(11)) })
        kill(redisPID, SIGKILL)
        let after = try await checkUntilAnswered(tcp, .make(KeyDigest(secret: key.secret), cost: 1_000), attempts: 200, pause: .milliseconds(50))
        #expect(after.allowed)
        #expect(after.orgCreditsRemaining == 79_000, "every acknowledged debit survived the crash")
    }

    @Test("a missing redis-server binary is a clear error that names the fix")
    func missingRedis() async throws {
        let bin = try BursardProcess.binary()
        let log = NSTemporaryDirectory() + "bursard-missing-\(UUID().uuidString).log"
        let child = try ChildProcess([bin, "--data-dir", NSTemporaryDirectory() + "bursar-none", "--listen", "127.0.0.1:0", "--ops", "127.0.0.1:0"],
                                    logPath: log, environment: ["PATH": "/nonexistent"])
        child.waitForExit()
        #expect(child.exitCode == 1)
        let text = try String(contentsOfFile: log, encoding: .utf8)
        #expect(text.contains("redis-server was not found"))
        #expect(text.contains("apt-get install -y redis-server"))
        #expect(text.contains("--redis"))
    }

    @Test("a bad flag value is refused at start-up with a message that names it")
    func badFlag() async throws {
        let bin = try BursardProcess.binary()
        let log = NSTemporaryDirectory() + "bursard-flag-\(UUID().uuidString).log"
        let child = try ChildProcess([bin, "--listen", "nowhere", "--redis", "redis://127.0.0.1:1"], logPath: log)
        child.waitForExit()
        #expect(child.exitCode != 0)
        #expect(try String(contentsOfFile: log, encoding: .utf8).contains("--listen 'nowhere'"))
    }
}
