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

    /// `not_found`: the entity does not exist.
    public static func notFound(_ what: String) -> StoreError { StoreError("not_found", "\(what) does not exist") }
    /// `invalid`: a value is malformed or out of range.
    public static func invalid(_ message: String) -> StoreError { StoreError("invalid", message) }
    /// `conflict`: the entity exists already, or the store is already bootstrapped.
    public static func conflict(_ message: String) -> StoreError { StoreError("conflict", message) }
    /// `last_owner`: the change would leave an organization without an Owner.
    public static func lastOwner(_ org: UInt64) -> StoreError {
        StoreError("last_owner", "organization \(org) must keep at least one Owner: add another Owner first")
    }

    public var description: String { "\(code): \(message)" }
}

/// Reads and writes organizations, users, projects, memberships and keys in Redis. Every write
/// of one entity is one MULTI/EXEC in the organization's slot, so the limiter never sees half of it.
public struct MetadataStore: Sendable {
    /// The Redis client.
    public let redis: RedisClient
    /// The key-encryption keys provider (BYOK) secrets are sealed with; nil: none configured,
    /// and a provider secret cannot be stored.
    public let secrets: SecretKeyring?

    /// A store on a client. Registers the store's scripts with the client.
    public init(redis: RedisClient, secrets: SecretKeyring? = nil) {
        self.redis = redis
        self.secrets = secrets
        redis.register(MetadataLua.all)
    }

    // MARK: Organizations

