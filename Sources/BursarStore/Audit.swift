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

    /// A log.
    public init(redis: RedisClient, capacity: Int = 100_000) {
        self.redis = redis
        self.capacity = capacity
    }

    /// Appends an entry to an organization's log.
    public func record(org: UInt64, _ e: AuditEntry) async throws {
        try await redis.send(RedisCommand(
            "XADD", Keyspace.audit(org), "MAXLEN", "~", String(capacity), "*",
            "actor", e.actor, "action", e.action, "target", e.target, "outcome", e.outcome))
    }

    /// The newest `limit` entries, newest first.
    public func read(org: UInt64, limit: Int) async throws -> [AuditEntry] {
        let reply = try await redis.send(RedisCommand("XREVRANGE", Keyspace.audit(org), "+", "-", "COUNT", String(limit)))
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
