// The live-usage bodies: where a key, a project or the organization stands at the moment of the
// call, read from Redis (never a cache) with the limiter's clock and formulas. proto/openapi.json
// describes exactly these shapes.

// MARK: Usage

/// One rate level (requests or tokens per minute) now.
public struct RateUsageBody: Codable, Sendable, Hashable {
    /// The per-minute limit in force; absent = none.
    public var limit: Int64?
    /// Units in the minute bucket now (drained to this instant), rounded up; 0 without a limit.
    public var used: Int64
    /// Units still admissible now, as CHECK reports it; absent without a limit.
    public var remaining: Int64?
    /// Milliseconds until the bucket has drained completely.
    public var resetMs: Int64
    /// A level.
    public init(limit: Int64?, used: Int64, remaining: Int64?, resetMs: Int64) {
        self.limit = limit
        self.used = used
        self.remaining = remaining
        self.resetMs = resetMs
    }
}

/// Spend in the current calendar window (UTC).
public struct SpendUsageBody: Codable, Sendable, Hashable {
    /// `daily`, `weekly`, `monthly` or `lifetime`.
    public var period: String
    /// Spend in the window, nano-USD, open reservations counted at their estimate.
    public var spendNusd: Int64
    /// Start of the window, Unix ms; absent for a lifetime window.
    public var windowStartMs: Int64?
    /// End of the window (when it resets), Unix ms; absent for a lifetime window.
    public var resetsAtMs: Int64?
    /// The budget for the window, nano-USD; absent = none.
    public var budgetNusd: Int64?
    /// Budget minus spend, nano-USD, as CHECK reports it (may be negative); absent = no budget.
    public var remainingNusd: Int64?
    /// The budget alerts recorded in this window (SPEC §13.13): which of 50, 80 and 100 % of the
    /// budget its spend has reached, each recorded once, when first reached.
    public var budgetAlerts: [Int]
    /// Spend.
    public init(
        period: String, spendNusd: Int64, windowStartMs: Int64?, resetsAtMs: Int64?, budgetNusd: Int64?, remainingNusd: Int64?,
        budgetAlerts: [Int] = []
    ) {
        self.budgetAlerts = budgetAlerts
        self.period = period
        self.spendNusd = spendNusd
        self.windowStartMs = windowStartMs
        self.resetsAtMs = resetsAtMs
        self.budgetNusd = budgetNusd
        self.remainingNusd = remainingNusd
    }
}

/// Reserved but not yet settled: open reservations that have not expired.
public struct ReservedUsageBody: Codable, Sendable, Hashable {
    /// How many.
    public var count: Int64
    /// The sum of their cost estimates, nano-USD.
    public var costNusd: Int64
    /// The sum of their reserved tokens.
    public var tokens: Int64
    /// Reserved amounts.
    public init(count: Int64, costNusd: Int64, tokens: Int64) {
        self.count = count
        self.costNusd = costNusd
        self.tokens = tokens
    }
}

/// `GET /v1/orgs/{org}/keys/{key}/usage`.
public struct KeyUsageResponse: Codable, Sendable, Hashable {
    /// The key.
    public var keyId: UInt64
    /// Its project.
    public var projectId: UInt64
    /// The key's name.
    public var name: String
    /// The instant of the reading on the limiter's clock, Unix ms.
    public var atMs: Int64
    /// The key's RPM level; its limit is the tighter of the key's and its creator's grant.
    public var requests: RateUsageBody
    /// The key's TPM level, likewise.
    public var tokens: RateUsageBody
    /// What a CHECK now reports for requests: the tighter of the key's and the project's level.
    public var effectiveRequests: RateUsageBody
    /// What a CHECK now reports for tokens.
    public var effectiveTokens: RateUsageBody
    /// Spend in the key's window against its effective budget (the tighter of key and grant).
    public var spend: SpendUsageBody
    /// The key's open reservations.
    public var reserved: ReservedUsageBody
    /// A key's usage.
    public init(
        keyId: UInt64, projectId: UInt64, name: String, atMs: Int64, requests: RateUsageBody, tokens: RateUsageBody,
        effectiveRequests: RateUsageBody, effectiveTokens: RateUsageBody, spend: SpendUsageBody, reserved: ReservedUsageBody
    ) {
        self.keyId = keyId
        self.projectId = projectId
        self.name = name
        self.atMs = atMs
        self.requests = requests
        self.tokens = tokens
        self.effectiveRequests = effectiveRequests
        self.effectiveTokens = effectiveTokens
        self.spend = spend
        self.reserved = reserved
    }
}

