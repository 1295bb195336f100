public import BursarLimits
public import BursarRBAC

/// An organization: the tenant boundary. Nothing of one organization is visible to another.
public struct Organization: Hashable, Sendable, Codable {
    /// Whether the organization may use its keys.
    public enum Status: String, Sendable, Codable, CaseIterable { case active, suspended }
    /// Id (also its Redis hash tag).
    public var id: UInt64
    /// Display name.
    public var name: String
    /// Active or suspended.
    public var status: Status
    /// When true, every CHECK draws on the prepaid credit balance and is denied when it is spent.
    public var metered: Bool
}

/// A user as a member of one organization. The same person (one id, one e-mail, one token) may
/// belong to several organizations, with a role in each.
public struct User: Hashable, Sendable, Codable {
    /// Id (global).
    public var id: UInt64
    /// Organization.
    public var orgID: UInt64
    /// E-mail (unique, lowercased).
    public var email: String
    /// Display name.
    public var name: String
    /// Organization role.
    public var role: OrgRole
}

/// A project's guardrails: the outer boundary of every key in it.
public struct Project: Hashable, Sendable, Codable {
    /// Whether the project's keys work.
    public enum Status: String, Sendable, Codable, CaseIterable { case active, archived }
    /// Id.
    public var id: UInt64
    /// Organization.
    public var orgID: UInt64
    /// Name.
    public var name: String
    /// Active or archived.
    public var status: Status
    /// Accessible models; empty means all.
    public var models: [String]
    /// Requests per minute across the project (nil = none).
    public var rpm: Int64?
    /// Tokens per minute across the project (nil = none).
    public var tpm: Int64?
    /// Monthly budget, nano-USD (nil = none).
    public var monthlyBudget: Int64?
}

/// What a member's keys may have at most. nil fields do not narrow.
public struct Grant: Hashable, Sendable, Codable {
    /// Models their keys may use (nil = the project's).
    public var models: [String]?
    /// Largest spend cap per key, nano-USD, in the key's period.
    public var maxKeySpend: Int64?
    /// Largest RPM per key.
    public var rpm: Int64?
    /// Largest TPM per key.
    public var tpm: Int64?

    /// A grant.
    public init(models: [String]? = nil, maxKeySpend: Int64? = nil, rpm: Int64? = nil, tpm: Int64? = nil) {
        self.models = models
        self.maxKeySpend = maxKeySpend
        self.rpm = rpm
        self.tpm = tpm
    }
}

/// A user's membership in a project.
public struct Membership: Hashable, Sendable, Codable {
    /// Organization.
    public var orgID: UInt64
    /// Project.
    public var projectID: UInt64
    /// User.
    public var userID: UInt64
    /// Project role.
    public var role: ProjectRole
    /// Narrowing of what their keys may have.
    public var grant: Grant

    /// A membership.
    public init(orgID: UInt64, projectID: UInt64, userID: UInt64, role: ProjectRole, grant: Grant = Grant()) {
        self.orgID = orgID
        self.projectID = projectID
        self.userID = userID
        self.role = role
        self.grant = grant
    }
}

/// The limits a key is created with.
public struct KeyLimits: Hashable, Sendable, Codable {
    /// Spend cap per window, nano-USD (nil = none).
    public var budget: Int64?
    /// The window of `budget`.
    public var period: BudgetPeriod
    /// Requests per minute (nil = none).
    public var rpm: Int64?
    /// Tokens per minute (nil = none).
    public var tpm: Int64?
    /// Models; empty = whatever the project and grants allow.
    public var models: [String]
    /// Unix ms at which the key stops working (nil = never).
    public var expiresAtMs: Int64?
    /// The gateway must not log content for this key.
    public var contentLoggingDisabled: Bool

    /// Limits; everything unlimited by default.
    public init(
        budget: Int64? = nil, period: BudgetPeriod = .monthly, rpm: Int64? = nil, tpm: Int64? = nil,
        models: [String] = [], expiresAtMs: Int64? = nil, contentLoggingDisabled: Bool = false
    ) {
        self.budget = budget
        self.period = period
        self.rpm = rpm
        self.tpm = tpm
        self.models = models
        self.expiresAtMs = expiresAtMs
        self.contentLoggingDisabled = contentLoggingDisabled
    }
}

/// An API key. Its secret is never stored: only its SHA-256 digest and a display form.
public struct APIKey: Hashable, Sendable, Codable {
    /// Whether the key works.
    public enum Status: String, Sendable, Codable { case active, revoked }
    /// Id.
    public var id: UInt64
    /// Organization.
    public var orgID: UInt64
    /// Project.
    public var projectID: UInt64
    /// The user it belongs to; it inherits their project permissions.
    public var userID: UInt64
    /// Name.
    public var name: String
    /// Display form, e.g. `sk-br-…4f2a`.
    public var display: String
    /// Active or revoked.
    public var status: Status
    /// Limits.
    public var limits: KeyLimits
    /// When it was created, Unix ms.
    public var createdAtMs: Int64
    /// Who created it (the user, or a Project Admin or Owner on their behalf).
    public var createdBy: UInt64
}

/// A freshly created key and its secret, which is shown once and never stored.
public struct CreatedKey: Sendable {
    /// The key.
    public var key: APIKey
    /// The secret, `sk-br-` followed by 43 URL-safe base64 characters (256 random bits).
    public var secret: String
}
