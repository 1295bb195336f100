public import BursarLimits

// The admin API's request and response bodies. Properties are camelCase in Swift and snake_case
// on the wire (`APIJSON`). proto/openapi.json describes exactly these shapes.

// MARK: Identity

/// `POST /v1/bootstrap`.
public struct BootstrapRequest: Codable, Sendable, Hashable {
    /// Name of the first organization.
    public var org: String
    /// E-mail of its first Owner.
    public var ownerEmail: String
    /// Display name of the Owner (default: the e-mail).
    public var ownerName: String?
    public init(org: String, ownerEmail: String, ownerName: String? = nil) {
        self.org = org
        self.ownerEmail = ownerEmail
        self.ownerName = ownerName
    }
}

/// The answer to bootstrap: both tokens, shown this once.
public struct BootstrapResponse: Codable, Sendable, Hashable {
    /// The platform operator's token (creates and suspends organizations).
    public var operatorToken: String
    /// The first organization.
    public var organization: OrgBody
    /// Its first Owner.
    public var owner: MemberBody
    /// The Owner's personal access token.
    public var ownerToken: String
    public init(operatorToken: String, organization: OrgBody, owner: MemberBody, ownerToken: String) {
        self.operatorToken = operatorToken
        self.organization = organization
        self.owner = owner
        self.ownerToken = ownerToken
    }
}

/// `GET /v1/me`.
public struct MeResponse: Codable, Sendable, Hashable {
    /// `operator` or `user`.
    public var kind: String
    /// The user (absent for the operator).
    public var user: UserBody?
    /// The organizations the user belongs to, with their role (every organization for the operator).
    public var organizations: [OrgBody]
    public init(kind: String, user: UserBody?, organizations: [OrgBody]) {
        self.kind = kind
        self.user = user
        self.organizations = organizations
    }
}

/// `GET /v1/me/token`: the caller's token's lifecycle (never the token).
public struct TokenInfoResponse: Codable, Sendable, Hashable {
    /// `operator` or `user`.
    public var kind: String
    /// When it was made, Unix ms (absent: not recorded, a token from before this was kept, or the operator's).
    public var createdMs: Int64?
    /// When it stops working, Unix ms (absent: never).
    public var expiresMs: Int64?
    /// When it last authenticated a call, Unix ms to the second (absent: not since it was made).
    public var lastUsedMs: Int64?
    public init(kind: String, createdMs: Int64? = nil, expiresMs: Int64? = nil, lastUsedMs: Int64? = nil) {
        self.kind = kind
        self.createdMs = createdMs
        self.expiresMs = expiresMs
        self.lastUsedMs = lastUsedMs
    }
}

/// `POST /v1/me/token/rotate`: replace the caller's token.
public struct RotateTokenRequest: Codable, Sendable, Hashable {
    /// Days until the new token stops working (1…3650); absent: it does not expire.
    public var expiresInDays: Int64?
    public init(expiresInDays: Int64? = nil) { self.expiresInDays = expiresInDays }
}

/// The new token, shown once.
public struct RotatedTokenResponse: Codable, Sendable, Hashable {
    /// The new bearer token; the one that made the call no longer works.
    public var token: String
    /// When it stops working, Unix ms (absent: never).
    public var expiresMs: Int64?
    public init(token: String, expiresMs: Int64? = nil) {
        self.token = token
        self.expiresMs = expiresMs
    }
}

/// A user (one person, possibly in several organizations).
public struct UserBody: Codable, Sendable, Hashable {
    public var id: UInt64
    public var email: String
    public var name: String
    public init(id: UInt64, email: String, name: String) {
        self.id = id
        self.email = email
        self.name = name
    }
}

// MARK: Organizations

/// An organization.
public struct OrgBody: Codable, Sendable, Hashable {
    public var id: UInt64
    public var name: String
    /// `active` or `suspended`.
    public var status: String
    /// The caller's role in it (`owner` or `member`); absent for the operator.
    public var role: String?
    public init(id: UInt64, name: String, status: String, role: String? = nil) {
        self.id = id
        self.name = name
        self.status = status
        self.role = role
    }
}

