public import BursarAPI
import BursarLimits
import BursarRBAC
@_spi(Testing) public import BursarStore
public import Logging

extension AdminService {
    /// A service whose usage reads take the organization's time from the test clock, like a
    /// limiter built with the same `clock`. Tests only.
    @_spi(Testing)
    public init(store: MetadataStore, audit: AuditLog, logger: Logger, clock: ScriptClock) {
        self.init(store: store, audit: audit, usage: UsageReader(redis: store.redis, clock: clock), logger: logger)
    }

    // MARK: Live usage

    /// Where a key stands now: its minute buckets, its window's spend, its open reservations.
    /// Whoever may see the key may read it (its user; Project Admins and Owners for any key).
    public func keyUsage(_ actor: Actor, _ org: UInt64, _ key: UInt64) async throws -> KeyUsageResponse {
        try await audited(actor, org: org, "key.usage", "key:\(key)", mutation: false) {
            let (k, _) = try await authorizedKey(actor, org, key)
            guard let u = try await usage.key(org: org, key) else { throw APIError.notFound("key \(key)") }
            let window = u.spend.period == .lifetime ? Keyspace.Segment.lifetime.rawValue : String(u.spend.window.startMs)
            var spend = SpendUsageBody(u.spend)
            spend.budgetAlerts = try await history.alerts(window: Keyspace.keySpend(org, key, window: window))
            return KeyUsageResponse(
                keyId: key, projectId: u.projectID, name: k.name, atMs: u.atMs, requests: RateUsageBody(u.requests),
                tokens: RateUsageBody(u.tokens), effectiveRequests: RateUsageBody(u.effectiveRequests),
                effectiveTokens: RateUsageBody(u.effectiveTokens), spend: spend, reserved: ReservedUsageBody(u.reserved))
        }
    }

    /// Where a project stands now (view_project).
    public func projectUsage(_ actor: Actor, _ org: UInt64, _ project: UInt64) async throws -> ProjectUsageResponse {
        try await audited(actor, org: org, "project.usage", "project:\(project)", mutation: false) {
            let (_, p) = try await requireProject(actor, org, project, .viewProject)
            guard let u = try await usage.project(org: org, project) else { throw APIError.notFound("project \(project)") }
            var spend = SpendUsageBody(u.spend)
            spend.budgetAlerts = try await history.alerts(window: Keyspace.projectSpend(org, project, window: String(u.spend.window.startMs)))
            return ProjectUsageResponse(
                projectId: project, name: p.name, atMs: u.atMs, requests: RateUsageBody(u.requests), tokens: RateUsageBody(u.tokens),
                spend: spend, reserved: ReservedUsageBody(u.reserved))
        }
    }

    /// Where the organization stands now: credits, this month's spend, the minute, reservations
    /// (billing_and_credits: Owners).
    public func orgUsage(_ actor: Actor, _ org: UInt64) async throws -> OrgUsageResponse {
        try await audited(actor, org: org, "org.usage", "org:\(org)", mutation: false) {
            try await requireOrg(actor, org, .billingAndCredits)
            guard let o = try await store.organization(org) else { throw APIError.notFound("organization \(org)") }
            let u = try await usage.org(org)
            return OrgUsageResponse(
                orgId: org, name: o.name, atMs: u.atMs, metered: u.metered, creditsNusd: u.credits, requestsUsed: u.requestsUsed,
                tokensUsed: u.tokensUsed, spend: SpendUsageBody(u.spend), reserved: ReservedUsageBody(u.reserved))
        }
    }

    /// The busiest keys and projects of the last minute, at most `limit` (1…100) of each
    /// (manage_keys_across_all_projects: Owners).
    public func top(_ actor: Actor, _ org: UInt64, limit: Int) async throws -> TopResponse {
        try await audited(actor, org: org, "org.top", "org:\(org)", mutation: false) {
            try await requireOrg(actor, org, .manageKeysAcrossAllProjects)
            guard (1...100).contains(limit) else { throw APIError(.invalid, "limit must be 1…100") }
            let t = try await usage.top(org: org, limit: limit)
            return TopResponse(
                atMs: t.atMs,
                keys: t.keys.map {
                    TopKeyBody(
                        keyId: $0.keyID, projectId: $0.projectID, name: $0.name, projectName: $0.projectName,
                        requestsUsed: $0.requests, tokensUsed: $0.tokens)
                },
                projects: t.projects.map { TopProjectBody(projectId: $0.projectID, name: $0.name, requestsUsed: $0.requests, tokensUsed: $0.tokens) })
        }
    }
}

// Store values → API bodies.

extension RateUsageBody {
    init(_ r: RateUsage) { self.init(limit: r.limit, used: r.used, remaining: r.remaining, resetMs: r.resetMs) }
}

extension SpendUsageBody {
    init(_ s: SpendUsage) {
        let lifetime = s.period == .lifetime
        self.init(
            period: s.period.rawValue, spendNusd: s.spent, windowStartMs: lifetime ? nil : s.window.startMs, resetsAtMs: s.window.endMs,
            budgetNusd: s.budget, remainingNusd: s.remaining)
    }
}

extension ReservedUsageBody {
    init(_ r: ReservedUsage) { self.init(count: r.count, costNusd: r.cost, tokens: r.tokens) }
}
