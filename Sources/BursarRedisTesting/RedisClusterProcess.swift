public import BursarRedis
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A throwaway Redis Cluster on loopback: `masters` redis-server processes in cluster mode, each
/// with `replicasPerMaster` replicas, the 16384 slots split evenly between the masters. For
/// tests and the benchmark; made with the cluster's own commands (CLUSTER MEET, ADDSLOTSRANGE,
/// REPLICATE), so it needs nothing but redis-server.
public final class RedisClusterProcess: @unchecked Sendable {
    /// Every node, masters first (in slot order), then replicas (replica i follows master i % masters).
    public let nodes: [RedisServerProcess]
    /// How many of `nodes` were made masters.
    public let masterCount: Int
    /// Each node's cluster bus port, by index into `nodes`.
    let busPorts: [Int]

    /// The masters as made (failovers may move the role since).
    public var masters: [RedisServerProcess] { Array(nodes.prefix(masterCount)) }

    /// Seed addresses for a client: every node's endpoint.
    public var endpoints: [RedisEndpoint] { nodes.map(\.endpoint) }

    /// The `--redis` URL naming the cluster by two of its nodes (the client discovers the rest).
    public var url: String {
        "redis+cluster://" + nodes.prefix(2).map { "127.0.0.1:\(port($0))" }.joined(separator: ",")
    }

    /// Starts the nodes, joins them, assigns the slots and replicas, and waits until every node
    /// reports `cluster_state:ok` and agrees on the slot map.
    public init(masters: Int = 3, replicasPerMaster: Int = 1, nodeTimeoutMs: Int = 2_000, binary: String? = nil) throws(RedisError) {
        precondition(masters >= 1 && replicasPerMaster >= 0)
        let bin = try RedisServerProcess.locate(explicit: binary)
        let base = NSTemporaryDirectory() + "bursar-cluster-\(UUID().uuidString)"
        var started: [RedisServerProcess] = []
        var buses: [Int] = []
        do {
            for i in 0..<(masters * (1 + replicasPerMaster)) {
                let port = try RedisServerProcess.freeLoopbackPort()
                // The bus port is named: the default (port + 10000) overflows for high ephemeral ports.
                let busPort = try RedisServerProcess.freeLoopbackPort()
                let node = RedisServerProcess(
                    binary: bin, directory: "\(base)/node-\(i)", listen: .tcp(port: port),
                    extraConfig: [
                        "cluster-enabled yes", "cluster-port \(busPort)", "cluster-config-file nodes.conf",
                        "cluster-node-timeout \(nodeTimeoutMs)",
                        // Tests stop masters on purpose; a replica must take over without manual help.
                        "cluster-replica-validity-factor 0", "cluster-require-full-coverage no",
                    ])
                try node.start(appendOnly: false)
                started.append(node)
                buses.append(busPort)
            }
            nodes = started
            busPorts = buses
            masterCount = masters
            try join(replicasPerMaster: replicasPerMaster)
        } catch {
            for node in started { node.stop() }
            throw error
        }
    }

    deinit { stop() }

    /// Stops every node.
    public func stop() {
        for node in nodes { node.stop() }
    }

    /// The slot map as `nodes[index]` sees it now.
    public func slotMap(askingNode index: Int = 0) throws(RedisError) -> ClusterSlotMap {
        try ClusterSlotMap(clusterSlots: try Self.call(try Self.connect(nodes[index]), "CLUSTER", "SLOTS"))
    }

    /// The node (index into `nodes`) listening on `port`.
    public func nodeIndex(port: Int) -> Int? { nodes.firstIndex { self.port($0) == port } }