/// `POST /v1/orgs` (operator only).
public struct CreateOrgRequest: Codable, Sendable, Hashable {
    public var name: String
    public var ownerEmail: String
    public var ownerName: String?
    public init(name: String, ownerEmail: String, ownerName: String? = nil) {
        self.name = name
        self.ownerEmail = ownerEmail
        self.ownerName = ownerName
    }
}

/// The answer to creating an organization.
public struct CreateOrgResponse: Codable, Sendable, Hashable {
    public var organization: OrgBody
    public var owner: MemberBody
    /// The Owner's token, when this created the user; absent when the user already existed.
    public var ownerToken: String?
    public init(organization: OrgBody, owner: MemberBody, ownerToken: String?) {
        self.organization = organization
        self.owner = owner
        self.ownerToken = ownerToken
    }
}

/// `GET /v1/orgs`.
public struct OrgListResponse: Codable, Sendable, Hashable {
    public var organizations: [OrgBody]
    public init(organizations: [OrgBody]) { self.organizations = organizations }
}

// MARK: Organization members

/// A user's membership of an organization.
public struct MemberBody: Codable, Sendable, Hashable {
    public var userId: UInt64
    public var email: String
    public var name: String
    /// `owner` or `member`.
    public var role: String
    public init(userId: UInt64, email: String, name: String, role: String) {
        self.userId = userId
        self.email = email
        self.name = name
        self.role = role
    }
}

/// `POST /v1/orgs/{org}/members`: invite by e-mail.
public struct InviteRequest: Codable, Sendable, Hashable {
    public var email: String
    public var name: String?
    /// `owner` or `member` (default `member`).
    public var role: String?
    public init(email: String, name: String? = nil, role: String? = nil) {
        self.email = email
        self.name = name
        self.role = role
    }
}

/// A pending invitation: nobody joins until the invited person accepts it.
public struct InvitationBody: Codable, Sendable, Hashable {
    /// Counted per organization.
    public var id: UInt64
    public var email: String
    /// What the organization will call them; absent: their own name.
    public var name: String?
    /// `owner` or `member`.
    public var role: String
    public var createdAtMs: Int64
    public var expiresAtMs: Int64
    public init(id: UInt64, email: String, name: String?, role: String, createdAtMs: Int64, expiresAtMs: Int64) {
        self.id = id
        self.email = email
        self.name = name
        self.role = role
        self.createdAtMs = createdAtMs
        self.expiresAtMs = expiresAtMs
    }
}

/// The answer to an invitation: the same whether or not anyone has the address. The token is
/// for the invited person (`POST /v1/invitations/accept`), shown once.
public struct InviteResponse: Codable, Sendable, Hashable {
    public var invitation: InvitationBody
    public var acceptToken: String
    public init(invitation: InvitationBody, acceptToken: String) {
        self.invitation = invitation
        self.acceptToken = acceptToken
    }
}

/// `GET /v1/orgs/{org}/invitations`.
public struct InvitationListResponse: Codable, Sendable, Hashable {
    public var invitations: [InvitationBody]
    public init(invitations: [InvitationBody]) { self.invitations = invitations }
}

/// `POST /v1/invitations/accept`.
public struct AcceptInvitationRequest: Codable, Sendable, Hashable {
    /// The acceptance token the invitation answered with (`inv-br-…`).
    public var token: String
    public init(token: String) { self.token = token }
}

/// The answer to an accepted invitation.
public struct AcceptInvitationResponse: Codable, Sendable, Hashable {
    public var organization: OrgBody
    public var member: MemberBody
    /// The new person's personal access token, when accepting made them (shown once).
    public var token: String?
    public init(organization: OrgBody, member: MemberBody, token: String?) {
        self.organization = organization
        self.member = member
        self.token = token
    }
}

/// `PATCH /v1/orgs/{org}/members/{user}`.
public struct MemberRoleRequest: Codable, Sendable, Hashable {
    public var role: String
    public init(role: String) { self.role = role }
}

/// `GET /v1/orgs/{org}/members`.
public struct MemberListResponse: Codable, Sendable, Hashable {
    public var members: [MemberBody]
    public init(members: [MemberBody]) { self.members = members }
}

// MARK: Projects

