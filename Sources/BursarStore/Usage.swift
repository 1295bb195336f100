public import BursarLimits
public import BursarRedis

/// One rate level (a key's or a project's RPM or TPM bucket) at the moment of reading.
public struct RateUsage: Hashable, Sendable {
    /// The per-minute limit in force (for a key: the tighter of its own and its creator's grant);
    /// nil when there is none.
    public var limit: Int64?
    /// Units in the bucket now (drained to the reading's instant), rounded up; 0 without a limit,
    /// since no bucket is kept then.
    public var used: Int64
    /// Units still admissible now, as CHECK computes it; nil without a limit.
    public var remaining: Int64?
    /// Milliseconds until the bucket has drained completely, as CHECK computes it.
    public var resetMs: Int64

    /// A level.
    public init(limit: Int64?, used: Int64, remaining: Int64?, resetMs: Int64) {
        self.limit = limit
        self.used = used
        self.remaining = remaining
        self.resetMs = resetMs
    }
}

/// Spend in the current calendar window.
public struct SpendUsage: Hashable, Sendable {
    /// The window's period (a key's own; monthly for projects and the organization).
    public var period: BudgetPeriod
    /// Spend in the window, nano-USD, open reservations counted at their estimate.
    public var spent: Int64
    /// The window, Unix ms (start 0 and no end for a lifetime window).
    public var window: SpendWindow
    /// The budget for the window, nano-USD (a key's: the tighter of its own and its grant's);
    /// nil when there is none.
    public var budget: Int64?

    /// Spend.
    public init(period: BudgetPeriod, spent: Int64, window: SpendWindow, budget: Int64?) {
        self.period = period
        self.spent = spent
        self.window = window
        self.budget = budget
    }

    /// Budget minus spend, as CHECK reports it (may be negative); nil without a budget.
    public var remaining: Int64? { budget.map { $0 - spent } }
}

/// Reservations made by CHECK and neither settled, released nor expired yet.
public struct ReservedUsage: Hashable, Sendable {
    /// How many.
    public var count: Int64
    /// The sum of their cost estimates, nano-USD.
    public var cost: Int64
    /// The sum of their reserved tokens.
    public var tokens: Int64

    /// Reserved amounts.
    public init(count: Int64 = 0, cost: Int64 = 0, tokens: Int64 = 0) {
        self.count = count
        self.cost = cost
        self.tokens = tokens
    }
}

/// Where one key stands now.
public struct KeyUsage: Hashable, Sendable {
    /// The key.
    public var keyID: UInt64
    /// Its project.
    public var projectID: UInt64
    /// The instant of the reading on the limiter's clock, Unix ms.
    public var atMs: Int64
    /// The key's RPM level.
    public var requests: RateUsage
    /// The key's TPM level.
    public var tokens: RateUsage
    /// What a CHECK_RESULT reports for requests: the tighter of the key's and the project's level.
    public var effectiveRequests: RateUsage
    /// What a CHECK_RESULT reports for tokens: the tighter of the key's and the project's level.
    public var effectiveTokens: RateUsage
    /// Spend in the key's window.
    public var spend: SpendUsage
    /// The key's open reservations.
    public var reserved: ReservedUsage
}

/// Where one project stands now.
public struct ProjectUsage: Hashable, Sendable {
    /// The project.
    public var projectID: UInt64
    /// The instant of the reading on the limiter's clock, Unix ms.
    public var atMs: Int64
    /// The project's RPM level (shared by all its keys).
    public var requests: RateUsage
    /// The project's TPM level.
    public var tokens: RateUsage
    /// Spend this calendar month, against the monthly budget.
    public var spend: SpendUsage
    /// Open reservations of the project's keys.
    public var reserved: ReservedUsage
}

