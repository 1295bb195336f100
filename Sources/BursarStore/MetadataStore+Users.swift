public import BursarRBAC
import BursarRedis
import Crypto
import BursarWire
import Foundation

/// Who a bearer token belongs to.
public enum Principal: Sendable, Hashable {
    /// The platform operator: creates, lists and suspends organizations; acts inside none.
    case `operator`
    /// A user (of one or more organizations).
    case user(UInt64)
}

/// A personal access token's lifecycle (never the token, which is kept only as a digest).
public struct TokenInfo: Sendable, Hashable {
    /// When it was made (nil for a token made before this was recorded).
    public var createdAtMs: Int64?
    /// When it stops working; nil: never.
    public var expiresAtMs: Int64?
    /// When it last authenticated a call (to the second); nil: not since it was made.
    public var lastUsedAtMs: Int64?
}

/// A person across organizations.
public struct Person: Sendable, Hashable {
    /// Id.
    public var id: UInt64
    /// Lowercased e-mail.
    public var email: String
    /// Display name.
    public var name: String
}

extension MetadataStore {
    // MARK: Tokens

    /// The principal a bearer token belongs to, or nil. Tokens are stored only as SHA-256 digests;
    /// a revoked, replaced or expired one is gone (an expiry is Redis's own, on the token's key).
    /// A user's token records its last use (to the second).
    public func authenticate(token: String) async throws -> Principal? {
        guard !token.isEmpty, token.utf8.count <= 256 else { return nil }
        let digest = Self.tokenDigest(token)
        guard let v = try await redis.send(RedisCommand("GET", Keyspace.token(digest))).string else { return nil }
        if v == "op" { return .operator }
        if v.hasPrefix("u:"), let id = UInt64(v.dropFirst(2)) {
            // Only while this is still the user's token (a rotation in between leaves it alone).
            try await redis.send(MetadataLua.tokenUsed.evalCommand(
                keys: [Keyspace.globalUser(id)], args: [digest, String(Self.nowMs() / 1000 * 1000)]))
            return .user(id)
        }
        return nil
    }

    /// A user's personal access token: when it was made, when it expires, when it was last used;
    /// nil when they have none (revoked).
    public func tokenInfo(user: UInt64) async throws -> TokenInfo? {
        let f = try await fields(Keyspace.globalUser(user), ["token", "token_created", "token_expires", "token_used"])
        guard let digest = f[0], !digest.isEmpty else { return nil }
        guard try await redis.send(RedisCommand("EXISTS", Keyspace.token(digest))).int == 1 else { return nil }
        return TokenInfo(createdAtMs: f[1].flatMap { Int64($0) }, expiresAtMs: f[2].flatMap { Int64($0) }, lastUsedAtMs: f[3].flatMap { Int64($0) })
    }

    /// Replaces a user's personal access token with a new one (returned once), optionally
    /// expiring at `expiresAtMs`. The old token stops working at once, and so do the console
    /// sessions signed in with it.
    public func rotateToken(user: UInt64, expiresAtMs: Int64? = nil) async throws -> (token: String, info: TokenInfo) {
        let now = Self.nowMs()
        if let expiresAtMs, expiresAtMs <= now { throw StoreError.invalid("the token's expiry must be in the future") }
        guard let old = try await fields(Keyspace.globalUser(user), ["token"])[0] else { throw StoreError.notFound("user \(user)") }
        let token = Self.newSecret(prefix: "pat-br-")
        let digest = Self.tokenDigest(token)
        var set = RedisCommand("SET", Keyspace.token(digest), "u:\(user)")
        if let expiresAtMs { set = RedisCommand("SET", Keyspace.token(digest), "u:\(user)", "PXAT", String(expiresAtMs)) }
        var commands = [set]
        if !old.isEmpty { commands.append(RedisCommand("DEL", Keyspace.token(old))) }
        commands.append(RedisCommand("HSET", Keyspace.globalUser(user), "token", digest, "token_created", String(now)))
        commands.append(RedisCommand("HDEL", Keyspace.globalUser(user), "token_used", "token_expires"))
        if let expiresAtMs { commands.append(RedisCommand("HSET", Keyspace.globalUser(user), "token_expires", String(expiresAtMs))) }
        try await transaction(commands)
        return (token, TokenInfo(createdAtMs: now, expiresAtMs: expiresAtMs, lastUsedAtMs: nil))
    }

    /// Revokes a user's personal access token: it stops working at once, and so do the console
    /// sessions signed in with it. Idempotent.
    public func revokeToken(user: UInt64) async throws {
        guard let old = try await fields(Keyspace.globalUser(user), ["token"])[0], !old.isEmpty else { return }
        try await transaction([
            RedisCommand("DEL", Keyspace.token(old)),
            RedisCommand("HSET", Keyspace.globalUser(user), "token", ""),
            RedisCommand("HDEL", Keyspace.globalUser(user), "token_created", "token_used", "token_expires"),
        ])
    }