/// A project and its guardrails.
public struct ProjectBody: Codable, Sendable, Hashable {
    public var id: UInt64
    public var name: String
    /// `active` or `archived`.
    public var status: String
    /// Accessible models (real or virtual names); empty = all.
    public var models: [String]
    public var rpm: Int64?
    public var tpm: Int64?
    public var monthlyBudgetNusd: Int64?
    /// The caller's project role: `admin` (Owners are admins everywhere) or `member`.
    public var role: String?
    public init(id: UInt64, name: String, status: String, models: [String], rpm: Int64?, tpm: Int64?, monthlyBudgetNusd: Int64?, role: String?) {
        self.id = id
        self.name = name
        self.status = status
        self.models = models
        self.rpm = rpm
        self.tpm = tpm
        self.monthlyBudgetNusd = monthlyBudgetNusd
        self.role = role
    }
}

/// `POST /v1/orgs/{org}/projects`.
public struct CreateProjectRequest: Codable, Sendable, Hashable {
    public var name: String
    public var models: [String]?
    public var rpm: Int64?
    public var tpm: Int64?
    public var monthlyBudgetNusd: Int64?
    public init(name: String, models: [String]? = nil, rpm: Int64? = nil, tpm: Int64? = nil, monthlyBudgetNusd: Int64? = nil) {
        self.name = name
        self.models = models
        self.rpm = rpm
        self.tpm = tpm
        self.monthlyBudgetNusd = monthlyBudgetNusd
    }
}

/// `PATCH /v1/orgs/{org}/projects/{project}`: absent fields stay, `null` removes a cap.
public struct UpdateProjectRequest: Codable, Sendable, Hashable {
    public var name: String?
    public var status: String?
    public var models: [String]?
    public var rpm: Patch<Int64>
    public var tpm: Patch<Int64>
    public var monthlyBudgetNusd: Patch<Int64>
    public init(name: String? = nil, status: String? = nil, models: [String]? = nil, rpm: Patch<Int64> = .unchanged, tpm: Patch<Int64> = .unchanged, monthlyBudgetNusd: Patch<Int64> = .unchanged) {
        self.name = name
        self.status = status
        self.models = models
        self.rpm = rpm
        self.tpm = tpm
        self.monthlyBudgetNusd = monthlyBudgetNusd
    }
    enum CodingKeys: String, CodingKey { case name, status, models, rpm, tpm, monthlyBudgetNusd }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        status = try c.decodeIfPresent(String.self, forKey: .status)
        models = try c.decodeIfPresent([String].self, forKey: .models)
        rpm = try c.patch(Int64.self, forKey: .rpm)
        tpm = try c.patch(Int64.self, forKey: .tpm)
        monthlyBudgetNusd = try c.patch(Int64.self, forKey: .monthlyBudgetNusd)
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(name, forKey: .name)
        try c.encodeIfPresent(status, forKey: .status)
        try c.encodeIfPresent(models, forKey: .models)
        try c.encode(rpm, forKey: .rpm)
        try c.encode(tpm, forKey: .tpm)
        try c.encode(monthlyBudgetNusd, forKey: .monthlyBudgetNusd)
    }
}

/// `GET /v1/orgs/{org}/projects`: the projects the caller can see.
public struct ProjectListResponse: Codable, Sendable, Hashable {
    public var projects: [ProjectBody]
    public init(projects: [ProjectBody]) { self.projects = projects }
}

// MARK: Project members

/// What a project member's keys may have at most. Absent fields do not narrow.
public struct GrantBody: Codable, Sendable, Hashable {
    /// Models their keys may use (absent = the project's).
    public var models: [String]?
    /// Largest spend cap of one key, nano-USD.
    public var maxKeySpendNusd: Int64?
    /// Largest RPM of one key.
    public var rpm: Int64?
    /// Largest TPM of one key.
    public var tpm: Int64?
    public init(models: [String]? = nil, maxKeySpendNusd: Int64? = nil, rpm: Int64? = nil, tpm: Int64? = nil) {
        self.models = models
        self.maxKeySpendNusd = maxKeySpendNusd
        self.rpm = rpm
        self.tpm = tpm
    }
}

