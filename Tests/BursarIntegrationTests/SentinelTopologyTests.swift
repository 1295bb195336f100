@testable import BursarRedis
import Foundation
import Testing

/// Sentinel groundwork (issue 7): a real master, replica and three sentinels started by the
/// test; the sentinels name the master, and after the master is stopped they name the replica.
@Suite("Redis Sentinel: topology and failover", .serialized)
struct SentinelTopologyTests {
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
