public import BursarRedis
import BursarStore
import NIOCore

/// The audit's verdict: every number except the counts audited must be 0.
public struct AuditReport: Sendable, Codable {
    /// Keys with at least one admission (the others have no spend counter the harness can find).
    public var keysAudited: Int
    /// Projects with at least one admission.
    public var projectsAudited: Int
    /// nano-USD charged beyond a key's or a project's budget, summed (actual costs never exceed
    /// estimates, so any excess is over-admission).
    public var overAdmittedSpend: Int64
    /// Requests admitted beyond what a key's or a project's RPM allows over the run (the bucket
    /// contract: at most R + R·t/60 over t seconds, with t the harness's span of the run, which
    /// is longer than Redis's), summed.
    public var overAdmittedRequests: Int64
    /// Tokens charged beyond what a key's or a project's TPM allows over the run, summed.
    public var overAdmittedTokens: Int64
    /// nano-USD the harness saw admitted that Redis's key and project spend counters do not hold.
    public var lostDebits: Int64
    /// nano-USD Redis's key and project spend counters hold beyond what the harness saw admitted.
    public var doubleDebits: Int64
    /// Key and project spend counters that differ from the harness's ledger.
    public var countersMismatched: Int
    /// nano-USD of org credits missing beyond the ledger (credits debited twice) or, if negative,
    /// credits not debited (beyond what unknown outcomes allow, as for the spend counters).
    public var creditsMismatch: Int64
    /// Requests whose effect the harness could not observe (no answer): non-zero makes the audit
    /// inconclusive rather than clean.
    public var unresolved: Int
    /// Of `unresolved`, requests of unknown key (abandoned in flight): the counters cannot be
    /// bounded, so the verdict is at best `inconclusive`.
    public var unattributed: Int
    /// Admissions still in the org's undelivered set (`Keyspace.undelivered`) when the audit
    /// stopped waiting for bursard to resolve them: answers it could not deliver that it has not
    /// yet voided (or confirmed). Their estimates may still sit in the counters, so while any
    /// remain the verdict is at best `inconclusive`, and excess spend is not called a double debit
    /// failure.
    public var unresolvedAdmissions: Int = 0
    /// How long the audit waited for that set to empty, ms.
    public var resolveWaitedMs: Int64 = 0
    /// Spend counters (keys' and projects') compared with the usage history of their window
    /// (SPEC §13.13), and of them those that differ: both are written by the same atomic steps,
    /// so any difference is a failure, whatever the unknown outcomes.
    public var historyAudited: Int = 0
    public var historyMismatched: Int = 0
    /// The differences summed, nano-USD (history − counter, absolute values).
    public var historyDifference: Int64 = 0
    /// The span the rate bounds were computed over, ms.
    public var spanMs: Int64
    /// Key id → the Redis spend counter audited (for inspection and for tests; not printed).
    public var spendCounters: [String: String] = [:]

    enum CodingKeys: String, CodingKey {
        case keysAudited = "keys_audited", projectsAudited = "projects_audited", overAdmittedSpend = "over_admitted_spend"
        case overAdmittedRequests = "over_admitted_requests", overAdmittedTokens = "over_admitted_tokens"
        case lostDebits = "lost_debits", doubleDebits = "double_debits", countersMismatched = "counters_mismatched"
        case creditsMismatch = "credits_mismatch", unresolved, unattributed, spanMs = "span_ms"
        case unresolvedAdmissions = "unresolved_admissions", resolveWaitedMs = "resolve_waited_ms"
        case historyAudited = "history_audited", historyMismatched = "history_mismatched", historyDifference = "history_difference"
    }

    /// True when everything that must be 0 is 0.
    public var passed: Bool { verdict == "passed" }

