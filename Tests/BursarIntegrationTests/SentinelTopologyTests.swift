import BursarBench
@testable import BursarRedis
import BursarRedisTesting
import BursarStore
import Foundation
import Testing

/// Redis Sentinel with real processes started by the tests (a master, a replica, three
/// sentinels): the sentinels name the master and promote the replica when it stops; bursard
/// configured with `redis+sentinel://` follows a failover under load, and the audit says what
/// it cost.
@Suite("Redis Sentinel: topology and failover", .serialized)
struct SentinelTopologyTests {
    @Test("--redis URLs: one server, a cluster from seeds, a master through sentinels; bad ones are named")
    func urls() throws {
        #expect(try RedisTarget(url: "redis://10.0.0.1:6380/2") == .server(.tcp(host: "10.0.0.1", port: 6380, db: 2)))
        #expect(try RedisTarget(url: "redis+cluster://a:7000,b:7001") == .cluster(seeds: [.tcp(host: "a", port: 7000, db: 0), .tcp(host: "b", port: 7001, db: 0)]))
        #expect(try RedisTarget(url: "redis+sentinel://s1:26379,s2:26380/bursar") == .sentinel(
            sentinels: [.tcp(host: "s1", port: 26379, db: 0), .tcp(host: "s2", port: 26380, db: 0)], master: "bursar", db: 0))
        #expect(try RedisTarget(url: "redis+sentinel://s1:26379/bursar/3") == .sentinel(sentinels: [.tcp(host: "s1", port: 26379, db: 0)], master: "bursar", db: 3))
        for (bad, says) in [
            ("redis+cluster://a:7000/1", "no path"), ("redis+cluster://a", "host:port"), ("redis+cluster://a:0", "1…65535"),
            ("redis+cluster://", "host:port"), ("redis+sentinel://s1:26379", "MASTERNAME"), ("redis+sentinel://s1:26379/", "MASTERNAME"),
            ("redis+sentinel://s1:26379/m/x", "database"), ("http://x", "redis://"),
        ] {
            #expect(throws: RedisError.self, "\(bad)") { try RedisTarget(url: bad) }
            do { _ = try RedisTarget(url: bad) } catch { #expect(error.message.contains(says), "\(bad): \(error.message)") }
        }
        #expect(RedisTarget.cluster(seeds: [.tcp(host: "a", port: 1, db: 0)]).description == "redis+cluster://a:1")
    }

    @Test("bursard through the sentinels: a failover under load (the old master demoted); bursard finds the new master and the audit says what was lost")
    func bursardFollowsFailover() async throws {
        let setup = try RedisSentinelProcess(replicas: 1, sentinels: 3, downAfterMs: 1_000)
        defer { setup.stop() }
        let redis = RedisClient(configuration: RedisClientConfiguration(target: try RedisTarget(url: setup.url), ioTimeoutMs: 5_000), logger: Harness.logger)
        defer { redis.shutdown() }
        let opsPort = try RedisServerProcess.freeLoopbackPort()
        let bursard = try await BursardProcess(redisURL: setup.url, opsPort: opsPort, extraArguments: ["--deadline-ms", "500"])
        defer { bursard.stop() }
        let c = ClusterTests.bench(port: bursard.port, duration: .seconds(5))
        let world = try await BenchWorld.seed(c.workload, store: MetadataStore(redis: redis))
        let before = try setup.masterAddress()
        // A second into the run, the sentinels are told to fail over: the replica is promoted and
        // the old master, still running, is turned into its replica (READONLY to writers).
        let failover = Task {
            try await Task.sleep(for: .seconds(1))
            let s = try RedisConnection(endpoint: .tcp(host: "127.0.0.1", port: setup.sentinelPorts[0], db: 0), connectTimeoutMs: 1_000, ioTimeoutMs: 5_000)
            let reply = try s.pipeline([RedisCommand("SENTINEL", "FAILOVER", setup.masterName)])[0]
            for _ in 0..<300 {
                if let now = try? setup.masterAddress(), now.port != before.port { return (reply, now.port) }
                try await Task.sleep(for: .milliseconds(100))
            }
            return (reply, before.port)
        }
        let result = try await BenchRunner.run(c, world: world)
        let (reply, after) = try await failover.value
        #expect(reply == .status("OK"), "\(reply)")
        #expect(after != before.port, "the sentinels promoted the replica")
        // The failover ends when the old master, demoted, has synced from the new one: the
        // sentinels reconfigure it on their next look at it, and until its sync is done it
        // refuses writes, then answers LOADING while it loads. Wait for that, so the audit and the
        // run below see the state after the failover, not its tail.
        var demoted = false
        for _ in 0..<300 {
            let c = try? RedisConnection(endpoint: .tcp(host: "127.0.0.1", port: before.port, db: 0), connectTimeoutMs: 1_000, ioTimeoutMs: 5_000)
            let role = (try? c?.pipeline([RedisCommand("ROLE")])[0])?.array
            c?.close()
            if role?.first?.string == "slave", role?.count ?? 0 >= 4, role?[3].string == "connected" { demoted = true; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(demoted, "the old master became a replica of the new one and synced")
        // The audit reads the new master, through a client that resolves it now (the test's own
        // client may still read from the old master: reads are not refused by a replica).
        let current = RedisClient(configuration: RedisClientConfiguration(target: try RedisTarget(url: setup.url), ioTimeoutMs: 5_000), logger: Harness.logger)
        defer { current.shutdown() }
        // What the old master took between the promotion and its demotion is gone with its
        // resync, admissions' delivery confirmations included: their entries stay in the new
        // master's undelivered set, so the audit does not wait long for them to resolve.
        let audit = try await BenchAudit.run(world: world, ledger: result.ledger, redis: current, resolveWait: .seconds(2))
        print("sentinel failover: \(before.host):\(before.port) → 127.0.0.1:\(after); decisions \(result.decisions), allowed \(result.allowed), store_unavailable \(result.denied[.storeUnavailable] ?? 0); audit: \(audit.summary)")
        #expect(result.allowed > 0 && result.errors == 0 && result.unanswered == 0)
        #expect(audit.doubleDebits == 0 && audit.unattributed == 0, "\(audit.summary)")
        // After the failover, decisions carry on at the new master.
        let later = try await BenchRunner.run(ClusterTests.bench(port: bursard.port, duration: .milliseconds(800)), world: world)
        #expect(later.allowed > 0 && (later.denied[.storeUnavailable] ?? 0) == 0, "\(later.denied)")
        // bursard heard the sentinels announce the switch, and each of its connections found the
        // master through them again.
        let switches = try await ClusterTests.metric(opsPort, "bursar_redis_sentinel_master_switches_total")
        let resolutions = try await ClusterTests.metric(opsPort, "bursar_redis_sentinel_master_resolutions_total")
        let connects = try await ClusterTests.metric(opsPort, "bursar_redis_connects_total")
        #expect(switches >= 1, "bursar_redis_sentinel_master_switches_total \(switches)")
        #expect(resolutions >= 2 && resolutions == connects, "resolutions \(resolutions), connects \(connects)")
    }

    @Test("three sentinels find the master, and after it stops they promote the replica")
    func failover() async throws {
        let setup = try RedisSentinelProcess(replicas: 1, sentinels: 3, downAfterMs: 1_000)
        defer { setup.stop() }
        let master = try setup.masterAddress()
        #expect(master.port == { if case .tcp(let p) = setup.dataNodes[0].listen { return p } else { return 0 } }())
        setup.dataNodes[0].stop()
        let replicaPort: Int = { if case .tcp(let p) = setup.dataNodes[1].listen { return p } else { return 0 } }()
        var promoted = false
        for _ in 0..<300 where !promoted {  // down-after 1 s + election; up to 30 s on a loaded machine
            promoted = (try? setup.masterAddress(askingSentinel: 1).port) == replicaPort
            if !promoted { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(promoted)
        let c = try RedisConnection(endpoint: setup.dataNodes[1].endpoint, connectTimeoutMs: 1_000, ioTimeoutMs: 2_000)
        let role = try c.pipeline([RedisCommand("ROLE")])[0].array?.first?.string
        #expect(role == "master")
    }
}
