public import BursarRedis

/// A reservation as the limiter stores it (`Keyspace.reservation`), written by the CHECK step with
/// `SET … NX PX` (so taking the sequence, writing the record and setting its expiry are one
/// command) and rewritten with `KEEPTTL` by SETTLE, RELEASE, VOID and SWEEP (SPEC §13.1).
///
/// **Packed** (written since the second layout change of 2026-12-05; prelude.lua's `RESERVATION_PACK`): the nine bytes
/// `packed - `, then status (1 byte: 1 open, 2 settled, 3 released, 4 expired, 5 swept, 6 void),
/// flags (1 byte: 1 = it has a model), then signed 64-bit big-endian integers: expiry (Unix ms),
/// reserved tokens, reserved cost, then metered (1 byte), then the key's and the project's TPM
/// and the key's and the project's RPM at the CHECK (0: none), when it was made (Unix µs,
/// Redis's clock), the actual tokens and cost (−1: not settled), the input, output and cached
/// input prices of a CHECK priced from the table (−1: not so priced), the key's and the project's
/// budget at the CHECK (−1: none); then the key id, the project id, the key's and the project's
/// spend-window counters (full names) and the model, each a 16-bit big-endian length and its
/// bytes.
///
/// **Text** (the layouts of earlier releases, still read: an upgrade may find them open; a step
/// that rewrites one writes it packed): space-separated fields in the same order (status as a
/// word, metered as 1/0, the rates, then the actuals and prices when present, `-` for an actual
/// not known yet), from 2026-12-05 on followed by ` |`, the key's and the project's budget (`-`:
/// none) and the model. A fence left by a VOID whose attempt never ran is the text `void`.
public struct ReservationRecord: Sendable, Hashable {
    /// `open`, `settled`, `released`, `expired`, `void` or `swept` (SPEC §10, §13.7).
    public var status: String
    /// When it stops accepting SETTLE (Unix ms); nil for a fence.
    public var expiresAtMs: Int64?
    /// Key and project ids; nil for a fence.
    public var keyID: UInt64?
    public var projectID: UInt64?
    /// What the CHECK reserved.
    public var tokens: Int64 = 0
    public var cost: Int64 = 0
    /// The spend-window counters it moved (full key names).
    public var keyWindow: String?
    public var projectWindow: String?
    /// Whether it moved the organization's credits.
    public var metered = false
    /// The rates in force at the CHECK (0: none), at which a SETTLE moves the buckets.
    public var keyTPM: Int64 = 0
    public var projectTPM: Int64 = 0
    public var keyRPM: Int64 = 0
    public var projectRPM: Int64 = 0
    /// When it was made (Unix µs, Redis's clock).
    public var createdAtUs: Int64?
    /// The settled actuals.
    public var actualTokens: Int64?
    public var actualCost: Int64?
    /// The input, output and cached-input prices (nano-USD per million tokens) of a CHECK priced
    /// from the table (SPEC §13.12); nil otherwise.
    public var prices: Prices?
    public struct Prices: Sendable, Hashable {
        public var input: Int64
        public var output: Int64
        public var cached: Int64
    }

    /// The model the CHECK named (nil: a record from before 2026-12-05, which keeps no usage
    /// history; SPEC §13.13).
    public var model: String?
    /// The key's and the project's budget at the CHECK (nil: none).
    public var keyBudget: Int64?
    public var projectBudget: Int64?
    /// Whether it is stored packed (every record a step of this release writes).
    public var packed = false

    /// The first bytes of a packed record.
    public static let packedMark: [UInt8] = Array("packed - ".utf8)
    static let statusNames = ["open", "settled", "released", "expired", "swept", "void"]

    /// Parses a stored record, packed or text; nil if it is not one.
    public init?(bytes: [UInt8]) {
        if bytes.starts(with: Self.packedMark) {
            self.init(packed: bytes)
        } else {
            self.init(String(decoding: bytes, as: UTF8.self))
        }
    }

    /// Parses a packed record (after the mark).
    private init?(packed b: [UInt8]) {
        let fixed = Self.packedMark.count + 2 + 3 * 8 + 1 + 12 * 8
        guard b.count >= fixed, (1...Self.statusNames.count).contains(Int(b[9])) else { return nil }
        status = Self.statusNames[Int(b[9]) - 1]
        packed = true
        let hasModel = b[10] & 1 == 1
        func slot(_ i: Int) -> Int64 { PackedSlots.int64(b, at: i < 3 ? 11 + i * 8 : 36 + (i - 3) * 8) }
        func optional(_ i: Int) -> Int64? { let v = slot(i); return v < 0 ? nil : v }
        expiresAtMs = slot(0)
        tokens = slot(1)
        cost = slot(2)
        metered = b[35] == 1
        keyTPM = slot(3); projectTPM = slot(4); keyRPM = slot(5); projectRPM = slot(6)
        createdAtUs = slot(7)
        actualTokens = optional(8)
        actualCost = optional(9)
        if let input = optional(10), let output = optional(11), let cached = optional(12) {
            prices = Prices(input: input, output: output, cached: cached)
        }
        keyBudget = optional(13)
        projectBudget = optional(14)
        guard let strings = PackedSlots.strings(b, at: fixed, count: 5)?.strings,
              let kid = UInt64(strings[0]), let pid = UInt64(strings[1])
        else { return nil }
        keyID = kid
        projectID = pid
        keyWindow = strings[2]
        projectWindow = strings[3]
        model = hasModel ? strings[4] : nil
    }

    /// Parses a text record; nil if it is not one.
    public init?(_ text: String) {
        var body = Substring(text)
        if let bar = text.range(of: " |") {
            body = text[..<bar.lowerBound]
            let tail = text[bar.upperBound...].split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
            guard tail.count == 3 else { return nil }
            keyBudget = Int64(tail[0])
            projectBudget = Int64(tail[1])
            model = String(tail[2])
        }
        let f = body.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard let status = f.first else { return nil }
        self.status = status
        guard f.count > 1 else {
            if status != "void" { return nil }
            return
        }
        guard f.count >= 14, let exp = Int64(f[1]), let kid = UInt64(f[2]), let pid = UInt64(f[3]),
              let tok = Int64(f[4]), let cost = Int64(f[5]), let at = Int64(f[13])
        else { return nil }
        expiresAtMs = exp
        keyID = kid
        projectID = pid
        tokens = tok
        self.cost = cost
        keyWindow = f[6]
        projectWindow = f[7]
        createdAtUs = at
        metered = f[8] == "1"
        keyTPM = Int64(f[9]) ?? 0; projectTPM = Int64(f[10]) ?? 0
        keyRPM = Int64(f[11]) ?? 0; projectRPM = Int64(f[12]) ?? 0
        if f.count >= 16 {
            actualTokens = Int64(f[14])
            actualCost = Int64(f[15])
        }
        if f.count >= 19, let input = Int64(f[16]), let output = Int64(f[17]), let cached = Int64(f[18]) {
            prices = Prices(input: input, output: output, cached: cached)
        }
    }

    /// The record in a `GET` reply; nil when absent or not a record.
    public init?(reply: RedisValue) {
        guard case .bulk(let bytes) = reply else { return nil }
        self.init(bytes: bytes)
    }
}
