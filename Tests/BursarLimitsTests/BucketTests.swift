import BursarLimits
import Testing

/// The per-minute token bucket, in its exact integer arithmetic (SPEC 13.2).
@Suite("Minute bucket")
struct BucketTests {
    private static let minuteUs: Int64 = 60_000_000
    private static let t0: Int64 = 1_795_780_800_000_000  // 2026-11-27T12:00Z in µs: realistic magnitudes

    /// Takes `n` at `nowUs`, updating the bucket on admission as the limiter does.
    private static func take(_ n: Int64, from bucket: inout MinuteBucket, at nowUs: Int64) -> MinuteBucket.Outcome {
        let outcome = bucket.evaluate(take: n, atUs: nowUs)
        if case .admitted(let level) = outcome {
            bucket.level = level
            bucket.updatedUs = nowUs
        }
        return outcome
    }

    @Test("an empty bucket admits exactly its limit at once, then asks to wait the exact time of one unit")
    func burstThenRetry() {
        for limit: Int64 in [1, 3, 7, 60, 1_000, 7_919] {
            var b = MinuteBucket(limit: limit, updatedUs: Self.t0)
            var admitted: Int64 = 0
            while case .admitted = Self.take(1, from: &b, at: Self.t0) { admitted += 1 }
            #expect(admitted == limit)
            // One unit drains in 60,000,000 / limit µs; rounded up so that waiting that long is enough.
            let oneUnit = (Self.minuteUs + limit - 1) / limit
            #expect(b.evaluate(take: 1, atUs: Self.t0) == .retryAfter(us: oneUnit), "limit \(limit)")
            #expect(b.evaluate(take: 1, atUs: Self.t0 + oneUnit) == .admitted(newLevel: limit * Self.minuteUs - oneUnit * limit + Self.minuteUs))
            #expect(b.evaluate(take: 1, atUs: Self.t0 + oneUnit - 1) == .retryAfter(us: 1), "limit \(limit)")
        }
        // The whole limit in one request is admitted too.
        #expect(MinuteBucket(limit: 60).evaluate(take: 60, atUs: Self.t0) == .admitted(newLevel: 60 * Self.minuteUs))
        #expect(MinuteBucket(limit: 3).evaluate(take: 1, atUs: 0) == .admitted(newLevel: Self.minuteUs))
        #expect(MinuteBucket(limit: 3, level: 3 * Self.minuteUs).evaluate(take: 1, atUs: 0) == .retryAfter(us: 20_000_000))
        #expect(MinuteBucket(limit: 7, level: 7 * Self.minuteUs).evaluate(take: 1, atUs: 0) == .retryAfter(us: 8_571_429))
    }

    @Test("the retry time covers the whole shortfall for a multi-unit request")
    func retryForSeveralUnits() {
        // 60/min, 50 units in: 10 free. Taking 25 needs 15 more to drain: 15 s.
        let b = MinuteBucket(limit: 60, level: 50 * Self.minuteUs, updatedUs: Self.t0)
        #expect(b.evaluate(take: 25, atUs: Self.t0) == .retryAfter(us: 15_000_000))
        #expect(b.evaluate(take: 25, atUs: Self.t0 + 14_999_999) == .retryAfter(us: 1))
        #expect(b.evaluate(take: 25, atUs: Self.t0 + 15_000_000) == .admitted(newLevel: 60 * Self.minuteUs))
    }

    @Test("a full bucket drains linearly: after 30 s half its capacity is free again")
    func drainsLinearly() {
        let b = MinuteBucket(limit: 60, level: 60 * Self.minuteUs, updatedUs: Self.t0)
        #expect(b.level(atUs: Self.t0 + 30_000_000) == 30 * Self.minuteUs)
        #expect(b.remaining(atUs: Self.t0 + 30_000_000) == 30)
        #expect(b.evaluate(take: 30, atUs: Self.t0 + 30_000_000) == .admitted(newLevel: 60 * Self.minuteUs))
        #expect(b.evaluate(take: 31, atUs: Self.t0 + 30_000_000) == .retryAfter(us: 1_000_000))
        for s: Int64 in 0...60 {
            #expect(b.level(atUs: Self.t0 + s * 1_000_000) == (60 - s) * Self.minuteUs)
        }
        // Draining is exact to the microsecond: limit units per 60,000,000 µs.
        let odd = MinuteBucket(limit: 7, level: 7 * Self.minuteUs, updatedUs: Self.t0)
        #expect(odd.level(atUs: Self.t0 + 1) == 7 * Self.minuteUs - 7)
        #expect(odd.level(atUs: Self.t0 + 12_345_678) == 7 * Self.minuteUs - 12_345_678 * 7)
    }

