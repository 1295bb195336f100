public import BursarRedis
import BursarLimits
public import BursarWire
import Crypto
import Foundation

/// A metadata operation failed. Codes are stable strings (the admin API returns them).
public struct StoreError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Stable error code.
    public var code: String
    /// What is wrong, naming the entity or field.
    public var message: String

    /// An error.
    public init(_ code: String, _ message: String) {
        self.code = code
        self.message = message
    }

    static func notFound(_ what: String) -> StoreError { StoreError("not_found", "\(what) does not exist") }
    static func invalid(_ message: String) -> StoreError { StoreError("invalid", message) }

    public var description: String { "\(code): \(message)" }
}

/// Reads and writes organizations, users, projects, memberships and keys in Redis. Every write
/// of one entity is one MULTI/EXEC in the organization's slot, so the limiter never sees half of it.
public struct MetadataStore: Sendable {
    /// The Redis client.
    public let redis: RedisClient

    /// A store on a client.
    public init(redis: RedisClient) { self.redis = redis }

    // MARK: Organizations

    /// Creates an organization.
    public func createOrganization(name: String, metered: Bool = false, credits: Int64 = 0) async throws -> Organization {
        try validMoney(credits, "credits")
        let id = try await nextID("org")
        let org = Organization(id: id, name: name, status: .active, metered: metered)
        try await transaction([
            RedisCommand("HSET", Keyspace.orgHash(id), "name", name, "status", org.status.rawValue, "metered", metered ? "1" : "0"),
            RedisCommand("SET", Keyspace.credits(id), String(credits)),
        ])
        try await redis.send(RedisCommand("SADD", Keyspace.orgs, String(id)))
        return org
    }

    /// An organization, or nil.
    public func organization(_ id: UInt64) async throws -> Organization? {
        let f = try await fields(Keyspace.orgHash(id), ["name", "status", "metered"])
        guard let name = f[0], let status = f[1].flatMap(Organization.Status.init(rawValue:)) else { return nil }
        return Organization(id: id, name: name, status: status, metered: f[2] == "1")
    }

    /// Suspends or reactivates an organization. Takes effect on the next CHECK.
    public func setOrganizationStatus(_ id: UInt64, _ status: Organization.Status) async throws {
        guard try await organization(id) != nil else { throw StoreError.notFound("organization \(id)") }
        try await redis.send(RedisCommand("HSET", Keyspace.orgHash(id), "status", status.rawValue))
    }

    /// Turns credit metering on or off.
    public func setMetered(_ id: UInt64, _ metered: Bool) async throws {
        guard try await organization(id) != nil else { throw StoreError.notFound("organization \(id)") }
        try await redis.send(RedisCommand("HSET", Keyspace.orgHash(id), "metered", metered ? "1" : "0"))
    }

    /// Adds (or, negative, removes) credits; returns the new balance in nano-USD.
    @discardableResult
    public func addCredits(_ id: UInt64, _ amount: Int64) async throws -> Int64 {
        guard try await organization(id) != nil else { throw StoreError.notFound("organization \(id)") }
        return try await redis.send(RedisCommand("INCRBY", Keyspace.credits(id), String(amount))).int ?? 0
    }

    /// The credit balance in nano-USD (reservations already deducted).
    public func credits(_ id: UInt64) async throws -> Int64 {
        try await redis.send(RedisCommand("GET", Keyspace.credits(id))).int ?? 0
    }

    // MARK: Users

    /// Adds a user to an organization.
    public func createUser(org: UInt64, name: String, role: OrgRole) async throws -> User {
        guard try await organization(org) != nil else { throw StoreError.notFound("organization \(org)") }
        let id = try await nextID("user")
        try await transaction([
            RedisCommand("HSET", Keyspace.user(org, id), "name", name, "role", role.rawValue),
            RedisCommand("SADD", Keyspace.users(org), String(id)),
        ])
        return User(id: id, orgID: org, name: name, role: role)
    }

    /// A user, or nil.
    public func user(org: UInt64, _ id: UInt64) async throws -> User? {
        let f = try await fields(Keyspace.user(org, id), ["name", "role"])
        guard let name = f[0], let role = f[1].flatMap(OrgRole.init(rawValue:)) else { return nil }
        return User(id: id, orgID: org, name: name, role: role)
    }

    /// Changes a user's organization role.
    public func setUserRole(org: UInt64, _ id: UInt64, _ role: OrgRole) async throws {
        guard try await user(org: org, id) != nil else { throw StoreError.notFound("user \(id)") }
        try await redis.send(RedisCommand("HSET", Keyspace.user(org, id), "role", role.rawValue))
    }

