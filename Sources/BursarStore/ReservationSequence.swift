/// The `sequence` half of a reservation id, as bursard chooses it (SPEC §5): every CHECK attempt
/// gets its id before it is sent, so an attempt whose outcome bursard did not learn can be looked
/// up, and voided, afterwards.
///
/// ```
/// bit 63       0
/// bit 62       1 = admitted locally, under the store failure policy (SPEC §13.9)
/// bit 61       1 (an id chosen by bursard; earlier releases used smaller values, see below)
/// bits 38…60   the epoch of the bursard that chose it (1…2^23−1), taken from one Redis counter
///              at start: unique across instances and restarts
/// bits 0…37    a counter within the epoch (1…2^38−1); a bursard that uses them up takes a new epoch
/// ```
///
/// Earlier releases took sequences from a per-organization Redis counter (below 2^52) and gave
/// local admissions sequences in 2^52…2^53−1; neither range meets this layout, and a local
/// admission of an earlier release is still recognized.
public enum ReservationSequence {
    /// Bits of the counter.
    public static let counterBits: UInt64 = 38
    /// The largest counter value.
    public static let maxCounter: UInt64 = (1 << counterBits) - 1
    /// The largest epoch (epochs wrap to 1 after it).
    public static let maxEpoch: UInt64 = (1 << 23) - 1
    static let issuedBit: UInt64 = 1 << 61
    static let localBit: UInt64 = 1 << 62

    /// The sequence of attempt `counter` of `epoch`; `local` for a local admission.
    public static func make(epoch: UInt64, counter: UInt64, local: Bool = false) -> UInt64 {
        precondition(epoch >= 1 && epoch <= maxEpoch && counter >= 1 && counter <= maxCounter)
        return issuedBit | (local ? localBit : 0) | (epoch << counterBits) | counter
    }

    /// The epoch a Redis counter value maps to: 1…`maxEpoch`, wrapping. Ids of an epoch that
    /// wrapped around could meet only records from 8,388,607 starts earlier, long forgotten (a
    /// reservation's record lives its TTL plus an hour).
    public static func epoch(fromCounter value: Int64) -> UInt64 {
        (UInt64(max(1, value)) - 1) % maxEpoch + 1
    }

    /// Every sequence `epoch` may choose for a CHECK it sends (not a local admission's). Each has
    /// 19 decimal digits, as every sequence of this layout does (2^61 … 2^63 − 1).
    public static func range(epoch: UInt64) -> ClosedRange<UInt64> {
        make(epoch: epoch, counter: 1)...make(epoch: epoch, counter: maxCounter)
    }

    /// The epoch of a sequence bursard chose; nil for one of an earlier release.
    public static func epoch(of sequence: UInt64) -> UInt64? {
        guard sequence & issuedBit != 0 else { return nil }
        return (sequence >> counterBits) & maxEpoch
    }

    /// The counter of a sequence bursard chose: how many attempts its epoch had made, this one
    /// included.
    public static func counter(of sequence: UInt64) -> UInt64 { sequence & maxCounter }

    /// Whether the sequence has the layout above (bit 63 clear, bit 61 set): one a bursard of
    /// this release chose. A client's reservation id that opens to anything else names nothing.
    public static func isIssued(_ sequence: UInt64) -> Bool {
        sequence & (1 << 63) == 0 && sequence & issuedBit != 0
    }

    /// Whether the sequence is a local admission's (of this release or an earlier one).
    public static func isLocal(_ sequence: UInt64) -> Bool {
        sequence & localBit != 0 || (sequence >= 1 << 52 && sequence < 1 << 53)
    }
}
