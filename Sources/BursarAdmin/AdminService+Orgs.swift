public import BursarAPI
import BursarLimits
import BursarRBAC
import BursarRedis
public import BursarStore
import Foundation

extension AdminService {
    // MARK: Bootstrap and identity

    /// Creates the operator's credential, the first organization and its first Owner, on an empty
    /// store only.
    public func bootstrap(_ r: BootstrapRequest) async throws -> BootstrapResponse {
        do {
            let b = try await store.bootstrap(org: r.org, ownerEmail: r.ownerEmail, ownerName: r.ownerName)
            await record(b.org.id, Actor(.operator), "org.bootstrap", "org:\(b.org.id)", "ok")
            return BootstrapResponse(
                operatorToken: b.operatorToken, organization: OrgBody(b.org, role: nil), owner: MemberBody(b.owner), ownerToken: b.ownerToken)
        } catch {
            throw APIError.from(error)
        }
    }

    /// Who the caller is and where they belong.
    public func me(_ actor: Actor) async throws -> MeResponse {
        guard let id = actor.userID else {
            return MeResponse(kind: "operator", user: nil, organizations: try await store.organizations().map { OrgBody($0, role: nil) })
        }
        guard let p = try await store.person(id) else { throw APIError(.unauthenticated, "the token's user no longer exists") }
        let orgs = try await store.memberships(of: id).map { OrgBody($0.0, role: $0.1) }
        return MeResponse(kind: "user", user: UserBody(id: p.id, email: p.email, name: p.name), organizations: orgs)
    }

    // MARK: The caller's token

    /// The caller's token's lifecycle.
    public func tokenInfo(_ actor: Actor) async throws -> TokenInfoResponse {
        guard let id = actor.userID else { return TokenInfoResponse(kind: "operator") }
        guard let info = try await store.tokenInfo(user: id) else { throw APIError(.unauthenticated, "the token is no longer valid") }
        return TokenInfoResponse(kind: "user", createdMs: info.createdAtMs, expiresMs: info.expiresAtMs, lastUsedMs: info.lastUsedAtMs)
    }

    /// Replaces the caller's token (`presented`, the one that made the call) with a new one,
    /// returned once; the old one stops working at once (and a user's console sessions end).
    public func rotateToken(_ actor: Actor, presented: String, _ r: RotateTokenRequest) async throws -> RotatedTokenResponse {
        guard let id = actor.userID else {
            guard r.expiresInDays == nil else { throw APIError(.invalid, "expires_in_days: the operator's token does not expire") }
            return RotatedTokenResponse(token: try await store.rotateOperatorToken(current: presented))
        }
        var expires: Int64?
        if let days = r.expiresInDays {
            guard (1...3650).contains(days) else { throw APIError(.invalid, "expires_in_days must be 1…3650") }
            expires = Int64(Date().timeIntervalSince1970 * 1000) + days * 86_400_000
        }
        do {
            let (token, info) = try await store.rotateToken(user: id, expiresAtMs: expires)
            return RotatedTokenResponse(token: token, expiresMs: info.expiresAtMs)
        } catch {
            throw APIError.from(error)
        }
    }

    /// Revokes the caller's personal access token: it, and their console sessions, stop working
    /// at once. The operator's token can only be rotated (nothing could act as the operator after).
    public func revokeToken(_ actor: Actor) async throws {
        guard let id = actor.userID else {
            throw APIError(.forbidden, "the operator's token can be rotated, not revoked: nothing could act as the operator after")
        }
        try await store.revokeToken(user: id)
    }

    // MARK: Organizations (the operator's)

    /// Every organization (operator) or the caller's organizations (user).
    public func listOrgs(_ actor: Actor) async throws -> OrgListResponse {
        OrgListResponse(organizations: try await me(actor).organizations)
    }

    /// Creates an organization with its first Owner (operator only).
    public func createOrg(_ actor: Actor, _ r: CreateOrgRequest) async throws -> CreateOrgResponse {
        guard actor.principal == .operator else { throw APIError(.forbidden, "only the platform operator creates organizations") }
        do {
            _ = try MetadataStore.normalizedEmail(r.ownerEmail)
            let org = try await store.createOrganization(name: r.name)
            let (owner, token) = try await store.addMember(org: org.id, email: r.ownerEmail, name: r.ownerName, role: .owner)
            await record(org.id, actor, "org.create", "org:\(org.id)", "ok")
            return CreateOrgResponse(organization: OrgBody(org, role: nil), owner: MemberBody(owner), ownerToken: token)
        } catch {
            throw APIError.from(error)
        }
    }

    /// An organization: the operator sees any; a user only their own.
    public func getOrg(_ actor: Actor, _ org: UInt64) async throws -> OrgBody {
        if actor.principal == .operator {
            guard let o = try await store.organization(org) else { throw APIError.notFound("organization \(org)") }
            return OrgBody(o, role: nil)
        }
        let role = try await orgRole(actor, org)
        guard let o = try await store.organization(org) else { throw APIError.notFound("organization \(org)") }
        return OrgBody(o, role: role)
    }

