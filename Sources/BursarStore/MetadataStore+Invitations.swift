import BursarRedis
public import BursarRBAC
import Foundation

/// A pending invitation to an organization: nobody joins until the invited person accepts.
public struct Invitation: Sendable, Hashable {
    /// Counted per organization.
    public var id: UInt64
    public var orgID: UInt64
    /// The invited address (lowercased).
    public var email: String
    /// What the organization will call them (nil: their own name).
    public var name: String?
    public var role: OrgRole
    public var createdAtMs: Int64
    public var expiresAtMs: Int64
    /// Who invited (nil: the operator).
    public var invitedBy: UInt64?
}

extension MetadataStore {
    // MARK: Invitations
    //
    // Inviting an address answers the same whether or not anyone has it, anywhere: the answer is
    // the invitation and a one-time acceptance token, never a person, a name or a token of
    // theirs. The person joins when they accept: signed in as the invited address (someone who
    // has an account), or with the token alone (someone new, who is then made and given their
    // own token; so does someone whose token was revoked when they left their last
    // organization). Accepting without signing in an invitation whose address has a working
    // account is refused (`unauthenticated`): the token holder is not shown to be that person.

    /// How long an invitation can be accepted: 7 days.
    public static let invitationTTLSeconds = 7 * 86_400

    /// Invites `email` to `org` with `role`, replacing a pending invitation of the same address
    /// (its token stops working). Refused (`conflict`) only for an address that is already a
    /// member of this organization, which the inviter can see anyway.
    public func createInvitation(org: UInt64, email: String, name: String?, role: OrgRole, by: UInt64?) async throws -> (Invitation, token: String) {
        guard try await organization(org) != nil else { throw StoreError.notFound("organization \(org)") }
        let email = try Self.normalizedEmail(email)
        if let name { try validName(name, "user name") }
        if let p = try await person(email: email), try await orgRole(org: org, p.id) != nil {
            throw StoreError.conflict("\(email) is already a member of organization \(org)")
        }
        for pending in try await invitations(org: org) where pending.email == email {
            try await deleteInvitation(org: org, pending.id)
        }
        let id = try await nextID("invitation", org: org)
        let now = Self.nowMs()
        let invitation = Invitation(
            id: id, orgID: org, email: email, name: name, role: role, createdAtMs: now,
            expiresAtMs: now + Int64(Self.invitationTTLSeconds) * 1000, invitedBy: by)
        let token = Self.newSecret(prefix: "inv-br-")
        let digest = Self.tokenDigest(token)
        var fields = [
            "HSET", Keyspace.invitation(org, id), "email", email, "role", role.rawValue, "created", String(now),
            "expires", String(invitation.expiresAtMs), "token", digest,
        ]
        if let name { fields += ["name", name] }
        if let by { fields += ["by", String(by)] }
        try await transaction([
            RedisCommand(fields),
            RedisCommand("EXPIRE", Keyspace.invitation(org, id), String(Self.invitationTTLSeconds)),
            RedisCommand("SADD", Keyspace.invitations(org), String(id)),
        ])
        try await redis.send(RedisCommand("SET", Keyspace.invitationToken(digest), "\(org):\(id)", "EX", String(Self.invitationTTLSeconds)))
        return (invitation, token)
    }

    /// One pending invitation, or nil (never made, accepted, revoked or expired).
    public func invitation(org: UInt64, _ id: UInt64) async throws -> Invitation? {
        let f = try await fields(Keyspace.invitation(org, id), ["email", "role", "created", "expires", "name", "by"])
        guard let email = f[0], let role = f[1].flatMap(OrgRole.init(rawValue:)), let created = f[2].flatMap({ Int64($0) }),
              let expires = f[3].flatMap({ Int64($0) }), expires > Self.nowMs()
        else { return nil }
        return Invitation(
            id: id, orgID: org, email: email, name: f[4], role: role, createdAtMs: created, expiresAtMs: expires,
            invitedBy: f[5].flatMap { UInt64($0) })
    }

    /// The organization's pending invitations, oldest first (expired ones are dropped).
    public func invitations(org: UInt64) async throws -> [Invitation] {
        var result: [Invitation] = []
        for id in try await idSet(Keyspace.invitations(org)) {
            if let i = try await invitation(org: org, id) {
                result.append(i)
            } else {
                try await redis.send(RedisCommand("SREM", Keyspace.invitations(org), String(id)))
            }
        }
        return result
    }

    /// Withdraws a pending invitation: its token stops working.
    public func revokeInvitation(org: UInt64, _ id: UInt64) async throws {
        guard try await invitation(org: org, id) != nil else { throw StoreError.notFound("invitation \(id)") }
        try await deleteInvitation(org: org, id)
    }

    /// Deletes an invitation and its token.
    private func deleteInvitation(org: UInt64, _ id: UInt64) async throws {
        if let digest = try await redis.send(RedisCommand("HGET", Keyspace.invitation(org, id), "token")).string {
            try await redis.send(RedisCommand("DEL", Keyspace.invitationToken(digest)))
        }
        try await deleteInvitationRecord(org: org, id)
    }

    /// Deletes an invitation whose token is gone already.
    private func deleteInvitationRecord(org: UInt64, _ id: UInt64) async throws {
        try await transaction([
            RedisCommand("DEL", Keyspace.invitation(org, id)),
            RedisCommand("SREM", Keyspace.invitations(org), String(id)),
        ])
    }

    /// Accepts the invitation behind `token`: as `user` (signed in; their address must be the
    /// invited one), or as someone new (`user` nil; the address must have no account yet, and
    /// the new person's token is returned, shown once). Once only. An unknown, used, revoked or
    /// expired token, or one for another address, is `not_found`.
    public func acceptInvitation(token: String, as user: UInt64?) async throws -> (User, token: String?) {
        let digest = Self.tokenDigest(token)
        guard !token.isEmpty, token.utf8.count <= 128,
              let ref = try await redis.send(RedisCommand("GET", Keyspace.invitationToken(digest))).string,
              let colon = ref.firstIndex(of: ":"), let org = UInt64(ref[..<colon]), let id = UInt64(ref[ref.index(after: colon)...]),
              let invitation = try await invitation(org: org, id)
        else { throw StoreError.notFound("invitation") }
        let person: Person
        var issued: String?
        if let user {
            guard let p = try await self.person(user), p.email == invitation.email else { throw StoreError.notFound("invitation") }
            person = p
        } else if let existing = try await self.person(email: invitation.email) {
            // Someone with a working token accepts signed in; someone whose token was revoked
            // (they had left their last organization) accepts as someone new would, and gets a
            // new token.
            guard try await currentTokenDigest(user: existing.id).isEmpty else {
                throw StoreError("unauthenticated", "this invitation is for someone with an account: accept it signed in as them (their token)")
            }
            person = existing
        } else {
            // Their own name is their address until they say otherwise; the invitation's name is
            // what this organization calls them, and only this one.
            (person, issued) = try await findOrCreatePerson(email: invitation.email, name: nil)
        }
        // Used once: whoever takes the token first joins.
        guard try await redis.send(RedisCommand("GETDEL", Keyspace.invitationToken(digest))).string == ref else {
            throw StoreError.notFound("invitation")
        }
        try await deleteInvitationRecord(org: org, id)
        let (member, token) = try await join(org: org, person: person, role: invitation.role, name: invitation.name, token: issued)
        return (member, token)
    }
}
