/// A per-minute token bucket (equivalently GCRA) in exact integer arithmetic.
///
/// The bucket holds `limit` units and drains `limit` units per minute. Its fill level is kept
/// scaled by 60,000,000 (µs per minute) so that draining `elapsedµs × limit` scaled units is exact:
/// no division, no rounding, and every value stays below 2^53 for limits up to `maxLimit`, so the
/// Lua copy of this arithmetic inside Redis (whose numbers are doubles) is exact too.
///
/// Contract: over any interval of length t seconds, at most `limit + limit·t/60` units are admitted.
public struct MinuteBucket: Hashable, Sendable {
    /// Scale: microseconds per minute.
    public static let scale: Int64 = 60_000_000
    /// Largest limit for which the arithmetic stays exact in a double (scale × limit < 2^53).
    public static let maxLimit: Int64 = 100_000_000

    /// Units per minute.
    public var limit: Int64
    /// Fill level × `scale` as of `updatedUs`.
    public var level: Int64
    /// When `level` was computed, Unix µs.
    public var updatedUs: Int64

    /// A bucket state.
    public init(limit: Int64, level: Int64 = 0, updatedUs: Int64 = 0) {
        self.limit = limit
        self.level = level
        self.updatedUs = updatedUs
    }

    /// The scaled level at `nowUs` after draining. A level above capacity (SETTLE may push it
    /// there) keeps draining at the same rate until empty; no product can overflow.
    public func level(atUs nowUs: Int64) -> Int64 {
        let elapsed = max(nowUs - updatedUs, 0)
        if elapsed >= (level + limit - 1) / limit { return 0 }
        return level - elapsed * limit
    }

    /// What taking `n` units at `nowUs` would do.
    public enum Outcome: Hashable, Sendable {
        /// Admitted; the bucket's new scaled level.
        case admitted(newLevel: Int64)
        /// Not now; retry after this many microseconds.
        case retryAfter(us: Int64)
        /// Never: `n` exceeds the whole minute's limit.
        case tooLarge
    }

    /// Decides whether `n` units fit at `nowUs` (does not mutate).
    public func evaluate(take n: Int64, atUs nowUs: Int64) -> Outcome {
        if n > limit { return .tooLarge }
        let current = level(atUs: nowUs)
        let next = current + n * Self.scale
        let capacity = limit * Self.scale
        if next <= capacity { return .admitted(newLevel: next) }
        return .retryAfter(us: (next - capacity + limit - 1) / limit)
    }

    /// Highest scaled level a bucket keeps: SETTLEs far above their estimates stop here, so the
    /// level stays an exact integer in a double (below 2^53).
    public static let maxLevel: Int64 = 9_000_000_000_000_000

    /// The bucket after `units` more (negative: given back) at `nowUs`, with no capacity check:
    /// what a SETTLE (its actual tokens above or below the estimate) or a RELEASE does. The level
    /// stays within 0…`maxLevel`.
    public func moved(by units: Int64, atUs nowUs: Int64) -> MinuteBucket {
        let level = min(max(level(atUs: nowUs) + units * Self.scale, 0), Self.maxLevel)
        return MinuteBucket(limit: limit, level: level, updatedUs: nowUs)
    }

    /// Units still admissible at `nowUs` (0 when the bucket is at or over capacity).
    public func remaining(atUs nowUs: Int64) -> Int64 { max(0, (limit * Self.scale - level(atUs: nowUs)) / Self.scale) }

    /// Microseconds until the bucket is empty (full capacity again) at `nowUs`.
    public func resetUs(atUs nowUs: Int64) -> Int64 { (level(atUs: nowUs) + limit - 1) / limit }
}