/// A user's role in a project.
public struct ProjectMemberBody: Codable, Sendable, Hashable {
    public var userId: UInt64
    public var email: String
    public var name: String
    /// `admin` or `member`.
    public var role: String
    public var grant: GrantBody
    /// True for an organization Owner, who is Project Admin of every project without being added.
    public var orgOwner: Bool
    public init(userId: UInt64, email: String, name: String, role: String, grant: GrantBody, orgOwner: Bool) {
        self.userId = userId
        self.email = email
        self.name = name
        self.role = role
        self.grant = grant
        self.orgOwner = orgOwner
    }
}

/// `POST /v1/orgs/{org}/projects/{project}/members`: adds an organization member (by id or e-mail).
public struct AddProjectMemberRequest: Codable, Sendable, Hashable {
    public var userId: UInt64?
    public var email: String?
    /// `admin` or `member` (default `member`).
    public var role: String?
    public var grant: GrantBody?
    public init(userId: UInt64? = nil, email: String? = nil, role: String? = nil, grant: GrantBody? = nil) {
        self.userId = userId
        self.email = email
        self.role = role
        self.grant = grant
    }
}

/// `PATCH /v1/orgs/{org}/projects/{project}/members/{user}`: a new role and/or a new grant (the
/// grant replaces the old one whole).
public struct UpdateProjectMemberRequest: Codable, Sendable, Hashable {
    public var role: String?
    public var grant: GrantBody?
    public init(role: String? = nil, grant: GrantBody? = nil) {
        self.role = role
        self.grant = grant
    }
}

/// `GET /v1/orgs/{org}/projects/{project}/members`.
public struct ProjectMemberListResponse: Codable, Sendable, Hashable {
    public var members: [ProjectMemberBody]
    public init(members: [ProjectMemberBody]) { self.members = members }
}

// MARK: Keys

/// An API key. The secret is never part of it.
public struct KeyBody: Codable, Sendable, Hashable {
    public var id: UInt64
    public var projectId: UInt64
    /// The user the key belongs to; it inherits their project permissions.
    public var userId: UInt64
    public var name: String
    /// Prefix and last four characters, e.g. `sk-br-…4f2a`.
    public var display: String
    /// `active` or `revoked`.
    public var status: String
    public var maxSpendNusd: Int64?
    /// `daily`, `weekly`, `monthly` or `lifetime`.
    public var period: String
    public var rpm: Int64?
    public var tpm: Int64?
    public var models: [String]
    public var expiresAtMs: Int64?
    public var contentLoggingDisabled: Bool
    public var createdAtMs: Int64
    /// Who created it (a Project Admin or Owner may create keys for members).
    public var createdBy: UInt64
    public init(id: UInt64, projectId: UInt64, userId: UInt64, name: String, display: String, status: String, maxSpendNusd: Int64?, period: String, rpm: Int64?, tpm: Int64?, models: [String], expiresAtMs: Int64?, contentLoggingDisabled: Bool, createdAtMs: Int64, createdBy: UInt64) {
        self.id = id
        self.projectId = projectId
        self.userId = userId
        self.name = name
        self.display = display
        self.status = status
        self.maxSpendNusd = maxSpendNusd
        self.period = period
        self.rpm = rpm
        self.tpm = tpm
        self.models = models
        self.expiresAtMs = expiresAtMs
        self.contentLoggingDisabled = contentLoggingDisabled
        self.createdAtMs = createdAtMs
        self.createdBy = createdBy
    }
}