    /// Replaces an operator token (the one presented) with a new one, returned once.
    public func rotateOperatorToken(current: String) async throws -> String {
        let token = Self.newSecret(prefix: "op-br-")
        try await transaction([
            RedisCommand("SET", Keyspace.token(Self.tokenDigest(token)), "op"),
            RedisCommand("DEL", Keyspace.token(Self.tokenDigest(current))),
        ])
        return token
    }

    /// The digest of a user's current token ("" when revoked): what a console session is bound to.
    func currentTokenDigest(user: UInt64) async throws -> String {
        try await fields(Keyspace.globalUser(user), ["token"])[0] ?? ""
    }

    static func tokenDigest(_ token: String) -> String {
        hexString(Array(SHA256.hash(data: Array(token.utf8))))
    }

    /// Creates the operator's credential, the first organization and its first Owner; only on an
    /// empty store. Returns the operator's token, the organization, the Owner and their token.
    public func bootstrap(org name: String, ownerEmail: String, ownerName: String?) async throws -> (operatorToken: String, org: Organization, owner: User, ownerToken: String) {
        try validName(name, "organization name")
        let email = try Self.normalizedEmail(ownerEmail)
        guard (try await redis.send(RedisCommand("SCARD", Keyspace.orgs)).int ?? 0) == 0 else {
            throw StoreError.conflict("the store already holds organizations; bootstrap works only on an empty store")
        }
        guard try await redis.send(RedisCommand("SET", Keyspace.bootstrapped, "1", "NX")).string == "OK" else {
            throw StoreError.conflict("the store is already bootstrapped")
        }
        let operatorToken = Self.newSecret(prefix: "op-br-")
        try await redis.send(RedisCommand("SET", Keyspace.token(Self.tokenDigest(operatorToken)), "op"))
        let org = try await createOrganization(name: name)
        let (owner, token) = try await addMember(org: org.id, email: email, name: ownerName, role: .owner)
        // A new store has no users, so the Owner was created and has a token.
        guard let token else { throw StoreError.conflict("user \(email) already exists") }
        return (operatorToken, org, owner, token)
    }

    // MARK: People

    /// A person, or nil.
    public func person(_ id: UInt64) async throws -> Person? {
        let f = try await fields(Keyspace.globalUser(id), ["email", "name"])
        guard let email = f[0] else { return nil }
        return Person(id: id, email: email, name: f[1] ?? email)
    }

    /// The person with this e-mail, or nil.
    public func person(email: String) async throws -> Person? {
        guard let e = try? Self.normalizedEmail(email),
              let id = try await redis.send(RedisCommand("GET", Keyspace.email(e))).string.flatMap({ UInt64($0) })
        else { return nil }
        return try await person(id)
    }

    /// Finds the person with `email`, or creates them with a new personal access token (returned
    /// once; nil when the person existed).
    func findOrCreatePerson(email: String, name: String?) async throws -> (Person, token: String?) {
        let email = try Self.normalizedEmail(email)
        if let name { try validName(name, "user name") }
        if let existing = try await person(email: email) { return (existing, nil) }
        let id = try await newPersonID()
        // The e-mail index is claimed first (NX): two concurrent invitations make one person.
        guard try await redis.send(RedisCommand("SET", Keyspace.email(email), String(id), "NX")).string == "OK" else {
            guard let existing = try await person(email: email) else { throw StoreError.conflict("user \(email) is being created") }
            return (existing, nil)
        }
        let token = Self.newSecret(prefix: "pat-br-")
        let digest = Self.tokenDigest(token)
        let person = Person(id: id, email: email, name: name ?? email)
        _ = try await redis.send([
            RedisCommand("HSET", Keyspace.globalUser(id), "email", email, "name", person.name, "token", digest, "token_created", String(Self.nowMs())),
            RedisCommand("SET", Keyspace.token(digest), "u:\(id)"),
        ])
        return (person, token)
    }

    /// The organizations a person belongs to, with their role in each.
    public func memberships(of person: UInt64) async throws -> [(Organization, OrgRole)] {
        let ids = try await idSet(Keyspace.userOrgs(person))
        var result: [(Organization, OrgRole)] = []
        for id in ids {
            guard let org = try await organization(id), let role = try await orgRole(org: id, person) else { continue }
            result.append((org, role))
        }
        return result
    }

    // MARK: Organization members

    /// Adds the person with `email` (created if new) to an organization with `role`. Returns the
    /// member and, when the person was created, their token (shown once).
    public func addMember(org: UInt64, email: String, name: String?, role: OrgRole) async throws -> (User, token: String?) {
        guard try await organization(org) != nil else { throw StoreError.notFound("organization \(org)") }
        let (person, token) = try await findOrCreatePerson(email: email, name: name)
        return try await join(org: org, person: person, role: role, name: name, token: token)
    }