/// Where one organization stands now.
public struct OrgUsage: Hashable, Sendable {
    /// The organization.
    public var orgID: UInt64
    /// The instant of the reading on the limiter's clock, Unix ms.
    public var atMs: Int64
    /// Whether CHECKs draw on the credit balance.
    public var metered: Bool
    /// The credit balance, nano-USD (open reservations already deducted); what CHECK reports when
    /// metered.
    public var credits: Int64
    /// Requests in the projects' minute buckets, summed (projects without an RPM limit keep none).
    public var requestsUsed: Int64
    /// Tokens in the projects' minute buckets, summed (projects without a TPM limit keep none).
    public var tokensUsed: Int64
    /// Spend this calendar month over all projects (no budget at this level).
    public var spend: SpendUsage
    /// All open reservations of the organization.
    public var reserved: ReservedUsage
}

/// The busiest keys and projects of the last minute.
public struct TopUsage: Hashable, Sendable {
    /// A key's minute.
    public struct Key: Hashable, Sendable {
        /// The key.
        public var keyID: UInt64
        /// Its project.
        public var projectID: UInt64
        /// The key's name.
        public var name: String
        /// The project's name.
        public var projectName: String
        /// Requests in its RPM bucket.
        public var requests: Int64
        /// Tokens in its TPM bucket.
        public var tokens: Int64
    }

    /// A project's minute.
    public struct Project: Hashable, Sendable {
        /// The project.
        public var projectID: UInt64
        /// Its name.
        public var name: String
        /// Requests in its RPM bucket.
        public var requests: Int64
        /// Tokens in its TPM bucket.
        public var tokens: Int64
    }

    /// The instant of the reading on the limiter's clock, Unix ms.
    public var atMs: Int64
    /// Keys, busiest first.
    public var keys: [Key]
    /// Projects, busiest first.
    public var projects: [Project]
}

/// Reads live usage from Redis at the moment of the call: the minute buckets drained to now,
/// spend windows, open reservations, credits. Never from a cache. The counters of one subject are
/// read in one script call with the limiter's own clock and formulas (`LimiterLua.prelude`), so
/// they agree with what a CHECK at that instant reports.
///
/// Open reservations are found with `SCAN MATCH <org>r:*` and read with pipelined `GET`s: an
/// operator's read that walks the organization's reservation records, never the hot path.
public struct UsageReader: Sendable {
    /// The Redis client.
    public let redis: RedisClient
    let keyScript: RedisScript
    let projectScript: RedisScript
    let orgScript: RedisScript
    let topScript: RedisScript
    let clock: ScriptClock

    /// Now on the limiter's clock for `org`, Unix ms: Redis's `TIME`, or under the test clock
    /// the organization's frozen time when it is set.
    public func nowMs(org: UInt64) async throws -> Int64 {
        if clock == .testFrozen, let us = try await redis.send(RedisCommand("GET", Keyspace.testClock(org))).int { return us / 1000 }
        return try await redis.timeMs()
    }

    /// A reader on Redis's clock. Registers its scripts with the client.
    public init(redis: RedisClient) {
        self.init(redis: redis, clock: .redis)
    }

    /// A reader on a chosen clock (the limiter's in tests). Tests only.
    @_spi(Testing)
    public init(redis: RedisClient, clock: ScriptClock) {
        self.redis = redis
        self.clock = clock
        keyScript = RedisScript(source: UsageLua.key(clock))
        projectScript = RedisScript(source: UsageLua.project(clock))
        orgScript = RedisScript(source: UsageLua.org(clock))
        topScript = RedisScript(source: UsageLua.top(clock))
        redis.register([keyScript, projectScript, orgScript, topScript])
    }

    /// A key's usage, or nil when the key does not exist.
    public func key(org: UInt64, _ id: UInt64) async throws -> KeyUsage? {
        let reply = try await run(keyScript, org, [String(id)])
        guard !reply.isNull else { return nil }
        var r = try Reply(reply)
        let atMs = try r.instantMs()
        let project = UInt64(try r.int())
        let period = try r.period()
        let requests = try r.rate(), tokens = try r.rate()
        let effectiveRequests = try r.rate(), effectiveTokens = try r.rate()
        let spend = try r.spend(period)
        let reserved = try await reservedUsage(org, atMs: atMs) { kid, _ in kid == id }
        return KeyUsage(
            keyID: id, projectID: project, atMs: atMs, requests: requests, tokens: tokens,
            effectiveRequests: effectiveRequests, effectiveTokens: effectiveTokens, spend: spend, reserved: reserved)
    }