    /// Suspends (every key of the organization is denied at the next CHECK) or reactivates it.
    public func setOrgStatus(_ actor: Actor, _ org: UInt64, _ status: Organization.Status) async throws -> OrgBody {
        try await audited(actor, org: org, status == .suspended ? "org.suspend" : "org.activate", "org:\(org)", mutation: true) {
            guard actor.principal == .operator else {
                _ = try await orgRole(actor, org)
                throw APIError(.forbidden, "only the platform operator suspends or reactivates organizations")
            }
            guard try await store.organization(org) != nil else { throw APIError.notFound("organization \(org)") }
            try await store.setOrganizationStatus(org, status)
            await invalidate(.org(org))
            return try await getOrg(actor, org)
        }
    }

    // MARK: Organization members (Owners)

    /// The organization's members.
    public func listMembers(_ actor: Actor, _ org: UInt64) async throws -> MemberListResponse {
        try await audited(actor, org: org, "member.list", "org:\(org)", mutation: false) {
            try await requireOrg(actor, org, .manageOrganizationMembers)
            return MemberListResponse(members: try await store.users(org: org).map(MemberBody.init))
        }
    }

    /// Invites a person by e-mail (creating them, with a token shown once, if new).
    public func invite(_ actor: Actor, _ org: UInt64, _ r: InviteRequest) async throws -> InviteResponse {
        try await audited(actor, org: org, "member.invite", "email:\(r.email)", mutation: true) {
            try await requireOrg(actor, org, .manageOrganizationMembers)
            let role = try parse(OrgRole.self, r.role ?? "member", "role")
            let (invitation, token) = try await store.createInvitation(org: org, email: r.email, name: r.name, role: role, by: actor.userID)
            return InviteResponse(invitation: InvitationBody(invitation), acceptToken: token)
        }
    }

    /// The organization's pending invitations.
    public func listInvitations(_ actor: Actor, _ org: UInt64) async throws -> InvitationListResponse {
        try await audited(actor, org: org, "invitation.list", "org:\(org)", mutation: false) {
            try await requireOrg(actor, org, .manageOrganizationMembers)
            return InvitationListResponse(invitations: try await store.invitations(org: org).map(InvitationBody.init))
        }
    }

    /// Withdraws a pending invitation.
    public func revokeInvitation(_ actor: Actor, _ org: UInt64, _ id: UInt64) async throws {
        try await audited(actor, org: org, "invitation.revoke", "invitation:\(id)", mutation: true) {
            try await requireOrg(actor, org, .manageOrganizationMembers)
            try await store.revokeInvitation(org: org, id)
        }
    }

    /// Accepts an invitation: signed in (`actor`, whose address must be the invited one) or as
    /// someone new (nil). Recorded in the organization's log as the new member's own action.
    public func acceptInvitation(_ actor: Actor?, _ r: AcceptInvitationRequest) async throws -> AcceptInvitationResponse {
        if let actor, actor.userID == nil { throw APIError(.forbidden, "the operator does not accept invitations") }
        do {
            let (member, token) = try await store.acceptInvitation(token: r.token, as: actor?.userID)
            await invalidate(.org(member.orgID))
            await record(member.orgID, Actor(.user(member.id)), "invitation.accept", "user:\(member.id)", "ok")
            guard let org = try await store.organization(member.orgID) else { throw APIError.notFound("organization \(member.orgID)") }
            return AcceptInvitationResponse(organization: OrgBody(org, role: member.role), member: MemberBody(member), token: token)
        } catch {
            throw APIError.from(error)
        }
    }

    /// Changes a member's organization role; the last Owner cannot be demoted.
    public func setMemberRole(_ actor: Actor, _ org: UInt64, _ user: UInt64, _ r: MemberRoleRequest) async throws -> MemberBody {
        try await audited(actor, org: org, "member.role", "user:\(user)", mutation: true) {
            try await requireOrg(actor, org, .manageOrganizationMembers)
            try await store.setUserRole(org: org, user, try parse(OrgRole.self, r.role, "role"))
            await invalidate(.org(org))
            guard let u = try await store.user(org: org, user) else { throw APIError.notFound("user \(user)") }
            return MemberBody(u)
        }
    }

    /// Removes a member from the organization and all its projects; the last Owner cannot leave.
    public func removeMember(_ actor: Actor, _ org: UInt64, _ user: UInt64) async throws {
        try await audited(actor, org: org, "member.remove", "user:\(user)", mutation: true) {
            try await requireOrg(actor, org, .manageOrganizationMembers)
            try await store.removeUser(org: org, user)
            await invalidate(.org(org))
        }
    }

    // MARK: Billing & credits (Owners)