/// `POST /v1/orgs/{org}/projects/{project}/keys`.
public struct CreateKeyRequest: Codable, Sendable, Hashable {
    public var name: String
    /// Whose key (default: the caller). Only a Project Admin or Owner may name someone else.
    public var userId: UInt64?
    public var maxSpendNusd: Int64?
    /// `daily`, `weekly`, `monthly` (default) or `lifetime`.
    public var period: String?
    public var rpm: Int64?
    public var tpm: Int64?
    public var models: [String]?
    /// Expiry as Unix ms; or use `expires_in_days`.
    public var expiresAtMs: Int64?
    /// Expiry N days from now (server clock).
    public var expiresInDays: Int64?
    public var contentLoggingDisabled: Bool?
    public init(name: String, userId: UInt64? = nil, maxSpendNusd: Int64? = nil, period: String? = nil, rpm: Int64? = nil, tpm: Int64? = nil, models: [String]? = nil, expiresAtMs: Int64? = nil, expiresInDays: Int64? = nil, contentLoggingDisabled: Bool? = nil) {
        self.name = name
        self.userId = userId
        self.maxSpendNusd = maxSpendNusd
        self.period = period
        self.rpm = rpm
        self.tpm = tpm
        self.models = models
        self.expiresAtMs = expiresAtMs
        self.expiresInDays = expiresInDays
        self.contentLoggingDisabled = contentLoggingDisabled
    }
}

/// A created or rotated key with its secret, shown this once.
public struct KeySecretResponse: Codable, Sendable, Hashable {
    public var key: KeyBody
    public var secret: String
    public init(key: KeyBody, secret: String) {
        self.key = key
        self.secret = secret
    }
}

/// `PATCH /v1/orgs/{org}/keys/{key}`: absent fields stay, `null` removes a limit.
public struct UpdateKeyRequest: Codable, Sendable, Hashable {
    public var name: String?
    public var maxSpendNusd: Patch<Int64>
    public var period: String?
    public var rpm: Patch<Int64>
    public var tpm: Patch<Int64>
    public var models: [String]?
    public var expiresAtMs: Patch<Int64>
    public var expiresInDays: Int64?
    public var contentLoggingDisabled: Bool?
    public init(name: String? = nil, maxSpendNusd: Patch<Int64> = .unchanged, period: String? = nil, rpm: Patch<Int64> = .unchanged, tpm: Patch<Int64> = .unchanged, models: [String]? = nil, expiresAtMs: Patch<Int64> = .unchanged, expiresInDays: Int64? = nil, contentLoggingDisabled: Bool? = nil) {
        self.name = name
        self.maxSpendNusd = maxSpendNusd
        self.period = period
        self.rpm = rpm
        self.tpm = tpm
        self.models = models
        self.expiresAtMs = expiresAtMs
        self.expiresInDays = expiresInDays
        self.contentLoggingDisabled = contentLoggingDisabled
    }
    enum CodingKeys: String, CodingKey { case name, maxSpendNusd, period, rpm, tpm, models, expiresAtMs, expiresInDays, contentLoggingDisabled }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        maxSpendNusd = try c.patch(Int64.self, forKey: .maxSpendNusd)
        period = try c.decodeIfPresent(String.self, forKey: .period)
        rpm = try c.patch(Int64.self, forKey: .rpm)
        tpm = try c.patch(Int64.self, forKey: .tpm)
        models = try c.decodeIfPresent([String].self, forKey: .models)
        expiresAtMs = try c.patch(Int64.self, forKey: .expiresAtMs)
        expiresInDays = try c.decodeIfPresent(Int64.self, forKey: .expiresInDays)
        contentLoggingDisabled = try c.decodeIfPresent(Bool.self, forKey: .contentLoggingDisabled)
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(name, forKey: .name)
        try c.encode(maxSpendNusd, forKey: .maxSpendNusd)
        try c.encodeIfPresent(period, forKey: .period)
        try c.encode(rpm, forKey: .rpm)
        try c.encode(tpm, forKey: .tpm)
        try c.encodeIfPresent(models, forKey: .models)
        try c.encode(expiresAtMs, forKey: .expiresAtMs)
        try c.encodeIfPresent(expiresInDays, forKey: .expiresInDays)
        try c.encodeIfPresent(contentLoggingDisabled, forKey: .contentLoggingDisabled)
    }
}

/// A list of keys: the caller's own, or all they may manage.
public struct KeyListResponse: Codable, Sendable, Hashable {
    public var keys: [KeyBody]
    public init(keys: [KeyBody]) { self.keys = keys }
}

// MARK: Billing & credits

