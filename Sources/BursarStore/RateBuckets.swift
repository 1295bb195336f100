import BursarLimits
public import BursarRedis

/// A key's or a project's RPM and TPM buckets as the limiter stores them (`Keyspace.buckets`): one
/// string "rpm_level:rpm_updated_us:tpm_level:tpm_updated_us:drained_at_us". Levels are in units
/// scaled by `scale` (60,000,000: a bucket of limit R drains R·scale per minute, R per µs);
/// updated times are Redis's clock in µs; `drainedAtUs` is when the later bucket drains empty, and
/// the key expires a second after it. Absent means both empty.
public struct RateBuckets: Sendable, Hashable {
    /// The scale of a level: one request or token is `scale` level units.
    public static let scale: Int64 = MinuteBucket.scale

    public var rpmLevel: Int64 = 0
    public var rpmUpdatedUs: Int64 = 0
    public var tpmLevel: Int64 = 0
    public var tpmUpdatedUs: Int64 = 0
    public var drainedAtUs: Int64 = 0

    /// Both empty.
    public init() {}

    /// Parses a stored pair; nil if it is not one.
    public init?(_ text: String) {
        let f = text.split(separator: ":", omittingEmptySubsequences: false).map { Int64($0) }
        guard f.count == 5, let a = f[0], let b = f[1], let c = f[2], let d = f[3], let e = f[4] else { return nil }
        (rpmLevel, rpmUpdatedUs, tpmLevel, tpmUpdatedUs, drainedAtUs) = (a, b, c, d, e)
    }

    /// The pair in a `GET`/`MGET` reply: absent is both empty; nil if it is not a pair.
    public init?(reply: RedisValue) {
        guard let text = reply.string else {
            self.init()
            return
        }
        self.init(text)
    }
}