    /// Moves `slot` to the master `nodes[target]` the way `redis-cli --cluster reshard` does:
    /// IMPORTING on the target, MIGRATING on the source, the keys in batches of `batch` (MIGRATE …
    /// KEYS) with `pauseMs` between batches, then the new owner announced to every master.
    /// Returns how many keys moved.
    @discardableResult
    /// How many keys the master serving `slot` holds in it (`CLUSTER COUNTKEYSINSLOT`).
    public func keyCount(inSlot slot: Int) throws(RedisError) -> Int {
        guard let owner = try slotMap().master(forSlot: slot), let index = nodeIndex(port: owner.port) else {
            throw RedisError(.unexpectedReply, "no master serves slot \(slot)")
        }
        return Int(try Self.call(try Self.connect(nodes[index]), "CLUSTER", "COUNTKEYSINSLOT", String(slot)).int ?? 0)
    }

    public func migrate(slot: Int, toNode target: Int, batch: Int = 3, pauseMs: Int = 20) throws(RedisError) -> Int {
        let map = try slotMap()
        guard let owner = map.master(forSlot: slot), let sourceIndex = nodeIndex(port: owner.port) else {
            throw RedisError(.unexpectedReply, "no master serves slot \(slot)")
        }
        let source = try Self.connect(nodes[sourceIndex])
        let destination = try Self.connect(nodes[target])
        let sourceID = try Self.call(source, "CLUSTER", "MYID").string ?? ""
        let targetID = try Self.call(destination, "CLUSTER", "MYID").string ?? ""
        _ = try Self.call(destination, "CLUSTER", "SETSLOT", String(slot), "IMPORTING", sourceID)
        _ = try Self.call(source, "CLUSTER", "SETSLOT", String(slot), "MIGRATING", targetID)
        var moved = 0
        while true {
            let keys = (try Self.call(source, "CLUSTER", "GETKEYSINSLOT", String(slot), String(batch)).array ?? []).compactMap(\.string)
            if keys.isEmpty { break }
            _ = try Self.call(source, ["MIGRATE", "127.0.0.1", String(port(nodes[target])), "", "0", "5000", "KEYS"] + keys)
            moved += keys.count
            if pauseMs > 0 { usleep(useconds_t(pauseMs * 1000)) }
        }
        // The target first, then the source, then the others (they also learn it over the bus).
        _ = try Self.call(destination, "CLUSTER", "SETSLOT", String(slot), "NODE", targetID)
        _ = try Self.call(source, "CLUSTER", "SETSLOT", String(slot), "NODE", targetID)
        for node in masters where port(node) != port(nodes[target]) && port(node) != port(nodes[sourceIndex]) {
            _ = try? Self.call(try Self.connect(node), "CLUSTER", "SETSLOT", String(slot), "NODE", targetID)
        }
        return moved
    }

    /// Makes the replica of the master serving `slot` take over with `CLUSTER FAILOVER` (a
    /// coordinated failover: the master stops writes until the replica has caught up), and waits
    /// until the replica serves the slot. Returns the new master's index into `nodes`.
    @discardableResult
    public func failover(slot: Int, timeoutMs: Int = 30_000) throws(RedisError) -> Int {
        let map = try slotMap()
        guard let range = map.ranges.first(where: { $0.first <= slot && slot <= $0.last }), let replica = range.replicas.first,
              let replicaIndex = nodeIndex(port: replica.port)
        else { throw RedisError(.unexpectedReply, "slot \(slot) has no replica to fail over to") }
        _ = try Self.call(try Self.connect(nodes[replicaIndex]), "CLUSTER", "FAILOVER")
        try waitUntil("the replica on port \(replica.port) serves slot \(slot)", timeoutMs: timeoutMs) { () throws(RedisError) -> Bool in
            try slotMap(askingNode: replicaIndex).master(forSlot: slot)?.port == replica.port
        }
        return replicaIndex
    }

    /// Waits until some replica has taken over `slot` after its master was stopped or killed.
    /// Returns the new master's port.
    @discardableResult
    public func waitForNewMaster(slot: Int, replacing port: Int, askingNode index: Int, timeoutMs: Int = 30_000) throws(RedisError) -> Int {
        var found = 0
        try waitUntil("a replica serves slot \(slot) instead of port \(port)", timeoutMs: timeoutMs) { () throws(RedisError) -> Bool in
            guard let owner = try slotMap(askingNode: index).master(forSlot: slot), owner.port != port else { return false }
            found = owner.port
            return true
        }
        return found
    }

