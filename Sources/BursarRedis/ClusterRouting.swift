import NIOCore
import Foundation
import Synchronization

// Redis Cluster routing: hiredis 0.14 has none, so it is here, and only here.
//
// Each command goes to the master owning its key's slot (bursar puts everything one atomic step
// touches under one hash tag, so a script or a MULTI/EXEC block is one slot). A worker thread
// keeps one pipelined connection per master: it writes every master's share of a batch, then reads
// every master's replies, so one batch costs one round trip however many masters it spans.
// Redirections are followed the way the cluster specification asks:
// - MOVED: the slot has a new owner: retry there and refresh the slot map;
// - ASK: the slot is migrating and this key is already at the target: retry there once, after
//   ASKING;
// - TRYAGAIN, CLUSTERDOWN, or a script refused a key that is mid-migration: the command did not
//   run (see SPEC §13.10 for why a script can only be refused before it writes); retry after a
//   short pause, while the request's deadline allows.

extension RedisCommand {
    /// Argument `i`'s bytes.
    func argument(_ i: Int) -> ArraySlice<UInt8> {
        storage[(i == 0 ? 0 : ends[i - 1])..<ends[i]]
    }

    /// Whether argument `i` equals `text`, ignoring ASCII case.
    func argument(_ i: Int, is text: StaticString) -> Bool {
        guard i < ends.count else { return false }
        let a = argument(i)
        guard a.count == text.utf8CodeUnitCount else { return false }
        return text.withUTF8Buffer { t in
            zip(a, t).allSatisfy { x, y in (x >= 97 && x <= 122 ? x - 32 : x) == (y >= 97 && y <= 122 ? y - 32 : y) }
        }
    }

    /// The cluster slot this command must run in; nil for a command with no key (it may run on
    /// any node). EVAL/EVALSHA/FCALL route by their first key; SCAN by the hash tag of its MATCH
    /// pattern (bursar scans only inside one organization's tag); every other command bursar
    /// sends has its key first.
    var slot: Int? {
        guard ends.count >= 2 else { return nil }
        if argument(0, is: "EVALSHA") || argument(0, is: "EVAL") || argument(0, is: "FCALL") {
            guard ends.count >= 4, let n = Int(String(decoding: argument(2), as: UTF8.self)), n > 0 else { return nil }
            return ClusterSlot.of(argument(3))
        }
        if argument(0, is: "SCAN") {
            for i in 2..<(ends.count - 1) where argument(i, is: "MATCH") { return ClusterSlot.of(argument(i + 1)) }
            return nil
        }
        if argument(0, is: "PUBLISH") || argument(0, is: "SCRIPT") || argument(0, is: "FUNCTION") || argument(0, is: "PING")
            || argument(0, is: "TIME") || argument(0, is: "CLUSTER") || argument(0, is: "INFO") || argument(0, is: "SELECT")
        {
            return nil
        }
        return ClusterSlot.of(argument(1))
    }
}

/// What a cluster error reply asks the client to do.
enum ClusterRedirect: Equatable {
    /// Retry at this node, and refresh the slot map.
    case moved(host: String, port: Int)
    /// Retry at this node once, after ASKING.
    case ask(host: String, port: Int)
    /// The command did not run; retry after a pause.
    case later

    init?(reply: RedisValue) {
        guard case .error(let e) = reply else { return nil }
        if e.hasPrefix("MOVED ") || e.hasPrefix("ASK ") {
            let parts = e.split(separator: " ")
            guard parts.count == 3, let colon = parts[2].lastIndex(of: ":"), let port = Int(parts[2][parts[2].index(after: colon)...]) else { return nil }
            let host = String(parts[2][..<colon])
            self = e.hasPrefix("MOVED ") ? .moved(host: host, port: port) : .ask(host: host, port: port)
        } else if e.hasPrefix("TRYAGAIN") || e.hasPrefix("CLUSTERDOWN") || e.contains("non local key")
            || e.contains("while the cluster is down")
        {
            self = .later
        } else {
            return nil
        }
    }
}

/// The cluster's slot map as last read, shared by a client's workers.
final class ClusterTopology: Sendable {
    struct State {
        var map: ClusterSlotMap?
        var readAt: ContinuousClock.Instant
        var stale: Bool
    }
    let seeds: [RedisEndpoint]
    let state: Mutex<State>
    /// How long a map read is used (`RedisClientConfiguration.clusterMapMaxAge`).
    let maxAge: Duration

    init(seeds: [RedisEndpoint], maxAge: Duration) {
        self.seeds = seeds
        self.maxAge = maxAge
        self.state = Mutex(State(map: nil, readAt: .now, stale: true))
    }

    /// The map, unless it is missing, marked stale, or older than `maxAge` (then the caller reads a new one).
    func current() -> ClusterSlotMap? {
        state.withLock { s in
            guard let map = s.map, !s.stale, ContinuousClock.now - s.readAt < maxAge else { return nil }
            return map
        }
    }

    /// The last map read, however old.
    func last() -> ClusterSlotMap? { state.withLock { $0.map } }