    /// Creates an organization.
    public func createOrganization(name: String, metered: Bool = false, credits: Int64 = 0) async throws -> Organization {
        try validMoney(credits, "credits")
        try validName(name, "organization name")
        let id = try await nextID("org")
        // Reservation ids carry the organization below 2^48 (SPEC §5).
        guard id < ReservationSeal.orgIDLimit else { throw StoreError.conflict("organization ids are used up (2^48)") }
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

    /// Every organization, by id.
    public func organizations() async throws -> [Organization] {
        let ids = try await idSet(Keyspace.orgs)
        var result: [Organization] = []
        for id in ids {
            if let o = try await organization(id) { result.append(o) }
        }
        return result
    }

    /// Suspends or reactivates an organization. Takes effect on the next CHECK.
    public func setOrganizationStatus(_ id: UInt64, _ status: Organization.Status) async throws {
        guard try await organization(id) != nil else { throw StoreError.notFound("organization \(id)") }
        try await transaction([RedisCommand("HSET", Keyspace.orgHash(id), "status", status.rawValue)], org: id, recompile: .organization)
    }

    /// Turns credit metering on or off.
    public func setMetered(_ id: UInt64, _ metered: Bool) async throws {
        guard try await organization(id) != nil else { throw StoreError.notFound("organization \(id)") }
        try await transaction([RedisCommand("HSET", Keyspace.orgHash(id), "metered", metered ? "1" : "0")], org: id, recompile: .organization)
    }

    /// Adds (or, negative, removes) credits; returns the new balance in nano-USD.
    @discardableResult
    public func addCredits(_ id: UInt64, _ amount: Int64) async throws -> Int64 {
        guard try await organization(id) != nil else { throw StoreError.notFound("organization \(id)") }
        return try await redis.send(RedisCommand("INCRBY", Keyspace.credits(id), String(amount))).int ?? 0
    }

    /// A spend counter's value in nano-USD (0 when absent).
    public func spend(_ counter: String) async throws -> Int64 {
        try await redis.send(RedisCommand("GET", counter)).int ?? 0
    }

    /// Redis's clock in Unix ms (the clock every limit window is cut by).
    public func redisTimeMs() async throws -> Int64 { try await redis.timeMs() }

    /// The credit balance in nano-USD (reservations already deducted).
    public func credits(_ id: UInt64) async throws -> Int64 {
        try await redis.send(RedisCommand("GET", Keyspace.credits(id))).int ?? 0
    }

    // MARK: Secrets

    /// A new API key secret: `sk-br-` and 256 bits from the system CSPRNG, URL-safe base64
    /// without padding.
    public static func newSecret(prefix: String = "sk-br-") -> String {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let b64 = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        return prefix + b64
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

    /// The next id of `kind` in `org` (projects, keys, BYOK keys, MCP servers): counted per
    /// organization, so ids tell nothing of what other organizations create. An organization's
    /// counter starts where the installation-wide counter of earlier releases stopped (0 on a new
    /// installation), so no id repeats one issued before the upgrade.
    func nextID(_ kind: String, org: UInt64) async throws -> UInt64 {
        let key = Keyspace.orgSequence(org, kind)
        if try await redis.send(RedisCommand("EXISTS", key)).int == 0 {
            let legacy = try await redis.send(RedisCommand("GET", Keyspace.sequence(kind))).int ?? 0
            _ = try await redis.send(RedisCommand("SET", key, String(max(0, legacy)), "NX"))
        }
        guard let v = try await redis.send(RedisCommand("INCR", key)).int, v > 0 else {
            throw RedisError(.unexpectedReply, "INCR of organization \(org)'s \(kind) sequence did not return a positive integer")
        }
        return UInt64(v)
    }

    /// A new person's id: random in 1…2^53−1 (exact in every JSON reader), so it tells nothing
    /// of how many people the installation has. Never one already taken.
    func newPersonID() async throws -> UInt64 {
        for _ in 0..<8 {
            let id = UInt64.random(in: 1...((1 << 53) - 1))
            if try await redis.send(RedisCommand("EXISTS", Keyspace.globalUser(id))).int == 0 { return id }
        }
        throw StoreError.conflict("no free person id after 8 random draws")
    }

    func nextID(_ kind: String) async throws -> UInt64 {
        guard let v = try await redis.send(RedisCommand("INCR", Keyspace.sequence(kind))).int, v > 0 else {
            throw RedisError(.unexpectedReply, "INCR of the \(kind) sequence did not return a positive integer")
        }
        return UInt64(v)
    }

    func transaction(_ commands: [RedisCommand]) async throws {
        let replies = try await redis.send([RedisCommand("MULTI")] + commands + [RedisCommand("EXEC")])
        for reply in replies {
            if case .error(let e) = reply { throw RedisError(.server, e) }
        }
        if replies.last?.isNull == true { throw RedisError(.server, "transaction aborted") }
    }

    /// Which keys' compiled records (SPEC §13.1) a metadata write must rewrite.
    enum CompiledKeys {
        /// These keys.
        case keys([UInt64])
        /// Every key in the project's key set.
        case project(UInt64)
        /// Every key the user holds in the organization.
        case user(UInt64)
        /// Every key of the organization.
        case organization
    }

    /// The command that rewrites the compiled records of `keys` in organization `org`: an EVAL (its
    /// source sent each time, not EVALSHA), so that inside a MULTI/EXEC it can never fail with
    /// NOSCRIPT after the writes before it were applied.
    static func recompile(org: UInt64, _ keys: CompiledKeys) -> RedisCommand {
        let scope: [String] = switch keys {
        case .keys(let ids): ["keys"] + ids.map { String($0) }
        case .project(let id): ["project", String(id)]
        case .user(let id): ["user", String(id)]
        case .organization: ["org"]
        }
        return compileScript.evalCommand(keys: [Keyspace.orgHash(org)], args: [Keyspace.org(org)] + scope)
    }

    static let compileScript = RedisScript(source: LimiterLua.compile)

    /// `commands` and then the recompilation of `keys`, as one MULTI/EXEC: no CHECK ever sees the
    /// write without the compiled records that follow from it.
    func transaction(_ commands: [RedisCommand], org: UInt64, recompile keys: CompiledKeys) async throws {
        try await transaction(commands + [Self.recompile(org: org, keys)])
    }

    func fields(_ hash: String, _ names: [String]) async throws -> [String?] {
        strings(try await redis.send(RedisCommand(["HMGET", hash] + names)))
    }

    func strings(_ reply: RedisValue) -> [String?] { (reply.array ?? []).map { $0.string } }

    func sortedStrings(_ reply: RedisValue) -> [String] { (reply.array ?? []).compactMap { $0.string }.sorted() }

    func optionalField(_ hash: String, _ field: String, _ value: Int64?) -> RedisCommand {
        if let value { return RedisCommand("HSET", hash, field, String(value)) }
        return RedisCommand("HDEL", hash, field)
    }

    /// Replaces a model list and records its size in field `nm` of `hash`, so the limiter skips
    /// the set entirely when the list is empty (the common case).
    func replaceSet(_ key: String, _ members: [String], countIn hash: String) -> [RedisCommand] {
        let unique = Set(members)
        var commands = [RedisCommand("DEL", key), RedisCommand("HSET", hash, "nm", String(unique.count))]
        if !unique.isEmpty { commands.append(RedisCommand(["SADD", key] + unique.sorted())) }
        return commands
    }

    func limitCommands(_ hash: String, _ limits: KeyLimits) throws -> [RedisCommand] {
        try validRate(limits.rpm, "key rpm")
        try validRate(limits.tpm, "key tpm")
        if let b = limits.budget { try validMoney(b, "key budget") }
        if let e = limits.expiresAtMs, e <= 0 { throw StoreError.invalid("key expiry must be a positive Unix ms time") }
        return [
            optionalField(hash, "rpm", limits.rpm), optionalField(hash, "tpm", limits.tpm),
            optionalField(hash, "budget", limits.budget), optionalField(hash, "expires", limits.expiresAtMs),
        ]
    }

    func validRate(_ value: Int64?, _ name: String) throws {
        if let value, !(1...MinuteBucket.maxLimit).contains(value) {
            throw StoreError.invalid("\(name) \(value) is outside 1…\(MinuteBucket.maxLimit)")
        }
    }

    func validMoney(_ value: Int64, _ name: String) throws {
        guard (0...maxExactValue).contains(value) else { throw StoreError.invalid("\(name) \(value) is outside 0…\(maxExactValue) nano-USD") }
    }
}

extension MetadataStore {
    /// Names of things (organizations, projects, keys, prompts…): 1…128 Unicode scalars (code
    /// points, what JSON Schema's `maxLength` counts; not grapheme clusters), no control character
    /// (Cc), and not only space separators (Zs). proto/openapi.json's `Name` pattern says the same.
    func validName(_ name: String, _ what: String, max: Int = 128) throws {
        try Self.checkName(name, what, max: max)
    }

    /// `validName` without a store (the rule is pure).
    public static func checkName(_ name: String, _ what: String, max: Int = 128) throws {
        let scalars = name.unicodeScalars
        guard scalars.contains(where: { !isBlank($0) }) else { throw StoreError.invalid("\(what) is empty or only spaces") }
        guard scalars.count <= max else { throw StoreError.invalid("\(what) is longer than \(max) characters (Unicode code points)") }
        guard !scalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw StoreError.invalid("\(what) contains a control character")
        }
    }

    private static func isBlank(_ s: Unicode.Scalar) -> Bool { isControlOrSpace(s) }

    /// A control character (Cc) or a space separator (Zs).
    static func isControlOrSpace(_ s: Unicode.Scalar) -> Bool {
        s.properties.generalCategory == .spaceSeparator || s.properties.generalCategory == .control
    }

    /// Model names: 1…64 visible ASCII characters (`!`…`~`: no spaces, no control characters), so
    /// bytes on the wire protocol, characters and code points are the same count.
    func validModels(_ models: [String], _ what: String) throws {
        for m in models { try Self.checkModel(m, what) }
    }

    /// One model name (see `validModels`).
    public static func checkModel(_ m: String, _ what: String) throws {
        guard (1...64).contains(m.utf8.count), m.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw StoreError.invalid("\(what): model name '\(m)' must be 1…64 visible ASCII characters (! through ~)")
        }
    }

    /// Milliseconds since the Unix epoch on this host (metadata timestamps only; limits use Redis's clock).
    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// A list kept in one hash field, joined by U+001F (which `validModels` refuses in names).
    static func joinList(_ items: [String]) -> String { items.joined(separator: "\u{1F}") }
    /// The inverse of `joinList`.
    static func splitList(_ text: String?) -> [String] {
        guard let text, !text.isEmpty else { return [] }
        return text.split(separator: "\u{1F}", omittingEmptySubsequences: true).map(String.init)
    }
}