/// `GET /v1/orgs/{org}/billing`: balance and this period's spend.
public struct BillingResponse: Codable, Sendable, Hashable {
    /// Prepaid credit balance (reservations already deducted), nano-USD.
    public var creditsNusd: Int64
    /// Whether CHECKs draw on the balance.
    public var metered: Bool
    /// The calendar month the project figures cover (UTC).
    public var monthStartMs: Int64
    public var projects: [ProjectSpendBody]
    public var keys: [KeySpendBody]
    public init(creditsNusd: Int64, metered: Bool, monthStartMs: Int64, projects: [ProjectSpendBody], keys: [KeySpendBody]) {
        self.creditsNusd = creditsNusd
        self.metered = metered
        self.monthStartMs = monthStartMs
        self.projects = projects
        self.keys = keys
    }
}

/// A project's spend this month.
public struct ProjectSpendBody: Codable, Sendable, Hashable {
    public var projectId: UInt64
    public var name: String
    public var spendNusd: Int64
    public var monthlyBudgetNusd: Int64?
    public init(projectId: UInt64, name: String, spendNusd: Int64, monthlyBudgetNusd: Int64?) {
        self.projectId = projectId
        self.name = name
        self.spendNusd = spendNusd
        self.monthlyBudgetNusd = monthlyBudgetNusd
    }
}

/// A key's spend in its current window.
public struct KeySpendBody: Codable, Sendable, Hashable {
    public var keyId: UInt64
    public var projectId: UInt64
    public var name: String
    public var period: String
    public var spendNusd: Int64
    public var maxSpendNusd: Int64?
    public init(keyId: UInt64, projectId: UInt64, name: String, period: String, spendNusd: Int64, maxSpendNusd: Int64?) {
        self.keyId = keyId
        self.projectId = projectId
        self.name = name
        self.period = period
        self.spendNusd = spendNusd
        self.maxSpendNusd = maxSpendNusd
    }
}

/// `POST /v1/orgs/{org}/credits`: adds (or, negative, corrects) credits; optionally turns metering on/off.
public struct AddCreditsRequest: Codable, Sendable, Hashable {
    public var amountNusd: Int64
    public var metered: Bool?
    public init(amountNusd: Int64, metered: Bool? = nil) {
        self.amountNusd = amountNusd
        self.metered = metered
    }
}

/// The balance after a credit change.
public struct CreditsResponse: Codable, Sendable, Hashable {
    public var creditsNusd: Int64
    public var metered: Bool
    public init(creditsNusd: Int64, metered: Bool) {
        self.creditsNusd = creditsNusd
        self.metered = metered
    }
}

// MARK: Organization resources

/// An external provider key (BYOK). Its secret is write-only.
public struct ByokBody: Codable, Sendable, Hashable {
    public var id: UInt64
    public var provider: String
    public var name: String
    /// The last four characters of the secret, e.g. `…9xQz`.
    public var display: String
    public var createdAtMs: Int64
    public init(id: UInt64, provider: String, name: String, display: String, createdAtMs: Int64) {
        self.id = id
        self.provider = provider
        self.name = name
        self.display = display
        self.createdAtMs = createdAtMs
    }
}

/// `POST /v1/orgs/{org}/byok`.
public struct CreateByokRequest: Codable, Sendable, Hashable {
    public var provider: String
    public var name: String
    public var secret: String
    public init(provider: String, name: String, secret: String) {
        self.provider = provider
        self.name = name
        self.secret = secret
    }
}

/// `GET /v1/orgs/{org}/byok`.
public struct ByokListResponse: Codable, Sendable, Hashable {
    public var keys: [ByokBody]
    public init(keys: [ByokBody]) { self.keys = keys }
}

/// A virtual model: an alias that maps to real models, usable in project and key model lists.
public struct VirtualModelBody: Codable, Sendable, Hashable {
    public var name: String
    public var targets: [String]
    public init(name: String, targets: [String]) {
        self.name = name
        self.targets = targets
    }
}

/// `PUT /v1/orgs/{org}/virtual-models/{name}`.
public struct PutVirtualModelRequest: Codable, Sendable, Hashable {
    public var targets: [String]
    public init(targets: [String]) { self.targets = targets }
}

/// `GET /v1/orgs/{org}/virtual-models`.
public struct VirtualModelListResponse: Codable, Sendable, Hashable {
    public var models: [VirtualModelBody]
    public init(models: [VirtualModelBody]) { self.models = models }
}

