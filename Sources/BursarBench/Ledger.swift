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

    /// An empty ledger.
    public init() {}

    mutating func add(_ other: KeyLedger) {
        admissions += other.admissions
        admittedEstimates += other.admittedEstimates
        expectedSpend += other.expectedSpend
        netTokens += other.netTokens
        if sample == nil { sample = other.sample }
    }
}

/// The harness's view of every key, merged from all lanes.
public struct Ledger: Sendable {
    /// Per key index (see `Workload.keyIndex`).
    public var keys: [Int: KeyLedger] = [:]
    /// Requests whose effect is unknown (a CHECK, SETTLE or RELEASE that got no answer): the
    /// audit cannot be exact while this is non-zero.
    public var unresolved = 0
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
        keys[key, default: KeyLedger()].expectedSpend += cost
        keys[key, default: KeyLedger()].netTokens += tokens
    }

    /// Adds another lane's ledger.
    public mutating func merge(_ other: Ledger) {
        unresolved += other.unresolved
        spanNs = max(spanNs, other.spanNs)
        for (k, o) in other.keys { keys[k, default: KeyLedger()].add(o) }
    }

    /// Expected spend over all keys, nano-USD (what the org's credits should have lost).
    public var totalExpectedSpend: Int64 { keys.values.reduce(0) { $0 + $1.expectedSpend } }
}