/// `GET /v1/orgs/{org}/projects/{project}/usage`.
public struct ProjectUsageResponse: Codable, Sendable, Hashable {
    /// The project.
    public var projectId: UInt64
    /// The project's name.
    public var name: String
    /// The instant of the reading on the limiter's clock, Unix ms.
    public var atMs: Int64
    /// The project's RPM level, shared by all its keys.
    public var requests: RateUsageBody
    /// The project's TPM level.
    public var tokens: RateUsageBody
    /// Spend this calendar month against the monthly budget.
    public var spend: SpendUsageBody
    /// Open reservations of the project's keys.
    public var reserved: ReservedUsageBody
    /// A project's usage.
    public init(projectId: UInt64, name: String, atMs: Int64, requests: RateUsageBody, tokens: RateUsageBody, spend: SpendUsageBody, reserved: ReservedUsageBody) {
        self.projectId = projectId
        self.name = name
        self.atMs = atMs
        self.requests = requests
        self.tokens = tokens
        self.spend = spend
        self.reserved = reserved
    }
}

/// `GET /v1/orgs/{org}/usage`.
public struct OrgUsageResponse: Codable, Sendable, Hashable {
    /// The organization.
    public var orgId: UInt64
    /// The organization's name.
    public var name: String
    /// The instant of the reading on the limiter's clock, Unix ms.
    public var atMs: Int64
    /// Whether CHECKs draw on the credit balance.
    public var metered: Bool
    /// The credit balance, nano-USD (open reservations already deducted; may be negative).
    public var creditsNusd: Int64
    /// Requests in the projects' minute buckets, summed (projects without an RPM limit keep none).
    public var requestsUsed: Int64
    /// Tokens in the projects' minute buckets, summed (projects without a TPM limit keep none).
    public var tokensUsed: Int64
    /// Spend this calendar month over all projects.
    public var spend: SpendUsageBody
    /// All open reservations.
    public var reserved: ReservedUsageBody
    /// An organization's usage.
    public init(
        orgId: UInt64, name: String, atMs: Int64, metered: Bool, creditsNusd: Int64, requestsUsed: Int64, tokensUsed: Int64,
        spend: SpendUsageBody, reserved: ReservedUsageBody
    ) {
        self.orgId = orgId
        self.name = name
        self.atMs = atMs
        self.metered = metered
        self.creditsNusd = creditsNusd
        self.requestsUsed = requestsUsed
        self.tokensUsed = tokensUsed
        self.spend = spend
        self.reserved = reserved
    }
}

// MARK: Top

/// `GET /v1/orgs/{org}/top`: the busiest keys and projects of the last minute.
public struct TopResponse: Codable, Sendable, Hashable {
    /// The instant of the reading on the limiter's clock, Unix ms.
    public var atMs: Int64
    /// Keys by requests, then tokens, in their minute buckets; busiest first.
    public var keys: [TopKeyBody]
    /// Projects likewise.
    public var projects: [TopProjectBody]
    /// A ranking.
    public init(atMs: Int64, keys: [TopKeyBody], projects: [TopProjectBody]) {
        self.atMs = atMs
        self.keys = keys
        self.projects = projects
    }
}

/// A key's last minute.
public struct TopKeyBody: Codable, Sendable, Hashable {
    /// The key.
    public var keyId: UInt64
    /// Its project.
    public var projectId: UInt64
    /// The key's name.
    public var name: String
    /// The project's name.
    public var projectName: String
    /// Requests in its RPM bucket.
    public var requestsUsed: Int64
    /// Tokens in its TPM bucket.
    public var tokensUsed: Int64
    /// A key's minute.
    public init(keyId: UInt64, projectId: UInt64, name: String, projectName: String, requestsUsed: Int64, tokensUsed: Int64) {
        self.keyId = keyId
        self.projectId = projectId
        self.name = name
        self.projectName = projectName
        self.requestsUsed = requestsUsed
        self.tokensUsed = tokensUsed
    }
}

/// A project's last minute.
public struct TopProjectBody: Codable, Sendable, Hashable {
    /// The project.
    public var projectId: UInt64
    /// The project's name.
    public var name: String
    /// Requests in its RPM bucket.
    public var requestsUsed: Int64
    /// Tokens in its TPM bucket.
    public var tokensUsed: Int64
    /// A project's minute.
    public init(projectId: UInt64, name: String, requestsUsed: Int64, tokensUsed: Int64) {
        self.projectId = projectId
        self.name = name
        self.requestsUsed = requestsUsed
        self.tokensUsed = tokensUsed
    }
}