    /// `passed`, `FAILED`, or `inconclusive` (unknown outcomes stand in the way: with no key to
    /// bound them always, else only when nothing falls outside their ranges). Admissions bursard
    /// has not resolved can explain spend above the ledger (double debits, credits debited beyond
    /// it), never spend below it or over-admission.
    public var verdict: String {
        if unattributed > 0 { return "inconclusive" }
        if overAdmittedSpend != 0 || overAdmittedRequests != 0 || overAdmittedTokens != 0 || lostDebits != 0 || creditsMismatch < 0
            || historyMismatched != 0
        {
            return "FAILED"
        }
        if doubleDebits != 0 || creditsMismatch > 0 { return unresolvedAdmissions > 0 ? "inconclusive" : "FAILED" }
        return unresolved == 0 && unresolvedAdmissions == 0 ? "passed" : "inconclusive"
    }

    /// One line for the human summary.
    public var summary: String {
        "audit: \(verdict)  (keys \(keysAudited), projects \(projectsAudited); over-admitted spend \(overAdmittedSpend), "
            + "requests \(overAdmittedRequests), tokens \(overAdmittedTokens); lost \(lostDebits), double \(doubleDebits), "
            + "counters mismatched \(countersMismatched), credits mismatch \(creditsMismatch), unresolved \(unresolved), "
            + "unresolved admissions \(unresolvedAdmissions) after waiting \(resolveWaitedMs) ms; "
            + "history: \(historyAudited) windows, \(historyMismatched) mismatched, difference \(historyDifference))"
    }
}

/// Compares Redis with what the harness saw.
public enum BenchAudit {
    /// Default of `resolveWait`.
    public static let defaultResolveWait: Duration = .seconds(30)