    func markStale() { state.withLock { $0.stale = true } }

    func store(_ map: ClusterSlotMap) {
        state.withLock { $0 = State(map: map, readAt: .now, stale: false) }
    }
}

/// A connection thread for a cluster: one connection per master.
final class ClusterWorker: @unchecked Sendable {
    /// One command, or one MULTI…EXEC block, of one request: the unit that is routed.
    struct Unit {
        var item: Int
        var range: Range<Int>
        var slot: Int?
        var redirect: (host: String, port: Int, asking: Bool)?
        var replies: [RedisValue] = []
        var failure: RedisError?
    }

    let client: RedisClient
    let topology: ClusterTopology
    let index: Int
    private var connections: [String: RedisConnection] = [:]
    private var retryAt: [String: NIODeadline] = [:]
    private var backoffMs: [String: Int] = [:]
    /// Most passes over one batch (first try, redirections, pauses) before the replies stand as they are.
    static let maxPasses = 16

    init(client: RedisClient, topology: ClusterTopology, index: Int) {
        self.client = client
        self.topology = topology
        self.index = index
    }

    func run() {
        let config = client.configuration
        while let batch = client.work.take(max: config.maxBatch, stats: client.stats) {
            var deliveries = Deliveries(expected: batch.items.count)
            let live = client.unexpired(batch, now: .now(), into: &deliveries)
            if !live.isEmpty { execute(live, into: &deliveries) }
            deliveries.deliver()
        }
        for (_, c) in connections { c.close() }
        connections.removeAll()
        client.stats.connected.store(0, ordering: .relaxed)
    }

    /// Splits requests into units, routes them, follows redirections, and delivers each request
    /// its replies in order (or the failure of any of its units).
    private func execute(_ items: [Pending], into deliveries: inout Deliveries) {
        var units: [Unit] = []
        for (i, item) in items.enumerated() {
            var c = 0
            while c < item.commands.count {
                if item.commands[c].argument(0, is: "MULTI"), let exec = item.commands[c...].firstIndex(where: { $0.argument(0, is: "EXEC") }) {
                    let slot = item.commands[(c + 1)..<exec].lazy.compactMap(\.slot).first
                    units.append(Unit(item: i, range: c..<(exec + 1), slot: slot))
                    c = exec + 1
                } else {
                    units.append(Unit(item: i, range: c..<(c + 1), slot: item.commands[c].slot))
                    c += 1
                }
            }
        }
        var pending = Array(units.indices)
        var pass = 0
        while !pending.isEmpty {
            pass += 1
            let map = topology.current() ?? refreshMap()
            // Group by node.
            var groups: [String: (node: (String, Int), units: [Int])] = [:]
            var again: [Int] = []
            var pause = false
            for u in pending {
                units[u].failure = nil
                let node: (String, Int)
                if let r = units[u].redirect {
                    node = (r.host, r.port)
                } else if let m = map ?? topology.last(), let slot = units[u].slot, let owner = m.master(forSlot: slot) {
                    node = (owner.host, owner.port)
                } else if let m = map ?? topology.last(), let any = m.masters.first {
                    node = (any.host, any.port)
                } else {
                    units[u].failure = RedisError(.connectionFailed, "no Redis Cluster node answered CLUSTER SLOTS (seeds \(topology.seeds))")
                    continue
                }
                groups["\(node.0):\(node.1)", default: (node, [])].units.append(u)
            }
            // Write every node's share, then read every node's replies: one round trip in all.
            var written: [(String, RedisConnection, [Int], [RedisCommand])] = []
            for (name, group) in groups {
                guard let connection = connection(name, host: group.node.0, port: group.node.1) else {
                    // Nothing was sent: after a pause and a fresh map (a failover may have moved
                    // the slot) it is tried again while the deadline allows.
                    for u in group.units {
                        units[u].failure = RedisError(.connectionFailed, "redis cluster node \(name) is unreachable")
                        units[u].redirect = nil
                        again.append(u)
                    }
                    pause = true
                    topology.markStale()
                    continue
                }
                var commands: [RedisCommand] = []
                for u in group.units {
                    if units[u].redirect?.asking == true { commands.append(RedisCommand("ASKING")) }
                    commands.append(contentsOf: items[units[u].item].commands[units[u].range])
                }
                do {
                    try connection.write(commands)
                    written.append((name, connection, group.units, commands))
                } catch {
                    lost(name, error)
                    for u in group.units { units[u].failure = error }
                }
            }
            for (name, connection, groupUnits, commands) in written {
                do {
                    client.stats.roundTrips.add(1, ordering: .relaxed)
                    client.stats.commands.add(commands.count, ordering: .relaxed)
                    let started = ContinuousClock.now
                    var replies = try connection.read(count: commands.count)
                    let elapsed = ContinuousClock.now - started
                    client.stats.record(roundTrip: elapsed)
                    client.configuration.onRoundTrip?(groupUnits.count, elapsed)
                    try client.reloadScripts(for: &replies, of: commands, on: connection)
                    var offset = 0
                    for u in groupUnits {
                        if units[u].redirect?.asking == true { offset += 1 }
                        let n = units[u].range.count
                        let mine = Array(replies[offset..<(offset + n)])
                        offset += n
                        units[u].replies = mine
                        units[u].redirect = nil
                        switch mine.lazy.compactMap(ClusterRedirect.init(reply:)).first {
                        case .moved(let host, let port)?:
                            client.stats.clusterMoved.add(1, ordering: .relaxed)
                            topology.markStale()
                            units[u].redirect = (host, port, false)
                            again.append(u)
                        case .ask(let host, let port)?:
                            client.stats.clusterAsk.add(1, ordering: .relaxed)
                            units[u].redirect = (host, port, true)
                            again.append(u)
                        case .later?:
                            client.stats.clusterRetries.add(1, ordering: .relaxed)
                            pause = true
                            again.append(u)
                        case nil:
                            break
                        }
                    }
                } catch {
                    lost(name, error)
                    for u in groupUnits { units[u].failure = error }
                }
            }
            // Retry while every request concerned still has time; otherwise its last replies stand.
            let now = NIODeadline.now()
            pending = again.filter { items[units[$0].item].deadline > now }
            if pass >= Self.maxPasses { pending = [] }
            // A unit left refused never ran: say so, rather than hand back a redirection as its reply.
            let retried = Set(pending)
            for u in again where !retried.contains(u) && units[u].failure == nil {
                units[u].failure = RedisError(.clusterRefused, "the cluster refused the command until the deadline (\(units[u].replies.first { if case .error = $0 { true } else { false } } ?? .null))")
            }
            if pause && !pending.isEmpty {
                Thread.sleep(forTimeInterval: Double(min(pass, 10)) * 0.002)
            }
        }
        // Reassemble each request's replies in order.
        var byItem: [[Int]] = Array(repeating: [], count: items.count)
        for u in units.indices { byItem[units[u].item].append(u) }
        for (i, item) in items.enumerated() {
            if let failure = byItem[i].lazy.compactMap({ units[$0].failure }).first {
                deliveries.add(item, .failure(failure))
            } else {
                deliveries.add(item, .success(byItem[i].flatMap { units[$0].replies }))
            }
        }
    }

