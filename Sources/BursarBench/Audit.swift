public import BursarRedis
import BursarStore

/// The audit's verdict: every number except the counts of keys audited must be 0.
public struct AuditReport: Sendable, Codable {
    /// Keys with at least one admission (the others have no spend counter the harness can find).
    public var keysAudited: Int
    /// nano-USD a key was charged beyond its budget, summed over keys (actuals never exceed
    /// estimates, so any excess is over-admission).
    public var overAdmission: Int64
    /// nano-USD the harness saw admitted that Redis does not hold, summed over keys.
    public var lostDebits: Int64
    /// nano-USD Redis holds beyond what the harness saw admitted, summed over keys.
    public var doubleDebits: Int64
    /// Keys whose counter differs from the harness's ledger.
    public var keysMismatched: Int
    /// nano-USD of org credits missing beyond the ledger (credits debited twice) or, if negative,
    /// credits not debited.
    public var creditsMismatch: Int64
    /// Requests whose effect the harness could not observe (no answer): non-zero makes the audit
    /// inconclusive rather than clean.
    public var unresolved: Int
    /// Key id → the Redis spend counter audited (for inspection and for tests).
    public var spendCounters: [String: String]

    enum CodingKeys: String, CodingKey {
        case keysAudited = "keys_audited", overAdmission = "over_admission", lostDebits = "lost_debits"
        case doubleDebits = "double_debits", keysMismatched = "keys_mismatched", creditsMismatch = "credits_mismatch"
        case unresolved, spendCounters = "spend_counters"
    }

    /// True when everything that must be 0 is 0.
    public var passed: Bool {
        overAdmission == 0 && lostDebits == 0 && doubleDebits == 0 && creditsMismatch == 0 && unresolved == 0
    }

    /// `passed`, `FAILED`, or `inconclusive` (only unanswered requests stand in the way).
    public var verdict: String {
        if overAdmission != 0 || lostDebits != 0 || doubleDebits != 0 || creditsMismatch != 0 { return "FAILED" }
        return unresolved == 0 ? "passed" : "inconclusive"
    }
}

/// Compares Redis with what the harness saw.
public enum BenchAudit {
    /// Reads every admitted key's spend counter (named by one of its reservations) and the org's
    /// credits, and compares them with `ledger`. Call after the run has drained.
    public static func run(world: BenchWorld, ledger: Ledger, redis: RedisClient) async throws -> AuditReport {
        var report = AuditReport(
            keysAudited: 0, overAdmission: 0, lostDebits: 0, doubleDebits: 0, keysMismatched: 0, creditsMismatch: 0,
            unresolved: ledger.unresolved, spendCounters: [:])
        for (index, entry) in ledger.keys.sorted(by: { $0.key < $1.key }) {
            guard let sample = entry.sample else { continue }
            let key = world.keys[index]
            let hash = Keyspace.reservation(sample.orgID, sample.sequence)
            guard let counter = try await redis.send(RedisCommand("HGET", hash, "kw")).string else {
                throw AuditError(message: "reservation \(hash) of key \(key.id) is gone; its spend counter cannot be found")
            }
            let spent = try await redis.send(RedisCommand("GET", counter)).int ?? 0
            report.keysAudited += 1
            report.spendCounters[String(key.id)] = counter
            if spent != entry.expectedSpend { report.keysMismatched += 1 }
            report.lostDebits += max(0, entry.expectedSpend - spent)
            report.doubleDebits += max(0, spent - entry.expectedSpend)
            report.overAdmission += max(0, max(spent, entry.expectedSpend) - key.budget)
        }
        let credits = try await redis.send(RedisCommand("GET", Keyspace.credits(world.orgID))).int ?? 0
        report.creditsMismatch = (world.initialCredits - credits) - ledger.totalExpectedSpend
        return report
    }
}

/// The audit could not read what it needs.
public struct AuditError: Error, Sendable, CustomStringConvertible {
    /// What is missing.
    public var message: String
    /// The message.
    public var description: String { message }
}
