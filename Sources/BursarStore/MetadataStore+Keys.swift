import BursarRedis
import BursarLimits
public import BursarWire

extension MetadataStore {
    // MARK: Keys

    /// Creates a key for a user in a project and returns it with its secret (shown once).
    /// `createdBy` is who asked (the user, or an admin on their behalf; defaults to the user).
    public func createKey(
        org: UInt64, project: UInt64, user: UInt64, name: String, limits: KeyLimits, createdBy: UInt64? = nil
    ) async throws -> CreatedKey {
        try validName(name, "key name")
        guard try await self.project(org: org, project) != nil else { throw StoreError.notFound("project \(project)") }
        guard try await orgRole(org: org, user) != nil else { throw StoreError.notFound("user \(user)") }
        let id = try await nextID("key", org: org)
        let secret = Self.newSecret()
        let digest = Self.digest(ofSecret: secret)
        let key = APIKey(
            id: id, orgID: org, projectID: project, userID: user, name: name, display: Self.display(secret),
            status: .active, limits: limits, createdAtMs: Self.nowMs(), createdBy: createdBy ?? user)
        let hash = Keyspace.key(org, id)
        var commands = [
            RedisCommand(
                "HSET", hash, "digest", digest.hex, "project", String(project), "user", String(user), "name", name,
                "display", key.display, "status", "active", "created", String(key.createdAtMs), "creator", String(key.createdBy)),
            RedisCommand("SADD", Keyspace.projectKeys(org, project), String(id)),
        ]
        commands += try await limitCommands(org: org, hash: hash, id: id, limits)
        try await transaction(commands, org: org, recompile: .keys([id]))
        // The index is written last: a digest never resolves to a half-written key.
        try await redis.send(RedisCommand("SET", Keyspace.digestIndex(digest.hex), KeyIdentity(orgID: org, keyID: id).indexValue))
        return CreatedKey(key: key, secret: secret)
    }

    /// Replaces a key's limits. Applies at the next CHECK.
    public func updateKeyLimits(org: UInt64, _ id: UInt64, _ limits: KeyLimits) async throws {
        guard try await key(org: org, id) != nil else { throw StoreError.notFound("key \(id)") }
        try await transaction(try await limitCommands(org: org, hash: Keyspace.key(org, id), id: id, limits), org: org, recompile: .keys([id]))
    }

    /// Renames a key.
    public func renameKey(org: UInt64, _ id: UInt64, _ name: String) async throws {
        try validName(name, "key name")
        guard try await key(org: org, id) != nil else { throw StoreError.notFound("key \(id)") }
        try await redis.send(RedisCommand("HSET", Keyspace.key(org, id), "name", name))
    }

    /// Revokes a key. The very next CHECK with it is denied `key_revoked`, whatever any cache holds.
    public func revokeKey(org: UInt64, _ id: UInt64) async throws {
        guard try await key(org: org, id) != nil else { throw StoreError.notFound("key \(id)") }
        // The key's status is part of its compiled record (SPEC §13.1), rewritten in the same step.
        try await transaction([RedisCommand("HSET", Keyspace.key(org, id), "status", "revoked")], org: org, recompile: .keys([id]))
    }

    /// Gives a key a new secret; the old one stops working at once (the CHECK step compares the
    /// digest stored in the key). Returns the key with its new secret (shown once) and the old
    /// digest, so callers can tell caches to drop it.
    public func rotateKey(org: UInt64, _ id: UInt64) async throws -> (CreatedKey, oldDigest: String) {
        guard var key = try await key(org: org, id) else { throw StoreError.notFound("key \(id)") }
        guard let old = try await redis.send(RedisCommand("HGET", Keyspace.key(org, id), "digest")).string else {
            throw StoreError.notFound("key \(id)")
        }
        let secret = Self.newSecret()
        let digest = Self.digest(ofSecret: secret)
        key.display = Self.display(secret)
        try await redis.send(RedisCommand("SET", Keyspace.digestIndex(digest.hex), KeyIdentity(orgID: org, keyID: id).indexValue))
        try await redis.send(RedisCommand("HSET", Keyspace.key(org, id), "digest", digest.hex, "display", key.display))
        try await redis.send(RedisCommand("DEL", Keyspace.digestIndex(old)))
        return (CreatedKey(key: key, secret: secret), old)
    }

    /// A key's stored digest (hex), or nil.
    public func keyDigest(org: UInt64, _ id: UInt64) async throws -> String? {
        try await redis.send(RedisCommand("HGET", Keyspace.key(org, id), "digest")).string
    }

    /// A key, or nil.
    public func key(org: UInt64, _ id: UInt64) async throws -> APIKey? {
        let f = try await fields(
            Keyspace.key(org, id),
            ["project", "user", "name", "display", "status", "budget", "period", "rpm", "tpm", "expires", "flags", "models", "created", "creator"])
        guard let project = f[0].flatMap({ UInt64($0) }), let user = f[1].flatMap({ UInt64($0) }),
              let status = f[4].flatMap(APIKey.Status.init(rawValue:))
        else { return nil }
        let flags = f[10].flatMap { UInt16($0) } ?? 0
        let limits = KeyLimits(
            budget: f[5].flatMap { Int64($0) }, period: f[6].flatMap(BudgetPeriod.init(rawValue:)) ?? .monthly,
            rpm: f[7].flatMap { Int64($0) }, tpm: f[8].flatMap { Int64($0) }, models: Self.splitList(f[11]),
            expiresAtMs: f[9].flatMap { Int64($0) }, contentLoggingDisabled: flags & CheckResult.flagContentLoggingDisabled != 0)
        return APIKey(
            id: id, orgID: org, projectID: project, userID: user, name: f[2] ?? "", display: f[3] ?? "", status: status,
            limits: limits, createdAtMs: f[12].flatMap { Int64($0) } ?? 0, createdBy: f[13].flatMap { UInt64($0) } ?? user)
    }

    /// Every key of a project, by id.
    public func keys(org: UInt64, project: UInt64) async throws -> [APIKey] {
        var result: [APIKey] = []
        for id in try await idSet(Keyspace.projectKeys(org, project)) {
            if let k = try await key(org: org, id) { result.append(k) }
        }
        return result
    }

    /// Resolves a digest through the index (what bursard caches).
    public func resolve(_ digest: KeyDigest) async throws -> KeyIdentity? {
        return try Limiter.parseResolve(try await redis.send(Limiter.resolveCommand(digest)))
    }

    /// `sk-br-…` and the secret's last four characters.
    static func display(_ secret: String) -> String { "sk-br-…" + String(secret.suffix(4)) }

    private func limitCommands(org: UInt64, hash: String, id: UInt64, _ limits: KeyLimits) async throws -> [RedisCommand] {
        try validModels(limits.models, "key models")
        var commands = [
            RedisCommand(
                "HSET", hash, "period", limits.period.rawValue, "models", Self.joinList(limits.models),
                "flags", String(limits.contentLoggingDisabled ? CheckResult.flagContentLoggingDisabled : 0))
        ]
        commands += try limitCommands(hash, limits)
        let aliases = try await virtualModels(org: org)
        commands += replaceSet(Keyspace.keyModels(org, id), Self.expand(limits.models, aliases), countIn: hash)
        return commands
    }
}