    /// This worker's connection to a node, made if needed (with per-node backoff after failures).
    private func connection(_ name: String, host: String, port: Int) -> RedisConnection? {
        if let c = connections[name], c.isOpen { return c }
        connections[name] = nil
        let now = NIODeadline.now()
        if let at = retryAt[name], now < at { return nil }
        let config = client.configuration
        do {
            let c = try RedisConnection(endpoint: .tcp(host: host, port: port, db: 0), connectTimeoutMs: config.connectTimeoutMs, ioTimeoutMs: config.ioTimeoutMs)
            connections[name] = c
            backoffMs[name] = 0
            retryAt[name] = nil
            client.stats.connects.add(1, ordering: .relaxed)
            client.stats.connected.store(1, ordering: .relaxed)
            client.log.info("redis cluster node connected", metadata: ["node": "\(name)", "connection": "\(index)"])
            return c
        } catch {
            let b = (backoffMs[name] ?? 0) == 0 ? config.minBackoffMs : min(backoffMs[name]! * 2, config.maxBackoffMs)
            backoffMs[name] = b
            retryAt[name] = now + .milliseconds(Int64(b))
            client.stats.connectionErrors.add(1, ordering: .relaxed)
            client.log.warning("redis cluster node connect failed", metadata: ["node": "\(name)", "error": "\(error)", "retry_in_ms": "\(b)"])
            return nil
        }
    }

    private func lost(_ name: String, _ error: RedisError) {
        connections[name]?.close()
        connections[name] = nil
        if connections.isEmpty { client.stats.connected.store(0, ordering: .relaxed) }
        client.stats.connectionErrors.add(1, ordering: .relaxed)
        topology.markStale()
        client.log.warning("redis cluster connection lost", metadata: ["node": "\(name)", "error": "\(error)"])
    }

    /// Reads CLUSTER SLOTS from a known master, else from a seed, and shares it. Nil when no node answers.
    private func refreshMap() -> ClusterSlotMap? {
        var candidates: [(String, Int)] = (topology.last()?.masters ?? []).map { ($0.host, $0.port) }
        for seed in topology.seeds {
            if case .tcp(let h, let p, _) = seed, !candidates.contains(where: { $0 == (h, p) }) { candidates.append((h, p)) }
        }
        for (host, port) in candidates {
            guard let c = connection("\(host):\(port)", host: host, port: port) else { continue }
            do {
                let reply = try c.pipeline([RedisCommand("CLUSTER", "SLOTS")])[0]
                let map = try ClusterSlotMap(clusterSlots: reply).resolvingEmptyHosts(to: host)
                guard !map.ranges.isEmpty else { continue }
                topology.store(map)
                client.stats.topologyRefreshes.add(1, ordering: .relaxed)
                return map
            } catch {
                if !c.isOpen { lost("\(host):\(port)", error) }
            }
        }
        return nil
    }
}