/// A registered MCP server.
public struct McpServerBody: Codable, Sendable, Hashable {
    public var id: UInt64
    public var name: String
    public var url: String
    public init(id: UInt64, name: String, url: String) {
        self.id = id
        self.name = name
        self.url = url
    }
}

/// `POST /v1/orgs/{org}/mcp-servers` and `PATCH …/{id}` (absent fields stay).
public struct McpServerRequest: Codable, Sendable, Hashable {
    public var name: String?
    public var url: String?
    public init(name: String? = nil, url: String? = nil) {
        self.name = name
        self.url = url
    }
}

/// `GET /v1/orgs/{org}/mcp-servers`.
public struct McpServerListResponse: Codable, Sendable, Hashable {
    public var servers: [McpServerBody]
    public init(servers: [McpServerBody]) { self.servers = servers }
}

/// One version of a prompt.
public struct PromptVersionBody: Codable, Sendable, Hashable {
    public var version: Int64
    public var text: String
    public var createdAtMs: Int64
    public var createdBy: UInt64
    public init(version: Int64, text: String, createdAtMs: Int64, createdBy: UInt64) {
        self.version = version
        self.text = text
        self.createdAtMs = createdAtMs
        self.createdBy = createdBy
    }
}

/// A named prompt with every version, oldest first.
public struct PromptBody: Codable, Sendable, Hashable {
    public var name: String
    public var versions: [PromptVersionBody]
    public init(name: String, versions: [PromptVersionBody]) {
        self.name = name
        self.versions = versions
    }
}

/// `POST /v1/orgs/{org}/prompts` (a new prompt, version 1) and `POST …/prompts/{name}/versions`
/// (`name` ignored there).
public struct PromptRequest: Codable, Sendable, Hashable {
    public var name: String?
    public var text: String
    public init(name: String? = nil, text: String) {
        self.name = name
        self.text = text
    }
}

/// `GET /v1/orgs/{org}/prompts`: names and latest version numbers.
public struct PromptListResponse: Codable, Sendable, Hashable {
    public var prompts: [PromptSummaryBody]
    public init(prompts: [PromptSummaryBody]) { self.prompts = prompts }
}

/// A prompt's name and latest version.
public struct PromptSummaryBody: Codable, Sendable, Hashable {
    public var name: String
    public var latestVersion: Int64
    public init(name: String, latestVersion: Int64) {
        self.name = name
        self.latestVersion = latestVersion
    }
}

// MARK: Audit

/// One audit record: who tried what on which target, and how it ended.
public struct AuditEntryBody: Codable, Sendable, Hashable {
    /// The Redis stream id (time-ordered).
    public var id: String
    /// Redis time of the record, Unix ms.
    public var timeMs: Int64
    /// `user:<id>` or `operator`.
    public var actor: String
    /// The permission-matrix action or API operation, e.g. `key.revoke`.
    public var action: String
    /// e.g. `project:3/key:12`.
    public var target: String
    /// `ok`, or the error code that refused it (`forbidden`, `not_found`, `exceeds_cap`, …).
    public var outcome: String
    public init(id: String, timeMs: Int64, actor: String, action: String, target: String, outcome: String) {
        self.id = id
        self.timeMs = timeMs
        self.actor = actor
        self.action = action
        self.target = target
        self.outcome = outcome
    }
}

/// `GET /v1/orgs/{org}/audit`: a page, newest first.
public struct AuditResponse: Codable, Sendable, Hashable {
    public var entries: [AuditEntryBody]
    /// The cursor of the next (older) page, for `before`; absent when there is none.
    public var nextBefore: String?
    public init(entries: [AuditEntryBody], nextBefore: String? = nil) {
        self.entries = entries
        self.nextBefore = nextBefore
    }
}

/// Budget periods as the API spells them.
extension BudgetPeriod {
    /// Parses `daily`, `weekly`, `monthly` or `lifetime`.
    public init?(apiName: String) { self.init(rawValue: apiName) }
}

