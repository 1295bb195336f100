public import BursarRedis

/// A reservation as the limiter stores it (`Keyspace.reservation`): one string of space-separated
/// fields, written by the CHECK script with `SET … NX PX` (so taking the sequence, writing the
/// record and setting its expiry are one command) and rewritten with `KEEPTTL` by SETTLE, RELEASE,
/// VOID and SWEEP. In order: status, expiry (Unix ms), key, project, reserved tokens, reserved
/// cost, the key's and the project's spend-window counters, metered (1/0), the key's and the
/// project's TPM and RPM at the time (TPM key, TPM project, RPM key, RPM project), the time it was
/// made (Unix µs, Redis's clock), then the actual tokens and cost once settled (and the prices of
/// a CHECK priced from the table); after ` |`, the key's and the project's budget at the CHECK
/// (`-`: none) and the model (free text, last). A fence left by a VOID whose attempt never ran is
/// the single field `void`.
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
    /// When it was made (Unix µs, Redis's clock).
    public var createdAtUs: Int64?
    /// The settled actuals.
    public var actualTokens: Int64?
    public var actualCost: Int64?

    /// The model the CHECK named (records from 2026-12-05 on, after ` |`; SPEC §13.13).
    public var model: String?
    /// The key's and the project's budget at the CHECK (nil: none), after ` |`.
    public var keyBudget: Int64?
    public var projectBudget: Int64?

    /// Parses a stored record; nil if it is not one.
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
        if f.count >= 16 {
            actualTokens = Int64(f[14])
            actualCost = Int64(f[15])
        }
    }

    /// The record in a `GET` reply; nil when absent or not a record.
    public init?(reply: RedisValue) {
        guard let text = reply.string else { return nil }
        self.init(text)
    }
}
