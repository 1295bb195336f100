public import BursarWire

/// What the harness saw happen to one key: the spend it expects Redis to hold.
public struct KeyLedger: Sendable {
    /// Admitted CHECKs.
    public var admissions = 0
    /// Sum of admitted estimates, nano-USD.
    public var admittedEstimates: Int64 = 0
    /// Admitted estimates, plus settle deltas (actual − estimate), minus released estimates.
    public var expectedSpend: Int64 = 0
    /// One reservation of this key, used to find its spend counter in Redis.
    public var sample: ReservationID?

    /// An empty ledger.
    public init() {}
}

/// The harness's view of every key, merged from all workers.
public struct Ledger: Sendable {
    /// Per key index (see `Workload.keyIndex`).
    public var keys: [Int: KeyLedger] = [:]
    /// Requests whose effect is unknown (a CHECK, SETTLE or RELEASE that got no answer): the
    /// audit cannot be exact while this is non-zero.
    public var unresolved = 0

    /// An empty ledger.
    public init() {}

    mutating func admit(_ key: Int, estimate: Int64, reservation: ReservationID) {
        keys[key, default: KeyLedger()].admissions += 1
        keys[key, default: KeyLedger()].admittedEstimates += estimate
        keys[key, default: KeyLedger()].expectedSpend += estimate
        if keys[key]!.sample == nil { keys[key]!.sample = reservation }
    }

    mutating func adjust(_ key: Int, by delta: Int64) {
        keys[key, default: KeyLedger()].expectedSpend += delta
    }

    /// Adds another worker's ledger.
    public mutating func merge(_ other: Ledger) {
        unresolved += other.unresolved
        for (k, o) in other.keys {
            var mine = keys[k] ?? KeyLedger()
            mine.admissions += o.admissions
            mine.admittedEstimates += o.admittedEstimates
            mine.expectedSpend += o.expectedSpend
            if mine.sample == nil { mine.sample = o.sample }
            keys[k] = mine
        }
    }

    /// Expected spend over all keys, nano-USD (what the org's credits should have lost).
    public var totalExpectedSpend: Int64 { keys.values.reduce(0) { $0 + $1.expectedSpend } }
}