/// `POST /v1/console-links`: a single-use sign-in link to the web console for the caller.
public struct ConsoleLinkResponse: Codable, Sendable, Hashable {
    /// The path to open on the ops port (`/console/link/<code>`).
    public var path: String
    /// How long the link stays valid, unused.
    public var expiresInSeconds: Int64
    public init(path: String, expiresInSeconds: Int64) {
        self.path = path
        self.expiresInSeconds = expiresInSeconds
    }
}

/// A model's price in the organization's price table: nano-USD per million tokens.
public struct PriceBody: Codable, Sendable, Hashable {
    public var model: String
    public var inputPerMillionNusd: Int64
    public var outputPerMillionNusd: Int64
    public var cachedInputPerMillionNusd: Int64
    public init(model: String, inputPerMillionNusd: Int64, outputPerMillionNusd: Int64, cachedInputPerMillionNusd: Int64) {
        self.model = model
        self.inputPerMillionNusd = inputPerMillionNusd
        self.outputPerMillionNusd = outputPerMillionNusd
        self.cachedInputPerMillionNusd = cachedInputPerMillionNusd
    }
}

/// `PUT /v1/orgs/{org}/prices/{model}`. Cached input absent: the input price.
public struct PutPriceRequest: Codable, Sendable, Hashable {
    public var inputPerMillionNusd: Int64
    public var outputPerMillionNusd: Int64
    public var cachedInputPerMillionNusd: Int64?
    public init(inputPerMillionNusd: Int64, outputPerMillionNusd: Int64, cachedInputPerMillionNusd: Int64? = nil) {
        self.inputPerMillionNusd = inputPerMillionNusd
        self.outputPerMillionNusd = outputPerMillionNusd
        self.cachedInputPerMillionNusd = cachedInputPerMillionNusd
    }
}

/// `GET /v1/orgs/{org}/prices`.
public struct PriceListResponse: Codable, Sendable, Hashable {
    public var prices: [PriceBody]
    public init(prices: [PriceBody]) { self.prices = prices }
}

/// One entry an import left out, and why.
public struct SkippedPriceBody: Codable, Sendable, Hashable {
    public var model: String
    public var reason: String
    public init(model: String, reason: String) {
        self.model = model
        self.reason = reason
    }
}

/// `POST /v1/orgs/{org}/prices/import`.
public struct PriceImportResponse: Codable, Sendable, Hashable {
    public var imported: Int
    public var skipped: [SkippedPriceBody]
    public init(imported: Int, skipped: [SkippedPriceBody]) {
        self.imported = imported
        self.skipped = skipped
    }
}

/// `POST /v1/gateway-credentials` (operator only): a credential a gateway presents on the data
/// plane (AUTH, SPEC §6.5); its connections serve only these organizations.
public struct CreateGatewayCredentialRequest: Codable, Sendable, Hashable {
    /// Which gateway or fleet holds it.
    public var name: String
    /// The organizations it serves (at least one).
    public var organizations: [UInt64]
    public init(name: String, organizations: [UInt64]) {
        self.name = name
        self.organizations = organizations
    }
}

/// A gateway credential; `secret` only in the answer that issued it.
public struct GatewayCredentialBody: Codable, Sendable, Hashable {
    public var id: String
    public var name: String
    public var organizations: [UInt64]
    public var createdAtMs: Int64
    /// The secret (`bgw_…`), shown once: bursar keeps only its SHA-256.
    public var secret: String?
    public init(id: String, name: String, organizations: [UInt64], createdAtMs: Int64, secret: String? = nil) {
        self.id = id
        self.name = name
        self.organizations = organizations
        self.createdAtMs = createdAtMs
        self.secret = secret
    }
}

extension GatewayCredentialBody {
    /// Whether `id` has the form of a credential's id: `gw_` and 16 lowercase hex digits.
    public static func isValidID(_ id: String) -> Bool {
        let u = Array(id.utf8)
        return u.count == 19 && id.hasPrefix("gw_") && u[3...].allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }
}

/// `GET /v1/gateway-credentials`.
public struct GatewayCredentialList: Codable, Sendable, Hashable {
    public var credentials: [GatewayCredentialBody]
    public init(credentials: [GatewayCredentialBody]) { self.credentials = credentials }
}
