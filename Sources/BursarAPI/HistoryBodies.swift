// The usage-history bodies (GET /v1/orgs/{org}/usage/history): what the enforcement counters
// were debited, per UTC day, key, project and model, summed over what the request groups by.
// proto/openapi.json describes exactly these shapes.

/// One group of usage history: the dimensions it was grouped by, then its sums.
public struct HistoryRowBody: Codable, Sendable, Hashable {
    /// The UTC day (`YYYY-MM-DD`), when grouped by day.
    public var day: String?
    /// The project, when grouped by project or key.
    public var projectId: UInt64?
    /// Its current name (absent once deleted).
    public var projectName: String?
    /// The key, when grouped by key.
    public var keyId: UInt64?
    /// Its current name (absent once deleted).
    public var keyName: String?
    /// The model, when grouped by model (empty: denials of a model the key may not use).
    public var model: String?
    /// CHECKs admitted, settled, released; open = admitted and neither (expired ones included).
    public var requestsAdmitted: Int64
    public var requestsSettled: Int64
    public var requestsReleased: Int64
    public var requestsOpen: Int64
    /// CHECKs denied, in all and by reason (`key_rpm`…; reasons with none are left out).
    public var requestsDenied: Int64
    public var denied: [String: Int64]
    /// Tokens: settled actuals, open estimates, and their sum.
    public var tokensSettled: Int64
    public var tokensOpen: Int64
    public var tokens: Int64
    /// Spend in nano-USD: settled actuals, open estimates, and their sum (what the spend
    /// windows were debited).
    public var spendSettledNusd: Int64
    public var spendOpenNusd: Int64
    public var spendNusd: Int64

    public init(
        day: String? = nil, projectId: UInt64? = nil, projectName: String? = nil, keyId: UInt64? = nil, keyName: String? = nil,
        model: String? = nil, requestsAdmitted: Int64 = 0, requestsSettled: Int64 = 0, requestsReleased: Int64 = 0,
        requestsOpen: Int64 = 0, requestsDenied: Int64 = 0, denied: [String: Int64] = [:], tokensSettled: Int64 = 0,
        tokensOpen: Int64 = 0, tokens: Int64 = 0, spendSettledNusd: Int64 = 0, spendOpenNusd: Int64 = 0, spendNusd: Int64 = 0
    ) {
        self.day = day
        self.projectId = projectId
        self.projectName = projectName
        self.keyId = keyId
        self.keyName = keyName
        self.model = model
        self.requestsAdmitted = requestsAdmitted
        self.requestsSettled = requestsSettled
        self.requestsReleased = requestsReleased
        self.requestsOpen = requestsOpen
        self.requestsDenied = requestsDenied
        self.denied = denied
        self.tokensSettled = tokensSettled
        self.tokensOpen = tokensOpen
        self.tokens = tokens
        self.spendSettledNusd = spendSettledNusd
        self.spendOpenNusd = spendOpenNusd
        self.spendNusd = spendNusd
    }
}

/// Usage history of a range of days.
public struct HistoryResponse: Codable, Sendable, Hashable {
    /// The first and the last day read (UTC, inclusive).
    public var from: String
    public var to: String
    /// What the rows are grouped by, in order (`day`, `project`, `key`, `model`).
    public var groupBy: [String]
    /// The groups, ordered by their dimensions; a group with nothing in it is left out.
    public var rows: [HistoryRowBody]
    /// Every row summed (no dimensions).
    public var totals: HistoryRowBody

    public init(from: String, to: String, groupBy: [String], rows: [HistoryRowBody], totals: HistoryRowBody) {
        self.from = from
        self.to = to
        self.groupBy = groupBy
        self.rows = rows
        self.totals = totals
    }
}