    /// Makes `person` a member of `org` with `role`; `name` is what this organization calls them
    /// (nil: their own name). Returns the member and a token when one was issued: `token` (the
    /// person was just made), or a new one when theirs was revoked (they had left their last
    /// organization).
    func join(org: UInt64, person: Person, role: OrgRole, name: String?, token: String?) async throws -> (User, token: String?) {
        if try await orgRole(org: org, person.id) != nil {
            throw StoreError.conflict("\(person.email) is already a member of organization \(org)")
        }
        var fields = ["HSET", Keyspace.user(org, person.id), "role", role.rawValue]
        if let name { fields += ["name", name] }
        var commands = [
            RedisCommand(fields),
            RedisCommand("SADD", Keyspace.users(org), String(person.id)),
        ]
        if name == nil { commands.insert(RedisCommand("HDEL", Keyspace.user(org, person.id), "name"), at: 0) }
        if role == .owner { commands.append(RedisCommand("SADD", Keyspace.owners(org), String(person.id))) }
        // Keys they held before an earlier removal work again, as their role now allows.
        try await transaction(commands, org: org, recompile: .user(person.id))
        try await redis.send(RedisCommand("SADD", Keyspace.userOrgs(person.id), String(org)))
        var issued = token
        // A person whose token was revoked (removed from their last organization) gets a new one.
        if issued == nil, try await currentTokenDigest(user: person.id).isEmpty {
            issued = try await rotateToken(user: person.id).token
        }
        return (User(id: person.id, orgID: org, email: person.email, name: name ?? person.name, role: role), issued)
    }

    /// Adds a user to an organization (created if their e-mail is new). For tests and embedding;
    /// the admin API uses `addMember`, which also returns a new user's token.
    public func createUser(org: UInt64, email: String, name: String, role: OrgRole) async throws -> User {
        try await addMember(org: org, email: email, name: name, role: role).0
    }

    /// A user's role in an organization, or nil when they are not in it.
    public func orgRole(org: UInt64, _ user: UInt64) async throws -> OrgRole? {
        try await redis.send(RedisCommand("HGET", Keyspace.user(org, user), "role")).string.flatMap(OrgRole.init(rawValue:))
    }

    /// A user as a member of an organization, or nil.
    /// Its name is the one this organization gave them (the invitation's), else their own: never
    /// what another organization calls them.
    public func user(org: UInt64, _ id: UInt64) async throws -> User? {
        let f = try await fields(Keyspace.user(org, id), ["role", "name"])
        guard let role = f[0].flatMap(OrgRole.init(rawValue:)), let p = try await person(id) else { return nil }
        return User(id: id, orgID: org, email: p.email, name: f[1] ?? p.name, role: role)
    }

    /// Every member of an organization, by id.
    public func users(org: UInt64) async throws -> [User] {
        let ids = try await idSet(Keyspace.users(org))
        var result: [User] = []
        for id in ids {
            if let u = try await user(org: org, id) { result.append(u) }
        }
        return result
    }

    /// Changes a user's organization role. Demoting the last Owner throws `last_owner`.
    public func setUserRole(org: UInt64, _ id: UInt64, _ role: OrgRole) async throws {
        try await runOrgRoleScript(org: org, id, role.rawValue)
    }

    /// Removes a user from an organization and from all its projects; their keys there stop
    /// working on the next CHECK. Removing the last Owner throws `last_owner`.
    public func removeUser(org: UInt64, _ id: UInt64) async throws {
        try await runOrgRoleScript(org: org, id, "")
        try await redis.send(RedisCommand("SREM", Keyspace.userOrgs(id), String(org)))
        // Removed from their last organization: their token goes too (and with it their console
        // sessions); invited again, they get a new one.
        if try await redis.send(RedisCommand("SCARD", Keyspace.userOrgs(id))).int == 0 {
            try await revokeToken(user: id)
        }
    }

    private func runOrgRoleScript(org: UInt64, _ id: UInt64, _ role: String) async throws {
        // The role change and the recompilation of the user's keys in one MULTI/EXEC.
        let replies = try await redis.send([
            RedisCommand("MULTI"),
            MetadataLua.setOrgRole.evalCommand(
                keys: [Keyspace.user(org, id), Keyspace.owners(org), Keyspace.users(org), Keyspace.userProjects(org, id)],
                args: [Keyspace.org(org), String(id), role]),
            Self.recompile(org: org, .user(id)),
            RedisCommand("EXEC"),
        ])
        if case .error(let e) = replies.last { throw RedisError(.server, e) }
        guard let results = replies.last?.array, results.count == 2 else { throw RedisError(.server, "transaction aborted") }
        for r in results { if case .error(let e) = r { throw RedisError(.server, e) } }
        let reply = results[0]
        switch reply.string {
        case "ok": return
        case "missing": throw StoreError.notFound("user \(id) in organization \(org)")
        case "last_owner": throw StoreError.lastOwner(org)
        default: throw RedisError(.unexpectedReply, "org role script answered \(reply)")
        }
    }

    /// A lowercased e-mail address, or `invalid`: one `@` with something on both sides, no
    /// control character (Cc) or space (Zs), at most 254 code points (proto/openapi.json's pattern).
    public static func normalizedEmail(_ email: String) throws -> String {
        let parts = email.unicodeScalars.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty, email.unicodeScalars.count <= 254,
              !email.unicodeScalars.contains(where: { isControlOrSpace($0) })
        else { throw StoreError.invalid("'\(email)' is not an e-mail address") }
        return email.lowercased()
    }
}