    /// Waits (up to `resolveWait`) until bursard has resolved every admission it could not
    /// deliver (the org's undelivered set is empty), then reads every admitted key's and project's
    /// spend counter (named by one of their reservations) and the org's credits, compares them
    /// with `ledger`, and checks every RPM and TPM limit against the bucket contract over the
    /// run's span. Call after the run has drained.
    public static func run(
        world: BenchWorld, ledger: Ledger, redis: RedisClient, resolveWait: Duration = defaultResolveWait
    ) async throws -> AuditReport {
        let spanMs = (ledger.spanNs + 999_999) / 1_000_000
        var report = AuditReport(
            keysAudited: 0, projectsAudited: 0, overAdmittedSpend: 0, overAdmittedRequests: 0, overAdmittedTokens: 0,
            lostDebits: 0, doubleDebits: 0, countersMismatched: 0, creditsMismatch: 0, unresolved: ledger.unresolved,
            unattributed: ledger.unattributed, spanMs: spanMs)
        let waited = try await waitForResolution(org: world.orgID, redis: redis, within: resolveWait)
        report.unresolvedAdmissions = waited.left
        report.resolveWaitedMs = waited.ms

        /// Compares one spend counter and the rate totals of one key or project with their
        /// limits. Unknown outcomes give a range of spend Redis may rightly hold; only what lies
        /// outside it is counted, and over-admission is counted only where it is certain.
        // The usage history of every day the run can have touched (the org is the run's own).
        let today = HistoryDay.of(ms: try await redis.timeMs())
        let history = try await HistoryReader(redis: redis).entries(org: world.orgID, from: today - 62, to: today + 1)
        /// The history's spend, in the window a counter (`…:<window start ms>` or `…:life`) holds,
        /// of one key or of one project.
        func historySpend(counter: String, key: UInt64? = nil, project: UInt64? = nil) -> Int64 {
            let suffix = counter.split(separator: ":").last.map(String.init) ?? ""
            let first = Int64(suffix).map { HistoryDay.of(ms: $0) } ?? Int64.min
            return history.filter { $0.day >= first && (key == nil || $0.keyID == key) && (project == nil || $0.projectID == project) }
                .reduce(0) { $0 + $1.counts.spend }
        }
        func audit(
            counter: String, expected e: KeyLedger, budget: Int64?, rpm: Int64?, tpm: Int64?, key: UInt64? = nil, project: UInt64? = nil
        ) async throws {
            let spent = try await redis.send(RedisCommand("GET", counter)).int ?? 0
            let recorded = historySpend(counter: counter, key: key, project: project)
            report.historyAudited += 1
            if recorded != spent {
                report.historyMismatched += 1
                report.historyDifference += abs(recorded - spent)
            }
            let low = e.expectedSpend - e.spendDown
            let high = e.expectedSpend + e.spendUp
            if spent < low || spent > high { report.countersMismatched += 1 }
            report.lostDebits += max(0, low - spent)
            report.doubleDebits += max(0, spent - high)
            if let budget { report.overAdmittedSpend += max(0, max(spent, low) - budget) }
            if let rpm { report.overAdmittedRequests += max(0, e.admissions - rateBound(rpm, spanMs: spanMs)) }
            if let tpm { report.overAdmittedTokens += max(0, e.netTokens - e.tokensDown - rateBound(tpm, spanMs: spanMs)) }
        }

        // A project's counter holds what every key of it moved, including keys whose only
        // requests had unknown outcomes (they have no reservation to name a counter, but may
        // have debited the project's); its name comes from any key's reservation.
        var projects: [Int: (ledger: KeyLedger, counter: String?)] = [:]
        let seal = try await ReservationSeal.stored(in: redis)
        for (index, entry) in ledger.keys.sorted(by: { $0.key < $1.key }) {
            let key = world.keys[index]
            var project = projects[key.project] ?? (KeyLedger(), nil)
            project.ledger.add(entry)
            defer { projects[key.project] = project }
            guard let sample = entry.sample else { continue }
            // A reservation made through bursard is a sealed id (SPEC §5), opened with the
            // installation's key as bursard opens it; the direct floor's are names already.
            var name = sample
            if let seal, let opened = seal.open(sample), opened.orgID == world.orgID { name = opened }
            let hash = Keyspace.reservation(name.orgID, name.sequence)
            let record = ReservationRecord(reply: try await redis.send(RedisCommand("GET", hash)))
            guard let keyCounter = record?.keyWindow, let projectCounter = record?.projectWindow else {
                throw AuditError(message: "reservation \(hash) of key \(key.id) is gone; its spend counters cannot be found")
            }
            report.keysAudited += 1
            report.spendCounters[String(key.id)] = keyCounter
            try await audit(counter: keyCounter, expected: entry, budget: key.limits.budget, rpm: key.limits.rpm, tpm: key.limits.tpm, key: key.id)
            project.counter = project.counter ?? projectCounter
        }
        for (index, project) in projects.sorted(by: { $0.key < $1.key }) {
            guard let counter = project.counter else { continue }
            let p = world.projects[index]
            report.projectsAudited += 1
            try await audit(counter: counter, expected: project.ledger, budget: p.monthlyBudget, rpm: p.rpm, tpm: p.tpm, project: p.id)
        }
        let credits = try await redis.send(RedisCommand("GET", Keyspace.credits(world.orgID))).int ?? 0
        let debited = world.initialCredits - credits
        let total = ledger.totalSpend
        report.creditsMismatch = max(0, debited - (total.expected + total.up)) - max(0, (total.expected - total.down) - debited)
        return report
    }

    /// Polls the org's undelivered set until it is empty or `limit` has passed; what is left, and
    /// how long it waited.
    static func waitForResolution(org: UInt64, redis: RedisClient, within limit: Duration) async throws -> (left: Int, ms: Int64) {
        let started = ContinuousClock.now
        let key = Keyspace.undelivered(org)
        var left = try await redis.send(RedisCommand("SCARD", key)).int ?? 0
        while left > 0, ContinuousClock.now - started < limit {
            try await Task.sleep(for: .milliseconds(50))
            left = try await redis.send(RedisCommand("SCARD", key)).int ?? 0
        }
        let waited = ContinuousClock.now - started
        return (Int(left), TimeAmount(waited).nanoseconds / 1_000_000)
    }

    /// The most units a per-minute bucket of limit `limit` may admit over `spanMs`: R + R·t/60.
    public static func rateBound(_ limit: Int64, spanMs: Int64) -> Int64 {
        limit + limit * spanMs / 60_000
    }
}

/// The audit could not read what it needs.
public struct AuditError: Error, Sendable, CustomStringConvertible {
    /// What is missing.
    public var message: String
    /// The message.
    public var description: String { message }
}
