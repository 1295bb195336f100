public import BursarRedis

/// One audit record.
public struct AuditEntry: Sendable, Hashable {
    /// Stream id (`<ms>-<seq>`, Redis's clock).
    public var id: String
    /// Unix ms, from the id.
    public var timeMs: Int64
    /// `user:<id>` or `operator` or `anonymous`.
    public var actor: String
    /// What was attempted, e.g. `key.revoke`.
    public var action: String
    /// What it was attempted on, e.g. `project:3/key:12`.
    public var target: String
    /// `ok` or the error code that refused it.
    public var outcome: String

    /// An entry to record (the id and time come from Redis).
    public init(actor: String, action: String, target: String, outcome: String) {
        self.id = ""
        self.timeMs = 0
        self.actor = actor
        self.action = action
        self.target = target
        self.outcome = outcome
    }
}

/// The per-organization audit log: a Redis stream, capped at about `capacity` entries.
public struct AuditLog: Sendable {
    /// The Redis client.
    public let redis: RedisClient
    /// Entries kept per organization (approximately: trimming is `MAXLEN ~`).
    public let capacity: Int

    /// Entries kept per organization unless told otherwise; also the cap of the entries the
    /// limiter's scripts append (budget alerts, history.lua).
    public static let defaultCapacity = 100_000

    /// A log.
    public init(redis: RedisClient, capacity: Int = AuditLog.defaultCapacity) {
        self.redis = redis
        self.capacity = capacity
    }

    /// Appends an entry to an organization's log.
    public func record(org: UInt64, _ e: AuditEntry) async throws {
        try await redis.send(RedisCommand(
            "XADD", Keyspace.audit(org), "MAXLEN", "~", String(capacity), "*",
            "actor", e.actor, "action", e.action, "target", e.target, "outcome", e.outcome))
    }

    /// What to read: newest first, at most `limit` entries, older than the cursor `before` (a
    /// stream id), newer than `after`, within `fromMs…toMs`, by `actor` and `action` when given.
    public struct Query: Sendable, Hashable {
        public var limit: Int
        public var before: String?
        public var after: String?
        public var actor: String?
        public var action: String?
        public var fromMs: Int64?
        public var toMs: Int64?
        public init(limit: Int, before: String? = nil, after: String? = nil, actor: String? = nil, action: String? = nil, fromMs: Int64? = nil, toMs: Int64? = nil) {
            (self.limit, self.before, self.after, self.actor, self.action, self.fromMs, self.toMs) = (limit, before, after, actor, action, fromMs, toMs)
        }
    }

    /// Entries scanned at most per read when filtering by actor or action; past it the read
    /// returns what it found with a cursor to go on from.
    public static let scanBudget = 10_000

    /// The entries `query` asks for, newest first, and the cursor of the next (older) page: nil
    /// when there is nothing older to read.
    public func read(org: UInt64, _ query: Query) async throws -> (entries: [AuditEntry], next: String?) {
        // Cursors as stream ids: each part saturated to 64 bits (a larger one is past every entry);
        // nothing is older than 0-0 and nothing newer than the largest id.
        let before = query.before.map(Self.streamID), after = query.after.map(Self.streamID)
        if before == "0-0" || after == "\(UInt64.max)-\(UInt64.max)" { return ([], nil) }
        var end = before.map { "(" + $0 } ?? query.toMs.map { String($0) } ?? "+"
        let start = after.map { "(" + $0 } ?? query.fromMs.map { String($0) } ?? "-"
        var found: [AuditEntry] = []
        var scanned = 0
        while true {
            let chunk = min(max(query.limit - found.count, 1) * (query.actor == nil && query.action == nil ? 1 : 4), 1000)
            let page = try await range(org: org, end: end, start: start, count: chunk)
            for e in page {
                scanned += 1
                if let to = query.toMs, e.timeMs > to { continue }
                if let from = query.fromMs, e.timeMs < from { continue }
                if let actor = query.actor, e.actor != actor { continue }
                if let action = query.action, e.action != action { continue }
                found.append(e)
                if found.count == query.limit { return (found, e.id) }
            }
            guard page.count == chunk, let last = page.last else { return (found, nil) }
            end = "(" + last.id
            if scanned >= Self.scanBudget { return (found, last.id) }
        }
    }

    /// `<ms>-<seq>` with each part a UInt64, saturated (`before=99999999999999999999-0` means
    /// older than anything there can be).
    static func streamID(_ cursor: String) -> String {
        let parts = cursor.split(separator: "-", omittingEmptySubsequences: false)
        let ms = parts.first.map { UInt64($0) ?? .max } ?? 0
        let seq = parts.count > 1 ? UInt64(parts[1]) ?? .max : 0
        return "\(ms)-\(seq)"
    }

    /// The newest `limit` entries, newest first.
    public func read(org: UInt64, limit: Int) async throws -> [AuditEntry] {
        try await read(org: org, Query(limit: limit)).entries
    }

    private func range(org: UInt64, end: String, start: String, count: Int) async throws -> [AuditEntry] {
        let reply = try await redis.send(RedisCommand("XREVRANGE", Keyspace.audit(org), end, start, "COUNT", String(count)))
        return (reply.array ?? []).compactMap { item in
            guard let pair = item.array, pair.count == 2, let id = pair[0].string, let flat = pair[1].array else { return nil }
            var f: [String: String] = [:]
            var i = 0
            while i + 1 < flat.count {
                f[flat[i].string ?? ""] = flat[i + 1].string ?? ""
                i += 2
            }
            var e = AuditEntry(actor: f["actor"] ?? "", action: f["action"] ?? "", target: f["target"] ?? "", outcome: f["outcome"] ?? "")
            e.id = id
            e.timeMs = Int64(id.split(separator: "-").first ?? "") ?? 0
            return e
        }
    }
}

/// Audit text as data, shown: every control character (Cc), format character (Cf: the bidi
/// overrides and isolates, zero-width characters), line and paragraph separator written as a
/// visible escape (`\n`, `\u{202E}`), and the backslash itself doubled, so an entry can neither
/// break a line nor reorder what is shown, nor pass one escape off as another.
public enum AuditText {
    public static func visible(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                switch scalar.properties.generalCategory {
                case .control, .format, .lineSeparator, .paragraphSeparator:
                    out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
                default:
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}
