@testable import BursarRedis
import BursarRedisTesting
import BursarStore
import Testing

/// Redis Cluster groundwork (issue 7): the key → slot function against the cluster's own
/// answers, and a real 3-master, 3-replica cluster started by the test.
@Suite("Redis Cluster: slots and topology", .serialized)
struct ClusterTopologyTests {
    @Test("CRC16 and hash tags as the cluster spec defines them")
    func slotFunction() {
        #expect(ClusterSlot.crc16(Array("123456789".utf8)) == 0x31C3)  // the spec's check value
        #expect(ClusterSlot.of("foo") == 12_182)
        #expect(ClusterSlot.of("{user1000}.following") == ClusterSlot.of("{user1000}.followers"))
        #expect(ClusterSlot.of("foo{}{bar}") == ClusterSlot.of("foo{}{bar}"))  // empty tag: the whole key
        #expect(ClusterSlot.of("foo{{bar}}zap") == ClusterSlot.of("{bar"))       // the tag is "{bar"
        #expect(ClusterSlot.of("foo{bar}{zap}") == ClusterSlot.of("bar"))
        // Every key of one organization shares its hash tag, so its slot.
        #expect(ClusterSlot.of(Keyspace.credits(42)) == ClusterSlot.of(Keyspace.keySpend(42, 7, window: "0")))
    }

    @Test("a 3-master cluster with a replica each: CLUSTER SLOTS parses, covers every slot, and agrees with CLUSTER KEYSLOT")
    func realCluster() async throws {
        let cluster = try RedisClusterProcess(masters: 3, replicasPerMaster: 1)
        defer { cluster.stop() }
        let c = try RedisConnection(endpoint: cluster.nodes[0].endpoint, connectTimeoutMs: 1_000, ioTimeoutMs: 5_000)
        let map = try ClusterSlotMap(clusterSlots: try c.pipeline([RedisCommand("CLUSTER", "SLOTS")])[0])
        #expect(map.coversAllSlots)
        #expect(map.masters.count == 3)
        #expect(map.ranges.allSatisfy { $0.replicas.count == 1 && !$0.master.id.isEmpty })
        for key in ["foo", "{o42}:credits", Keyspace.credits(7), "bursar", "{}x", "a{b}c"] {
            let slot = try c.pipeline([RedisCommand("CLUSTER", "KEYSLOT", key)])[0].int
            #expect(slot == Int64(ClusterSlot.of(key)), "\(key)")
            // The master the map names accepts the key; a node that does not own the slot answers MOVED.
            let owner = try #require(map.master(forSlot: ClusterSlot.of(key)))
            let direct = try RedisConnection(endpoint: .tcp(host: owner.host, port: owner.port, db: 0), connectTimeoutMs: 1_000, ioTimeoutMs: 5_000)
            #expect(try direct.pipeline([RedisCommand("SET", key, "1")])[0] == .status("OK"))
            let other = try #require(map.masters.first { $0 != owner })
            let wrong = try RedisConnection(endpoint: .tcp(host: other.host, port: other.port, db: 0), connectTimeoutMs: 1_000, ioTimeoutMs: 5_000)
            let moved = try wrong.pipeline([RedisCommand("GET", key)])[0]
            #expect(moved == .error("MOVED \(ClusterSlot.of(key)) \(owner.host):\(owner.port)"), "\(moved)")
        }
    }
}
