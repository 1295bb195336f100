/// Where a Redis server listens.
public enum RedisEndpoint: Hashable, Sendable, CustomStringConvertible {
    /// TCP host, port and database number.
    case tcp(host: String, port: Int, db: Int)
    /// A unix socket path and database number.
    case unix(path: String, db: Int)

    /// Parses `redis://host:port[/db]` or `unix:///path/to/sock[?db=N]`.
    public init(url: String) throws(RedisError) {
        if url.hasPrefix("redis://") {
            var rest = Substring(url.dropFirst("redis://".count))
            var db = 0
            if let slash = rest.firstIndex(of: "/") {
                let dbText = rest[rest.index(after: slash)...]
                if !dbText.isEmpty {
                    guard let d = Int(dbText), d >= 0 else { throw RedisError(.badEndpoint, "database '\(dbText)' in \(url) is not a number ≥ 0") }
                    db = d
                }
                rest = rest[..<slash]
            }
            guard let colon = rest.lastIndex(of: ":") else {
                self = .tcp(host: rest.isEmpty ? "127.0.0.1" : String(rest), port: 6379, db: db)
                return
            }
            let host = String(rest[..<colon])
            guard let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port) else {
                throw RedisError(.badEndpoint, "port in \(url) is not 1…65535")
            }
            self = .tcp(host: host.isEmpty ? "127.0.0.1" : host, port: port, db: db)
        } else if url.hasPrefix("unix://") {
            var path = Substring(url.dropFirst("unix://".count))
            var db = 0
            if let q = path.firstIndex(of: "?") {
                let query = path[path.index(after: q)...]
                guard query.hasPrefix("db="), let d = Int(query.dropFirst(3)), d >= 0 else {
                    throw RedisError(.badEndpoint, "query '\(query)' in \(url) must be db=N")
                }
                db = d
                path = path[..<q]
            }
            guard path.hasPrefix("/") else { throw RedisError(.badEndpoint, "unix socket path in \(url) must be absolute") }
            self = .unix(path: String(path), db: db)
        } else {
            throw RedisError(.badEndpoint, "'\(url)' is not redis://host:port/db or unix:///path")
        }
    }

    /// The database number.
    public var db: Int {
        switch self {
        case .tcp(_, _, let db), .unix(_, let db): return db
        }
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port, let db): return "redis://\(host):\(port)/\(db)"
        case .unix(let path, let db): return "unix://\(path)?db=\(db)"
        }
    }
}