    @Test("a bucket never drains below empty, and idle time earns no extra burst")
    func neverBelowZero() {
        let b = MinuteBucket(limit: 60, level: 10 * Self.minuteUs, updatedUs: Self.t0)
        #expect(b.level(atUs: Self.t0 + 10_000_000) == 0)
        #expect(b.level(atUs: Self.t0 + 10_000_001) == 0)
        #expect(b.level(atUs: Self.t0 + 3_600_000_000) == 0)
        #expect(b.remaining(atUs: Self.t0 + 3_600_000_000) == 60)
        #expect(b.resetUs(atUs: Self.t0 + 3_600_000_000) == 0)
        // After an hour idle: still exactly 60 at once, not more.
        var idle = b
        #expect(Self.take(60, from: &idle, at: Self.t0 + 3_600_000_000) == .admitted(newLevel: 60 * Self.minuteUs))
        #expect(Self.take(1, from: &idle, at: Self.t0 + 3_600_000_000) == .retryAfter(us: 1_000_000))
    }

    @Test("a clock that steps backwards drains nothing and never adds to the level")
    func clockBackwards() {
        let b = MinuteBucket(limit: 60, level: 30 * Self.minuteUs, updatedUs: Self.t0)
        #expect(b.level(atUs: Self.t0 - 5_000_000) == 30 * Self.minuteUs)
        #expect(b.remaining(atUs: Self.t0 - 5_000_000) == 30)
    }

    @Test("a request larger than the whole limit is too large, however empty the bucket; the limit itself is not")
    func tooLarge() {
        let empty = MinuteBucket(limit: 1_000)
        #expect(empty.evaluate(take: 1_001, atUs: Self.t0) == .tooLarge)
        #expect(empty.evaluate(take: Int64(UInt32.max) * 2, atUs: Self.t0) == .tooLarge)
        #expect(empty.evaluate(take: 1_000, atUs: Self.t0) == .admitted(newLevel: 1_000 * Self.minuteUs))
        // Too large even when the bucket is full: it is not a matter of waiting.
        let full = MinuteBucket(limit: 1_000, level: 1_000 * Self.minuteUs, updatedUs: Self.t0)
        #expect(full.evaluate(take: 1_001, atUs: Self.t0) == .tooLarge)
        #expect(full.evaluate(take: 1_000, atUs: Self.t0) == .retryAfter(us: Self.minuteUs))
    }

    @Test("remaining rounds down and the reset time rounds up to the microsecond the bucket is empty")
    func remainingAndReset() {
        // 60/min after 10 units: 50 remain; empty again in 10 s.
        var b = MinuteBucket(limit: 60, updatedUs: Self.t0)
        _ = Self.take(10, from: &b, at: Self.t0)
        #expect(b.remaining(atUs: Self.t0) == 50)
        #expect(b.resetUs(atUs: Self.t0) == 10_000_000)
        #expect(b.remaining(atUs: Self.t0 + 4_000_000) == 54)
        #expect(b.resetUs(atUs: Self.t0 + 4_000_000) == 6_000_000)
        // A partly drained unit is not yet available: 4.5 s frees 4.5 units, remaining says 54.
        #expect(b.remaining(atUs: Self.t0 + 4_500_000) == 54)
        #expect(b.resetUs(atUs: Self.t0 + 4_500_000) == 5_500_000)
        // 7/min after one unit: ceil(60,000,000 / 7) µs until empty, 6 remaining.
        var odd = MinuteBucket(limit: 7, updatedUs: Self.t0)
        _ = Self.take(1, from: &odd, at: Self.t0)
        #expect(odd.remaining(atUs: Self.t0) == 6)
        #expect(odd.resetUs(atUs: Self.t0) == 8_571_429)
        #expect(odd.remaining(atUs: Self.t0 + 1) == 6)
        #expect(odd.resetUs(atUs: Self.t0 + 1) == 8_571_428)
        #expect(odd.remaining(atUs: Self.t0 + 8_571_428) == 6)
        #expect(odd.remaining(atUs: Self.t0 + 8_571_429) == 7)
        #expect(odd.resetUs(atUs: Self.t0 + 8_571_429) == 0)
        // An empty bucket: everything remains, nothing to reset.
        #expect(MinuteBucket(limit: 9).remaining(atUs: Self.t0) == 9)
        #expect(MinuteBucket(limit: 9).resetUs(atUs: Self.t0) == 0)
    }