    /// The balance and this period's spend by project and key.
    public func billing(_ actor: Actor, _ org: UInt64) async throws -> BillingResponse {
        try await audited(actor, org: org, "billing.show", "org:\(org)", mutation: false) {
            try await requireOrg(actor, org, .billingAndCredits)
            guard let o = try await store.organization(org) else { throw APIError.notFound("organization \(org)") }
            let now = try await store.redisTimeMs()
            let month = SpendWindow.containing(now, period: .monthly)
            var projects: [ProjectSpendBody] = []
            var keys: [KeySpendBody] = []
            for p in try await store.projects(org: org) {
                let spent = try await store.spend(Keyspace.projectSpend(org, p.id, window: String(month.startMs)))
                projects.append(ProjectSpendBody(projectId: p.id, name: p.name, spendNusd: spent, monthlyBudgetNusd: p.monthlyBudget))
                for k in try await store.keys(org: org, project: p.id) {
                    let period = k.limits.period
                    let window = period == .lifetime ? Keyspace.Segment.lifetime.rawValue : String(SpendWindow.containing(now, period: period).startMs)
                    let kspent = try await store.spend(Keyspace.keySpend(org, k.id, window: window))
                    keys.append(KeySpendBody(keyId: k.id, projectId: p.id, name: k.name, period: period.rawValue, spendNusd: kspent, maxSpendNusd: k.limits.budget))
                }
            }
            return BillingResponse(
                creditsNusd: try await store.credits(org), metered: o.metered, monthStartMs: month.startMs, projects: projects, keys: keys)
        }
    }

    /// Adds credits (negative amounts correct a balance) and optionally switches metering.
    public func addCredits(_ actor: Actor, _ org: UInt64, _ r: AddCreditsRequest) async throws -> CreditsResponse {
        try await audited(actor, org: org, "credits.add", "org:\(org)", mutation: true) {
            try await requireOrg(actor, org, .billingAndCredits)
            guard abs(r.amountNusd) <= maxMoney else { throw APIError(.invalid, "amount_nusd must be within ±\(maxMoney)") }
            // Both within ±(2^53 − 1), so the sum cannot overflow; a balance beyond that would
            // lose exactness in the limiter's Lua (doubles).
            let current = try await store.credits(org)
            guard abs(current + r.amountNusd) <= maxMoney else {
                throw APIError(.conflict, "the balance (\(current)) plus amount_nusd would leave ±\(maxMoney) nano-USD")
            }
            if let m = r.metered { try await store.setMetered(org, m) }
            let balance = try await store.addCredits(org, r.amountNusd)
            guard let o = try await store.organization(org) else { throw APIError.notFound("organization \(org)") }
            return CreditsResponse(creditsNusd: balance, metered: o.metered)
        }
    }

    // MARK: Audit (Owners)

    /// The newest audit entries, newest first.
    public func readAudit(_ actor: Actor, _ org: UInt64, limit: Int) async throws -> AuditResponse {
        try await readAudit(actor, org, AuditLog.Query(limit: limit))
    }

    /// A page of the organization's audit log (Owners only), newest first, every text field
    /// shown with control and bidi characters escaped (`AuditText`).
    public func readAudit(_ actor: Actor, _ org: UInt64, _ query: AuditLog.Query) async throws -> AuditResponse {
        try await audited(actor, org: org, "audit.read", "org:\(org)", mutation: false) {
            let role = try await orgRole(actor, org)
            guard role == .owner else { throw APIError(.forbidden, "only Owners read the audit log") }
            guard (1...1000).contains(query.limit) else { throw APIError(.invalid, "limit must be 1…1000") }
            for (name, cursor) in [("before", query.before), ("after", query.after)] {
                if let cursor, cursor.wholeMatch(of: /[0-9]{1,20}-[0-9]{1,20}/) == nil {
                    throw APIError(.invalid, "\(name) '\(AuditText.visible(cursor))' is not an audit entry id (<ms>-<seq>)")
                }
            }
            for (name, value) in [("actor", query.actor), ("action", query.action)] {
                if let value, value.isEmpty || value.unicodeScalars.count > 256 { throw APIError(.invalid, "\(name) must be 1…256 characters") }
            }
            let (entries, next) = try await audit.read(org: org, query)
            return AuditResponse(
                entries: entries.map {
                    AuditEntryBody(
                        id: $0.id, timeMs: $0.timeMs, actor: AuditText.visible($0.actor), action: AuditText.visible($0.action),
                        target: AuditText.visible($0.target), outcome: AuditText.visible($0.outcome))
                },
                nextBefore: next)
        }
    }
}

/// The largest money amount the API accepts (2^53 − 1 nano-USD, about $9 million: exact in JSON
/// and in Lua's doubles).
let maxMoney: Int64 = (1 << 53) - 1

/// Parses a closed-set string field or throws `invalid` naming the field and the choices.
func parse<T: RawRepresentable & CaseIterable>(_ type: T.Type, _ value: String, _ field: String) throws -> T where T.RawValue == String {
    guard let v = T(rawValue: value) else {
        throw APIError(.invalid, "\(field) '\(value)' is not one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return v
}