    /// A project's usage, or nil when the project does not exist.
    public func project(org: UInt64, _ id: UInt64) async throws -> ProjectUsage? {
        let reply = try await run(projectScript, org, [String(id)])
        guard !reply.isNull else { return nil }
        var r = try Reply(reply)
        let atMs = try r.instantMs()
        let requests = try r.rate(), tokens = try r.rate()
        let spend = try r.spend(.monthly)
        let reserved = try await reservedUsage(org, atMs: atMs) { _, pid in pid == id }
        return ProjectUsage(projectID: id, atMs: atMs, requests: requests, tokens: tokens, spend: spend, reserved: reserved)
    }

    /// An organization's usage (all zero for one that does not exist: callers check existence).
    public func org(_ org: UInt64) async throws -> OrgUsage {
        var r = try Reply(try await run(orgScript, org, []))
        let atMs = try r.instantMs()
        let metered = try r.int() == 1
        let credits = try r.int(), requestsUsed = try r.int(), tokensUsed = try r.int()
        let spend = SpendUsage(period: .monthly, spent: try r.int(), window: SpendWindow(startMs: try r.int(), endMs: try r.int()), budget: nil)
        let reserved = try await reservedUsage(org, atMs: atMs) { _, _ in true }
        return OrgUsage(
            orgID: org, atMs: atMs, metered: metered, credits: credits, requestsUsed: requestsUsed, tokensUsed: tokensUsed,
            spend: spend, reserved: reserved)
    }

    /// The `limit` busiest keys and projects of the last minute: by requests in their RPM bucket,
    /// then tokens in their TPM bucket (only limits keep buckets, so unlimited ones do not show).
    public func top(org: UInt64, limit: Int) async throws -> TopUsage {
        let prefix = Keyspace.org(org)
        var keyIDs: Set<UInt64> = [], projectIDs: Set<UInt64> = []
        try await scan(match: prefix + "b:*") { names in
            for name in names {
                // <prefix>b:<scope>:<id> (`Keyspace.buckets`)
                let parts = name.dropFirst(prefix.count + 2).split(separator: ":")
                guard parts.count == 2, let id = UInt64(parts[1]) else { continue }
                if parts[0] == "k" { keyIDs.insert(id) } else if parts[0] == "p" { projectIDs.insert(id) }
            }
        }
        let keys = keyIDs.sorted(), projects = projectIDs.sorted()
        var r = try Reply(try await run(topScript, org, [String(keys.count)] + keys.map(String.init) + projects.map(String.init)))
        let atMs = try r.instantMs()
        var topKeys: [TopUsage.Key] = []
        for _ in 0..<(try r.int()) {
            let key = TopUsage.Key(
                keyID: UInt64(try r.int()), projectID: UInt64(try r.int()), name: try r.string(), projectName: try r.string(),
                requests: try r.int(), tokens: try r.int())
            if key.requests > 0 || key.tokens > 0 { topKeys.append(key) }
        }
        var topProjects: [TopUsage.Project] = []
        while !r.atEnd {
            let project = TopUsage.Project(projectID: UInt64(try r.int()), name: try r.string(), requests: try r.int(), tokens: try r.int())
            if project.requests > 0 || project.tokens > 0 { topProjects.append(project) }
        }
        topKeys.sort { ($0.requests, $0.tokens, $1.keyID) > ($1.requests, $1.tokens, $0.keyID) }
        topProjects.sort { ($0.requests, $0.tokens, $1.projectID) > ($1.requests, $1.tokens, $0.projectID) }
        return TopUsage(atMs: atMs, keys: Array(topKeys.prefix(limit)), projects: Array(topProjects.prefix(limit)))
    }