    @Test("over every interval [t, t+d] the bucket admits at most limit + limit·d/60 s, and a retry time is exact")
    func contractHoldsForPseudoRandomTraffic() {
        var rng = SplitMix64(seed: 0x5EED_B0C7)
        for limit: Int64 in [1, 2, 7, 60, 997, 20_000, MinuteBucket.maxLimit] {
            var b = MinuteBucket(limit: limit, updatedUs: Self.t0)
            var now = Self.t0
            var admissions: [(at: Int64, n: Int64)] = []
            var retryMisses = 0
            for _ in 0..<1_200 {
                // Mostly bursts (no time passing), sometimes long pauses, up to two minutes.
                switch rng.next() % 4 {
                case 0: break
                case 1: now += rng.next(in: 1...1_000)
                case 2: now += rng.next(in: 1...5_000_000)
                default: now += rng.next(in: 1...120_000_000)
                }
                let n = rng.next() % 3 == 0 ? rng.next(in: 1...limit) : rng.next(in: 1...max(1, limit / 10))
                switch Self.take(n, from: &b, at: now) {
                case .admitted: admissions.append((now, n))
                case .retryAfter(let us):
                    // Waiting exactly `us` admits the same request; one µs less does not.
                    if case .admitted = b.evaluate(take: n, atUs: now + us) {} else { retryMisses += 1 }
                    if us > 1, case .admitted = b.evaluate(take: n, atUs: now + us - 1) { retryMisses += 1 }
                case .tooLarge: Issue.record("n \(n) ≤ limit \(limit) refused as too large")
                }
            }
            #expect(retryMisses == 0, "limit \(limit)")
            #expect(admissions.count > 100, "limit \(limit): the traffic should mostly be admitted")
            // The tightest interval for the contract starts and ends at admissions: check every pair.
            // Exact integer form of  sum ≤ R + R·d/60s:  sum·60,000,000 ≤ R·60,000,000 + R·d.
            var violations = 0
            for i in admissions.indices {
                var sum: Int64 = 0
                for j in i..<admissions.count {
                    sum += admissions[j].n
                    let d = admissions[j].at - admissions[i].at
                    if sum * Self.minuteUs > limit * Self.minuteUs + limit * d { violations += 1 }
                }
            }
            #expect(violations == 0, "limit \(limit)")
        }
    }

    @Test("at the largest limit, 100,000,000 per minute, the arithmetic is exact and stays below 2^53")
    func maximumLimit() {
        let limit = MinuteBucket.maxLimit
        #expect(limit == 100_000_000)
        let twoTo53: Int64 = 1 << 53
        var b = MinuteBucket(limit: limit, updatedUs: Self.t0)
        #expect(Self.take(limit, from: &b, at: Self.t0) == .admitted(newLevel: 6_000_000_000_000_000))
        #expect(b.level < twoTo53)
        // One unit drains in 0.6 µs: the retry rounds up to 1 µs, which frees 1⅔ units (1 whole);
        // 3 µs free exactly 5.
        #expect(b.evaluate(take: 1, atUs: Self.t0) == .retryAfter(us: 1))
        #expect(b.remaining(atUs: Self.t0 + 1) == 1)
        #expect(b.level(atUs: Self.t0 + 1) == 6_000_000_000_000_000 - 100_000_000)
        #expect(b.remaining(atUs: Self.t0 + 3) == 5)
        #expect(b.evaluate(take: 6, atUs: Self.t0 + 3) == .retryAfter(us: 1))
        #expect(b.evaluate(take: 5, atUs: Self.t0 + 3) == .admitted(newLevel: 6_000_000_000_000_000))
        #expect(b.remaining(atUs: Self.t0 + 30_000_000) == 50_000_000)
        #expect(b.resetUs(atUs: Self.t0) == Self.minuteUs)
        #expect(b.resetUs(atUs: Self.t0 + 59_999_999) == 1)
        #expect(b.level(atUs: Self.t0 + Self.minuteUs) == 0)
        // A full bucket asked for the whole limit again: wait exactly one minute.
        #expect(b.evaluate(take: limit, atUs: Self.t0) == .retryAfter(us: Self.minuteUs))
        #expect(b.evaluate(take: limit, atUs: Self.t0 + Self.minuteUs) == .admitted(newLevel: 6_000_000_000_000_000))
        #expect(b.evaluate(take: limit + 1, atUs: Self.t0) == .tooLarge)
        // Years of idle time at the largest rate: no overflow, the bucket is simply empty.
        #expect(b.level(atUs: Int64.max / 2) == 0)
        #expect(b.remaining(atUs: Int64.max / 2) == limit)
    }

    @Test("a level above capacity (a SETTLE larger than its estimate) drains at the normal rate until empty")
    func overCapacityDrainsFully() {
        // SPEC 13.2: L' = max(0, L − (now − u)·R), unclamped; 13.4: a SETTLE may push L over R·S.
        // 60/min holding 180 units (three minutes' worth): empty after three minutes.
        let b = MinuteBucket(limit: 60, level: 180 * Self.minuteUs, updatedUs: Self.t0)
        #expect(b.level(atUs: Self.t0 + 30_000_000) == 150 * Self.minuteUs)
        #expect(b.level(atUs: Self.t0 + 120_000_000) == 60 * Self.minuteUs)
        #expect(b.remaining(atUs: Self.t0 + 120_000_000) == 0)
        #expect(b.level(atUs: Self.t0 + 180_000_000) == 0)
        #expect(b.evaluate(take: 1, atUs: Self.t0 + 180_000_000) == .admitted(newLevel: Self.minuteUs))
    }
}
