/// What a client talks to: one server, a Redis Cluster, or a master found through Sentinel.
public enum RedisTarget: Hashable, Sendable, CustomStringConvertible {
    /// One server (standalone, or a fixed master).
    case server(RedisEndpoint)
    /// A Redis Cluster, discovered from any of these seed nodes (TCP, database 0).
    case cluster(seeds: [RedisEndpoint])
    /// The master the sentinels name `master`, in database `db`.
    case sentinel(sentinels: [RedisEndpoint], master: String, db: Int)

    /// Parses a URL:
    /// - `redis://host:port[/db]` or `unix:///path[?db=N]`: one server;
    /// - `redis+cluster://host:port[,host:port…]`: a cluster, from seed nodes;
    /// - `redis+sentinel://host:port[,host:port…]/MASTERNAME[/db]`: through sentinels.
    public init(url: String) throws(RedisError) {
        if url.hasPrefix("redis+cluster://") {
            let rest = url.dropFirst("redis+cluster://".count)
            guard !rest.contains("/") else {
                throw RedisError(.badEndpoint, "\(url): a cluster URL has no path (Redis Cluster has only database 0)")
            }
            self = .cluster(seeds: try Self.hosts(rest, in: url))
        } else if url.hasPrefix("redis+sentinel://") {
            let rest = url.dropFirst("redis+sentinel://".count)
            let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2 || parts.count == 3, !parts[1].isEmpty else {
                throw RedisError(.badEndpoint, "\(url) must be redis+sentinel://host:port[,host:port…]/MASTERNAME[/db]")
            }
            var db = 0
            if parts.count == 3 {
                guard let d = Int(parts[2]), d >= 0 else { throw RedisError(.badEndpoint, "database '\(parts[2])' in \(url) is not a number ≥ 0") }
                db = d
            }
            self = .sentinel(sentinels: try Self.hosts(parts[0], in: url), master: String(parts[1]), db: db)
        } else {
            self = .server(try RedisEndpoint(url: url))
        }
    }

    /// `host:port,host:port…` as TCP endpoints (database 0).
    private static func hosts(_ list: Substring, in url: String) throws(RedisError) -> [RedisEndpoint] {
        var out: [RedisEndpoint] = []
        for item in list.split(separator: ",", omittingEmptySubsequences: false) {
            guard let colon = item.lastIndex(of: ":"), colon != item.startIndex,
                  let port = Int(item[item.index(after: colon)...]), (1...65535).contains(port)
            else { throw RedisError(.badEndpoint, "'\(item)' in \(url) is not host:port with a port 1…65535") }
            out.append(.tcp(host: String(item[..<colon]), port: port, db: 0))
        }
        guard !out.isEmpty else { throw RedisError(.badEndpoint, "\(url) names no host:port") }
        return out
    }

    public var description: String {
        func list(_ e: [RedisEndpoint]) -> String {
            e.map { if case .tcp(let h, let p, _) = $0 { "\(h):\(p)" } else { "\($0)" } }.joined(separator: ",")
        }
        switch self {
        case .server(let e): return e.description
        case .cluster(let seeds): return "redis+cluster://\(list(seeds))"
        case .sentinel(let s, let master, let db): return "redis+sentinel://\(list(s))/\(master)/\(db)"
        }
    }
}

/// Finds the current master through Sentinel: asks each sentinel in turn for the master's
/// address, then checks with `ROLE` that the server there really is a master (right after a
/// failover, a sentinel may still name the old one).
enum SentinelResolver {
    static func master(
        sentinels: [RedisEndpoint], name: String, db: Int, connectTimeoutMs: Int, ioTimeoutMs: Int
    ) throws(RedisError) -> RedisEndpoint {
        var problems: [String] = []
        for sentinel in sentinels {
            do throws(RedisError) {
                let c = try RedisConnection(endpoint: sentinel, connectTimeoutMs: connectTimeoutMs, ioTimeoutMs: ioTimeoutMs)
                defer { c.close() }
                let reply = try c.pipeline([RedisCommand("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)])[0]
                guard let pair = reply.array, pair.count == 2, let host = pair[0].string, let portText = pair[1].string,
                      let port = Int(portText)
                else {
                    problems.append("\(sentinel): does not know master '\(name)' (\(reply))")
                    continue
                }
                let endpoint = RedisEndpoint.tcp(host: host, port: port, db: db)
                let m = try RedisConnection(endpoint: .tcp(host: host, port: port, db: 0), connectTimeoutMs: connectTimeoutMs, ioTimeoutMs: ioTimeoutMs)
                defer { m.close() }
                let role = try m.pipeline([RedisCommand("ROLE")])[0]
                guard role.array?.first?.string == "master" else {
                    problems.append("\(sentinel) names \(host):\(port), which is not a master yet")
                    continue
                }
                return endpoint
            } catch {
                problems.append("\(sentinel): \(error.message)")
            }
        }
        throw RedisError(.connectionFailed, "no sentinel named a reachable master '\(name)': " + problems.joined(separator: "; "))
    }
}