    // MARK: Internals

    private func run(_ script: RedisScript, _ org: UInt64, _ args: [String]) async throws -> RedisValue {
        // The org hash names the slot (every key a usage script reads shares the org's hash tag).
        let reply = try await redis.send(script.call(keys: [Keyspace.orgHash(org)], args: [Keyspace.org(org)] + args))
        if case .error(let e) = reply { throw RedisError(.server, e) }
        return reply
    }

    /// The open reservations (status open, expiry after `atMs`) of an organization that `include`
    /// accepts, given their key and project.
    private func reservedUsage(_ org: UInt64, atMs: Int64, include: (UInt64, UInt64) -> Bool) async throws -> ReservedUsage {
        var total = ReservedUsage()
        try await scan(match: Keyspace.org(org) + "r:*") { names in
            let replies = try await redis.send(names.map { RedisCommand("GET", $0) })
            for reply in replies {
                guard let r = ReservationRecord(reply: reply), r.status == "open", let exp = r.expiresAtMs, exp > atMs,
                      let kid = r.keyID, let pid = r.projectID, include(kid, pid)
                else { continue }
                total.count += 1
                total.tokens += r.tokens
                total.cost += r.cost
            }
        }
        return total
    }

    /// Walks `SCAN … MATCH pattern`, handing each non-empty batch of names to `body`.
    private func scan(match pattern: String, _ body: ([String]) async throws -> Void) async throws {
        var cursor = "0"
        repeat {
            let reply = try await redis.send(RedisCommand("SCAN", cursor, "MATCH", pattern, "COUNT", "1000"))
            guard let a = reply.array, a.count == 2, let next = a[0].string, let names = a[1].array else {
                throw RedisError(.unexpectedReply, "SCAN answered \(reply)")
            }
            let batch = names.compactMap(\.string)
            if !batch.isEmpty { try await body(batch) }
            cursor = next
        } while cursor != "0"
    }
}

/// Reads a usage script's flat reply in order.
private struct Reply {
    let values: [RedisValue]
    var index = 0

    init(_ reply: RedisValue) throws {
        guard let a = reply.array else { throw RedisError(.unexpectedReply, "usage script reply is not an array") }
        values = a
    }

    var atEnd: Bool { index >= values.count }

    private mutating func next() throws -> RedisValue {
        guard index < values.count else { throw RedisError(.unexpectedReply, "usage script reply is too short") }
        defer { index += 1 }
        return values[index]
    }

    mutating func int() throws -> Int64 {
        guard let v = try next().int else { throw RedisError(.unexpectedReply, "usage script reply: item \(index) is not an integer") }
        return v
    }

    mutating func optionalInt() throws -> Int64? {
        let v = try next()
        return v.isNull ? nil : v.int
    }

    mutating func string() throws -> String { try next().string ?? "" }

    /// The script's `now_us`, as Unix ms (the scripts' `now_ms`).
    mutating func instantMs() throws -> Int64 {
        try int() / 1000
    }

    mutating func period() throws -> BudgetPeriod {
        let raw = try string()
        guard let p = BudgetPeriod(rawValue: raw) else { throw RedisError(.unexpectedReply, "usage script reply: period '\(raw)'") }
        return p
    }

    /// {limit|nil, used, remaining|nil, reset_ms}.
    mutating func rate() throws -> RateUsage {
        RateUsage(limit: try optionalInt(), used: try int(), remaining: try optionalInt(), resetMs: try int())
    }

    /// {spent, window start, window end (0 = never), budget|nil}.
    mutating func spend(_ period: BudgetPeriod) throws -> SpendUsage {
        let spent = try int(), start = try int(), end = try int()
        return SpendUsage(period: period, spent: spent, window: SpendWindow(startMs: start, endMs: end == 0 ? nil : end), budget: try optionalInt())
    }
}
