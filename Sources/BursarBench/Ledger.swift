public import BursarWire

/// What the harness saw happen to one key.
public struct KeyLedger: Sendable {
    /// Admitted CHECKs (what the RPM buckets counted; RELEASE does not give them back).
    public var admissions: Int64 = 0
    /// Sum of admitted estimates, nano-USD.
    public var admittedEstimates: Int64 = 0
    /// Admitted estimates, plus settle deltas (actual − estimate), minus released estimates:
    /// the spend Redis must hold.
    public var expectedSpend: Int64 = 0
    /// Reserved tokens of admissions, plus settle deltas, minus released tokens: the net units
    /// the TPM buckets were charged.
    public var netTokens: Int64 = 0
    /// One reservation of this key, used to find its spend counters in Redis.
    public var sample: ReservationID?
    /// Unknown outcomes widen what Redis may hold: a CHECK the harness abandoned unanswered (a
    /// hung target) or that failed oddly may have admitted (spend, tokens and requests up to
    /// these more), a SETTLE or RELEASE without a definitive answer may have applied (spend and
    /// tokens down to these less). A CHECK whose connection broke is not among them: bursard
    /// voids such an attempt, so it moved nothing.
    public var spendUp: Int64 = 0
    /// See `spendUp`.
    public var spendDown: Int64 = 0
    /// See `spendUp`.
    public var tokensDown: Int64 = 0

    /// An empty ledger.
    public init() {}

    mutating func adjust(cost: Int64, tokens: Int64) {
        expectedSpend += cost
        netTokens += tokens
    }

    mutating func widen(cost: Int64, tokens: Int64) {
        spendDown -= cost
        tokensDown -= tokens
    }

    mutating func add(_ other: KeyLedger) {
        admissions += other.admissions
        admittedEstimates += other.admittedEstimates
        expectedSpend += other.expectedSpend
        netTokens += other.netTokens
        spendUp += other.spendUp
        spendDown += other.spendDown
        tokensDown += other.tokensDown
        if sample == nil { sample = other.sample }
    }
}

/// The harness's view of every key, merged from all lanes.
public struct Ledger: Sendable {
    /// Per key index (see `Workload.keyIndex`).
    public var keys: [Int: KeyLedger] = [:]
    /// Requests whose effect is unknown (a CHECK abandoned unanswered at the end or failed with
    /// an unexpected answer, a SETTLE or RELEASE left without a definitive answer when its retries
    /// ran out of time). Those of known key widen that key's range; the audit stays exact outside
    /// the ranges, but cannot call the run `passed`.
    public var unresolved = 0
    /// Of `unresolved`, requests whose key is not known (still in flight when the run was
    /// abandoned): their keys' counters cannot be bounded.
    public var unattributed = 0
    /// Nanoseconds from before the first request was sent to after the last answer arrived: an
    /// upper bound on the time Redis's buckets had to drain.
    public var spanNs: Int64 = 0

    /// An empty ledger.
    public init() {}

    mutating func admit(_ key: Int, estimate: Int64, tokens: Int64, reservation: ReservationID) {
        var entry = keys[key] ?? KeyLedger()
        entry.admissions += 1
        entry.admittedEstimates += estimate
        entry.expectedSpend += estimate
        entry.netTokens += tokens
        if entry.sample == nil { entry.sample = reservation }
        keys[key] = entry
    }

    mutating func adjust(_ key: Int, cost: Int64, tokens: Int64) {
        keys[key, default: KeyLedger()].adjust(cost: cost, tokens: tokens)
    }

    /// A CHECK of `key` whose outcome is unknown: it may have admitted.
    mutating func uncertainCheck(_ key: Int, estimate: Int64) {
        unresolved += 1
        keys[key, default: KeyLedger()].spendUp += estimate
    }

    /// A SETTLE or RELEASE of `key` whose outcome is unknown: it may have moved the counters by
    /// `cost` and `tokens` (both ≤ 0, actuals never exceeding estimates).
    mutating func uncertainFollowUp(_ key: Int, cost: Int64, tokens: Int64) {
        unresolved += 1
        keys[key, default: KeyLedger()].widen(cost: cost, tokens: tokens)
    }

    /// Adds another lane's ledger.
    public mutating func merge(_ other: Ledger) {
        unresolved += other.unresolved
        unattributed += other.unattributed
        spanNs = max(spanNs, other.spanNs)
        for (k, o) in other.keys { keys[k, default: KeyLedger()].add(o) }
    }

    /// Expected spend over all keys, nano-USD (what the org's credits should have lost), and how
    /// far unknown outcomes may move it down and up.
    public var totalSpend: (expected: Int64, down: Int64, up: Int64) {
        keys.values.reduce((0, 0, 0)) { ($0.0 + $1.expectedSpend, $0.1 + $1.spendDown, $0.2 + $1.spendUp) }
    }
}
