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

    /// The principal a bearer token belongs to, or nil. Tokens are stored only as SHA-256 digests.
    public func authenticate(token: String) async throws -> Principal? {
        guard !token.isEmpty, token.utf8.count <= 256 else { return nil }
        guard let v = try await redis.send(RedisCommand("GET", Keyspace.token(Self.tokenDigest(token)))).string else { return nil }
        if v == "op" { return .operator }
        if v.hasPrefix("u:"), let id = UInt64(v.dropFirst(2)) { return .user(id) }
        return nil
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
        let id = try await nextID("user")
        // The e-mail index is claimed first (NX): two concurrent invitations make one person.
        guard try await redis.send(RedisCommand("SET", Keyspace.email(email), String(id), "NX")).string == "OK" else {
            guard let existing = try await person(email: email) else { throw StoreError.conflict("user \(email) is being created") }
            return (existing, nil)
        }
        let token = Self.newSecret(prefix: "pat-br-")
        let digest = Self.tokenDigest(token)
        let person = Person(id: id, email: email, name: name ?? email)
        _ = try await redis.send([
            RedisCommand("HSET", Keyspace.globalUser(id), "email", email, "name", person.name, "token", digest),
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
        if try await orgRole(org: org, person.id) != nil {
            throw StoreError.conflict("\(person.email) is already a member of organization \(org)")
        }
        var commands = [
            RedisCommand("HSET", Keyspace.user(org, person.id), "role", role.rawValue),
            RedisCommand("SADD", Keyspace.users(org), String(person.id)),
        ]
        if role == .owner { commands.append(RedisCommand("SADD", Keyspace.owners(org), String(person.id))) }
        // Keys they held before an earlier removal work again, as their role now allows.
        try await transaction(commands, org: org, recompile: .user(person.id))
        try await redis.send(RedisCommand("SADD", Keyspace.userOrgs(person.id), String(org)))
        return (User(id: person.id, orgID: org, email: person.email, name: person.name, role: role), token)
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
    public func user(org: UInt64, _ id: UInt64) async throws -> User? {
        guard let role = try await orgRole(org: org, id), let p = try await person(id) else { return nil }
        return User(id: id, orgID: org, email: p.email, name: p.name, role: role)
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
