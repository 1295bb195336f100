/// Redis Cluster's key → slot mapping and slot map, as the cluster itself defines them
/// (https://redis.io/docs/reference/cluster-spec/): CRC16-CCITT (XMODEM) of the key, or of its
/// hash tag (the first `{…}` with something inside), modulo 16384.
public enum ClusterSlot {
    /// Slots in a cluster.
    public static let count = 16_384

    /// The slot of `key`.
    public static func of(_ key: some Collection<UInt8>) -> Int {
        Int(crc16(hashed(key)) & 0x3FFF)
    }

    /// The slot of `key`.
    public static func of(_ key: String) -> Int { of(Array(key.utf8)) }

    /// The part of `key` that is hashed: the contents of the first `{…}` when non-empty, else the key.
    static func hashed<C: Collection<UInt8>>(_ key: C) -> C.SubSequence {
        if let open = key.firstIndex(of: UInt8(ascii: "{")) {
            let after = key.index(after: open)
            if let close = key[after...].firstIndex(of: UInt8(ascii: "}")), close != after {
                return key[after..<close]
            }
        }
        return key[...]
    }

    /// CRC16-CCITT, polynomial 0x1021, initial value 0 (the XMODEM variant Redis uses).
    static func crc16(_ bytes: some Sequence<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc ^= UInt16(byte) << 8
            for _ in 0..<8 {
                crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
            }
        }
        return crc
    }
}

/// Which node serves which slots: read from `CLUSTER SLOTS`.
public struct ClusterSlotMap: Sendable, Hashable {
    /// A node's address.
    public struct Node: Sendable, Hashable, CustomStringConvertible {
        /// Host as the cluster announces it.
        public var host: String
        /// Port.
        public var port: Int
        /// The node id (empty if the reply did not carry it).
        public var id: String

        /// A node.
        public init(host: String, port: Int, id: String) {
            self.host = host
            self.port = port
            self.id = id
        }

        public var description: String { "\(host):\(port)" }
    }

    /// One contiguous range of slots, its master and its replicas.
    public struct Range: Sendable, Hashable {
        /// First slot.
        public var first: Int
        /// Last slot (inclusive).
        public var last: Int
        /// The master serving it.
        public var master: Node
        /// Its replicas.
        public var replicas: [Node]
    }

    /// The ranges, sorted by first slot.
    public private(set) var ranges: [Range]

    /// Parses a `CLUSTER SLOTS` reply. Throws on a malformed one.
    public init(clusterSlots reply: RedisValue) throws(RedisError) {
        if case .error(let e) = reply { throw RedisError(.server, "CLUSTER SLOTS: \(e)") }
        guard let entries = reply.array else { throw RedisError(.unexpectedReply, "CLUSTER SLOTS did not answer an array") }
        var ranges: [Range] = []
        for entry in entries {
            guard let fields = entry.array, fields.count >= 3, let first = fields[0].int, let last = fields[1].int,
                  (0..<Int64(ClusterSlot.count)).contains(first), (first..<Int64(ClusterSlot.count)).contains(last)
            else { throw RedisError(.unexpectedReply, "CLUSTER SLOTS entry malformed: \(entry)") }
            var nodes: [Node] = []
            for field in fields[2...] {
                guard let n = field.array, n.count >= 2, let host = n[0].string, let port = n[1].int else {
                    throw RedisError(.unexpectedReply, "CLUSTER SLOTS node malformed: \(field)")
                }
                nodes.append(Node(host: host, port: Int(port), id: n.count > 2 ? (n[2].string ?? "") : ""))
            }
            ranges.append(Range(first: Int(first), last: Int(last), master: nodes[0], replicas: Array(nodes.dropFirst())))
        }
        self.ranges = ranges.sorted { $0.first < $1.first }
    }

    /// The map with every empty host replaced by `host`: a node that has not yet learnt its own
    /// address (a one-node cluster) answers "", which the cluster spec defines as "the address
    /// you reached me at".
    public func resolvingEmptyHosts(to host: String) -> ClusterSlotMap {
        var copy = self
        for i in copy.ranges.indices {
            if copy.ranges[i].master.host.isEmpty { copy.ranges[i].master.host = host }
            for j in copy.ranges[i].replicas.indices where copy.ranges[i].replicas[j].host.isEmpty {
                copy.ranges[i].replicas[j].host = host
            }
        }
        return copy
    }

    /// The master serving `slot`, or nil when no range covers it.
    public func master(forSlot slot: Int) -> Node? {
        var low = 0
        var high = ranges.count - 1
        while low <= high {
            let mid = (low + high) / 2
            let r = ranges[mid]
            if slot < r.first { high = mid - 1 } else if slot > r.last { low = mid + 1 } else { return r.master }
        }
        return nil
    }

    /// Whether every slot is served.
    public var coversAllSlots: Bool {
        var next = 0
        for r in ranges {
            guard r.first == next else { return false }
            next = r.last + 1
        }
        return next == ClusterSlot.count
    }

    /// The distinct masters.
    public var masters: [Node] {
        var seen = Set<Node>()
        return ranges.compactMap { seen.insert($0.master).inserted ? $0.master : nil }
    }
}