    /// Removes a user from the organization. Their keys stop working on the next CHECK.
    public func removeUser(org: UInt64, _ id: UInt64) async throws {
        try await transaction([
            RedisCommand("DEL", Keyspace.user(org, id)),
            RedisCommand("SREM", Keyspace.users(org), String(id)),
        ])
    }

    // MARK: Projects

    /// Creates an active project.
    public func createProject(
        org: UInt64, name: String, models: [String] = [], rpm: Int64? = nil, tpm: Int64? = nil, monthlyBudget: Int64? = nil
    ) async throws -> Project {
        guard try await organization(org) != nil else { throw StoreError.notFound("organization \(org)") }
        let id = try await nextID("project")
        let project = Project(id: id, orgID: org, name: name, status: .active, models: models, rpm: rpm, tpm: tpm, monthlyBudget: monthlyBudget)
        try await write(project)
        try await redis.send(RedisCommand("SADD", Keyspace.projects(org), String(id)))
        return project
    }

    /// Replaces a project's settings (name, status, models, caps). Applies at the next CHECK.
    public func updateProject(_ project: Project) async throws {
        guard try await self.project(org: project.orgID, project.id) != nil else { throw StoreError.notFound("project \(project.id)") }
        try await write(project)
    }

    private func write(_ p: Project) async throws {
        try validRate(p.rpm, "project rpm")
        try validRate(p.tpm, "project tpm")
        if let b = p.monthlyBudget { try validMoney(b, "project monthly budget") }
        let hash = Keyspace.project(p.orgID, p.id)
        var commands = [
            RedisCommand("HSET", hash, "name", p.name, "status", p.status.rawValue),
            optionalField(hash, "rpm", p.rpm), optionalField(hash, "tpm", p.tpm), optionalField(hash, "budget", p.monthlyBudget),
        ]
        commands += replaceSet(Keyspace.projectModels(p.orgID, p.id), p.models, countIn: hash)
        try await transaction(commands)
    }

    /// A project, or nil.
    public func project(org: UInt64, _ id: UInt64) async throws -> Project? {
        let hash = Keyspace.project(org, id)
        let replies = try await redis.send([
            RedisCommand("HMGET", hash, "name", "status", "rpm", "tpm", "budget"),
            RedisCommand("SMEMBERS", Keyspace.projectModels(org, id)),
        ])
        let f = strings(replies[0])
        guard let name = f[0], let status = f[1].flatMap(Project.Status.init(rawValue:)) else { return nil }
        return Project(
            id: id, orgID: org, name: name, status: status, models: sortedStrings(replies[1]),
            rpm: f[2].flatMap { Int64($0) }, tpm: f[3].flatMap { Int64($0) }, monthlyBudget: f[4].flatMap { Int64($0) })
    }

    // MARK: Memberships

    /// Adds a user to a project, or replaces their role and grant.
    public func setMembership(_ m: Membership) async throws {
        guard try await project(org: m.orgID, m.projectID) != nil else { throw StoreError.notFound("project \(m.projectID)") }
        guard try await user(org: m.orgID, m.userID) != nil else { throw StoreError.notFound("user \(m.userID)") }
        try validRate(m.grant.rpm, "grant rpm")
        try validRate(m.grant.tpm, "grant tpm")
        if let s = m.grant.maxKeySpend { try validMoney(s, "grant max key spend") }
        let hash = Keyspace.membership(m.orgID, m.projectID, m.userID)
        var commands = [
            RedisCommand("HSET", hash, "role", m.role.rawValue),
            optionalField(hash, "rpm", m.grant.rpm), optionalField(hash, "tpm", m.grant.tpm),
            optionalField(hash, "spend", m.grant.maxKeySpend),
            RedisCommand("SADD", Keyspace.projectMembers(m.orgID, m.projectID), String(m.userID)),
        ]
        commands += replaceSet(Keyspace.membershipModels(m.orgID, m.projectID, m.userID), m.grant.models ?? [], countIn: hash)
        try await transaction(commands)
    }