    private static func connect(_ node: RedisServerProcess) throws(RedisError) -> RedisConnection {
        try RedisConnection(endpoint: node.endpoint, connectTimeoutMs: 1_000, ioTimeoutMs: 5_000)
    }

    private static func call(_ c: RedisConnection, _ args: String...) throws(RedisError) -> RedisValue {
        try call(c, args)
    }

    private static func call(_ c: RedisConnection, _ args: [String]) throws(RedisError) -> RedisValue {
        let reply = try c.pipeline([RedisCommand(args)])[0]
        if case .error(let e) = reply { throw RedisError(.server, "\(args.joined(separator: " ")): \(e)") }
        return reply
    }

    /// A node's port.
    public func port(_ node: RedisServerProcess) -> Int {
        if case .tcp(let port) = node.listen { return port }
        return 0
    }

    private func join(replicasPerMaster: Int) throws(RedisError) {
        let first = try Self.connect(nodes[0])
        for (i, node) in nodes.enumerated().dropFirst() {
            _ = try Self.call(first, "CLUSTER", "MEET", "127.0.0.1", String(port(node)), String(busPorts[i]))
        }
        let per = ClusterSlot.count / masterCount
        for (i, node) in masters.enumerated() {
            let c = try Self.connect(node)
            let low = i * per
            let high = i == masterCount - 1 ? ClusterSlot.count - 1 : low + per - 1
            _ = try Self.call(c, "CLUSTER", "ADDSLOTSRANGE", String(low), String(high))
        }
        // Every node must know every other before a replica can name its master.
        try waitUntil("all nodes know each other") { () throws(RedisError) -> Bool in
            for node in nodes {
                let known = try Self.call(try Self.connect(node), "CLUSTER", "NODES").string ?? ""
                if known.split(separator: "\n").count < nodes.count { return false }
            }
            return true
        }
        var ids: [String] = []
        for node in masters { ids.append(try Self.call(try Self.connect(node), "CLUSTER", "MYID").string ?? "") }
        for (j, replica) in nodes.dropFirst(masterCount).enumerated() {
            _ = try Self.call(try Self.connect(replica), "CLUSTER", "REPLICATE", ids[j % masterCount])
        }
        try waitUntil("cluster_state:ok on every node with the full slot map") { () throws(RedisError) -> Bool in
            for node in nodes {
                let c = try Self.connect(node)
                guard (try Self.call(c, "CLUSTER", "INFO").string ?? "").contains("cluster_state:ok") else { return false }
                let map = try ClusterSlotMap(clusterSlots: try Self.call(c, "CLUSTER", "SLOTS"))
                guard map.coversAllSlots, map.masters.count == masterCount,
                      map.ranges.allSatisfy({ $0.replicas.count == replicasPerMaster }) else { return false }
            }
            return true
        }
        // A replica counts once its first sync is done: a failover promoting it loses only what
        // asynchronous replication had not yet carried, never the whole data set.
        try waitUntil("every replica's link to its master up") { () throws(RedisError) -> Bool in
            for replica in nodes.dropFirst(masterCount) {
                let info = try Self.call(try Self.connect(replica), "INFO", "replication").string ?? ""
                guard info.contains("master_link_status:up") else { return false }
            }
            return true
        }
    }

    private func waitUntil(_ what: String, timeoutMs: Int = 30_000, _ condition: () throws(RedisError) -> Bool) throws(RedisError) {
        let deadline = Date().addingTimeInterval(Double(timeoutMs) / 1000)
        while Date() < deadline {
            if (try? condition()) == true { return }
            usleep(50_000)
        }
        throw RedisError(.connectionFailed, "Redis Cluster did not reach '\(what)' within \(timeoutMs) ms")
    }
}