    /// A membership, or nil.
    public func membership(org: UInt64, project: UInt64, user: UInt64) async throws -> Membership? {
        let replies = try await redis.send([
            RedisCommand("HMGET", Keyspace.membership(org, project, user), "role", "rpm", "tpm", "spend"),
            RedisCommand("SMEMBERS", Keyspace.membershipModels(org, project, user)),
        ])
        let f = strings(replies[0])
        guard let role = f[0].flatMap(ProjectRole.init(rawValue:)) else { return nil }
        let models = sortedStrings(replies[1])
        let grant = Grant(
            models: models.isEmpty ? nil : models, maxKeySpend: f[3].flatMap { Int64($0) },
            rpm: f[1].flatMap { Int64($0) }, tpm: f[2].flatMap { Int64($0) })
        return Membership(orgID: org, projectID: project, userID: user, role: role, grant: grant)
    }

    /// Removes a user from a project. Their keys in it stop working on the next CHECK.
    public func removeMembership(org: UInt64, project: UInt64, user: UInt64) async throws {
        try await transaction([
            RedisCommand("DEL", Keyspace.membership(org, project, user), Keyspace.membershipModels(org, project, user)),
            RedisCommand("SREM", Keyspace.projectMembers(org, project), String(user)),
        ])
    }

    // MARK: Keys

    /// Creates a key for a user in a project and returns it with its secret (shown once).
    public func createKey(org: UInt64, project: UInt64, user: UInt64, name: String, limits: KeyLimits) async throws -> CreatedKey {
        guard try await self.project(org: org, project) != nil else { throw StoreError.notFound("project \(project)") }
        guard try await self.user(org: org, user) != nil else { throw StoreError.notFound("user \(user)") }
        let id = try await nextID("key")
        let secret = Self.newSecret()
        let digest = Self.digest(ofSecret: secret)
        let key = APIKey(
            id: id, orgID: org, projectID: project, userID: user, name: name,
            display: "sk-br-…" + String(secret.suffix(4)), status: .active, limits: limits)
        let hash = Keyspace.key(org, id)
        var commands = [
            RedisCommand(
                "HSET", hash, "digest", digest.hex, "project", String(project), "user", String(user), "name", name,
                "display", key.display, "status", "active", "period", limits.period.rawValue,
                "flags", String(limits.contentLoggingDisabled ? CheckResult.flagContentLoggingDisabled : 0)),
            RedisCommand("SADD", Keyspace.projectKeys(org, project), String(id)),
        ]
        commands += try limitCommands(hash, limits)
        commands += replaceSet(Keyspace.keyModels(org, id), limits.models, countIn: hash)
        try await transaction(commands)
        // The index is written last: a digest never resolves to a half-written key.
        try await redis.send(RedisCommand("SET", Keyspace.digestIndex(digest.hex), KeyIdentity(orgID: org, keyID: id).indexValue))
        return CreatedKey(key: key, secret: secret)
    }

    /// Replaces a key's limits. Applies at the next CHECK.
    public func updateKeyLimits(org: UInt64, _ id: UInt64, _ limits: KeyLimits) async throws {
        guard try await key(org: org, id) != nil else { throw StoreError.notFound("key \(id)") }
        let hash = Keyspace.key(org, id)
        var commands = [
            RedisCommand("HSET", hash, "period", limits.period.rawValue,
                         "flags", String(limits.contentLoggingDisabled ? CheckResult.flagContentLoggingDisabled : 0))
        ]
        commands += try limitCommands(hash, limits)
        commands += replaceSet(Keyspace.keyModels(org, id), limits.models, countIn: hash)
        try await transaction(commands)
    }

    /// Revokes a key. The very next CHECK with it is denied `key_revoked`, whatever any cache holds.
    public func revokeKey(org: UInt64, _ id: UInt64) async throws {
        guard try await key(org: org, id) != nil else { throw StoreError.notFound("key \(id)") }
        try await redis.send(RedisCommand("HSET", Keyspace.key(org, id), "status", "revoked"))
    }

    /// A key, or nil.
    public func key(org: UInt64, _ id: UInt64) async throws -> APIKey? {
        let replies = try await redis.send([
            RedisCommand(
                "HMGET", Keyspace.key(org, id), "project", "user", "name", "display", "status", "budget", "period",
                "rpm", "tpm", "expires", "flags"),
            RedisCommand("SMEMBERS", Keyspace.keyModels(org, id)),
        ])
        let f = strings(replies[0])
        guard let project = f[0].flatMap({ UInt64($0) }), let user = f[1].flatMap({ UInt64($0) }),
              let status = f[4].flatMap(APIKey.Status.init(rawValue:))
        else { return nil }
        let flags = f[10].flatMap { UInt16($0) } ?? 0
        let limits = KeyLimits(
            budget: f[5].flatMap { Int64($0) }, period: f[6].flatMap(BudgetPeriod.init(rawValue:)) ?? .monthly,
            rpm: f[7].flatMap { Int64($0) }, tpm: f[8].flatMap { Int64($0) }, models: sortedStrings(replies[1]),
            expiresAtMs: f[9].flatMap { Int64($0) }, contentLoggingDisabled: flags & CheckResult.flagContentLoggingDisabled != 0)
        return APIKey(id: id, orgID: org, projectID: project, userID: user, name: f[2] ?? "", display: f[3] ?? "", status: status, limits: limits)
    }

    /// Resolves a digest through the index (what bursard caches).
    public func resolve(_ digest: KeyDigest) async throws -> KeyIdentity? {
        return try Limiter.parseResolve(try await redis.send(Limiter.resolveCommand(digest)))
    }

    // MARK: Secrets

    /// A new secret: `sk-br-` and 256 bits from the system CSPRNG, URL-safe base64 without padding.
    public static func newSecret() -> String {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let b64 = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        return "sk-br-" + b64
    }

    /// The SHA-256 digest of a secret, as gateways compute it before calling bursard.
    public static func digest(ofSecret secret: String) -> KeyDigest {
        KeyDigest(bytes: Array(SHA256.hash(data: Array(secret.utf8))))!
    }

    // MARK: Test support

    /// Freezes the limiter's clock for one organization at `us` (Unix µs); scripts built with
    /// `.testFrozen` only.
    @_spi(Testing)
    public func setTestClock(org: UInt64, us: Int64) async throws {
        try await redis.send(RedisCommand("SET", Keyspace.testClock(org), String(us)))
    }

    // MARK: Helpers

    private func nextID(_ kind: String) async throws -> UInt64 {
        guard let v = try await redis.send(RedisCommand("INCR", Keyspace.sequence(kind))).int, v > 0 else {
            throw RedisError(.unexpectedReply, "INCR of the \(kind) sequence did not return a positive integer")
        }
        return UInt64(v)
    }

    private func transaction(_ commands: [RedisCommand]) async throws {
        let replies = try await redis.send([RedisCommand("MULTI")] + commands + [RedisCommand("EXEC")])
        for reply in replies {
            if case .error(let e) = reply { throw RedisError(.server, e) }
        }
        if replies.last?.isNull == true { throw RedisError(.server, "transaction aborted") }
    }

    private func fields(_ hash: String, _ names: [String]) async throws -> [String?] {
        strings(try await redis.send(RedisCommand(["HMGET", hash] + names)))
    }

    private func strings(_ reply: RedisValue) -> [String?] { (reply.array ?? []).map { $0.string } }

    private func sortedStrings(_ reply: RedisValue) -> [String] { (reply.array ?? []).compactMap { $0.string }.sorted() }

    private func optionalField(_ hash: String, _ field: String, _ value: Int64?) -> RedisCommand {
        if let value { return RedisCommand("HSET", hash, field, String(value)) }
        return RedisCommand("HDEL", hash, field)
    }

    /// Replaces a model list and records its size in field `nm` of `hash`, so the limiter skips
    /// the set entirely when the list is empty (the common case).
    private func replaceSet(_ key: String, _ members: [String], countIn hash: String) -> [RedisCommand] {
        let unique = Set(members)
        var commands = [RedisCommand("DEL", key), RedisCommand("HSET", hash, "nm", String(unique.count))]
        if !unique.isEmpty { commands.append(RedisCommand(["SADD", key] + unique.sorted())) }
        return commands
    }

    private func limitCommands(_ hash: String, _ limits: KeyLimits) throws -> [RedisCommand] {
        try validRate(limits.rpm, "key rpm")
        try validRate(limits.tpm, "key tpm")
        if let b = limits.budget { try validMoney(b, "key budget") }
        if let e = limits.expiresAtMs, e <= 0 { throw StoreError.invalid("key expiry must be a positive Unix ms time") }
        return [
            optionalField(hash, "rpm", limits.rpm), optionalField(hash, "tpm", limits.tpm),
            optionalField(hash, "budget", limits.budget), optionalField(hash, "expires", limits.expiresAtMs),
        ]
    }

    private func validRate(_ value: Int64?, _ name: String) throws {
        if let value, !(1...MinuteBucket.maxLimit).contains(value) {
            throw StoreError.invalid("\(name) \(value) is outside 1…\(MinuteBucket.maxLimit)")
        }
    }

    private func validMoney(_ value: Int64, _ name: String) throws {
        guard (0...maxExactValue).contains(value) else { throw StoreError.invalid("\(name) \(value) is outside 0…\(maxExactValue) nano-USD") }
    }
}
