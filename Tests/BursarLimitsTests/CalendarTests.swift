import BursarLimits
import Foundation
import Testing

/// Calendar spend windows in UTC. Every expected Unix-ms value below was computed independently
/// (Python's `datetime` in UTC), never with the code under test.
@Suite("Calendar spend windows")
struct CalendarTests {
    private static let dayMs: Int64 = 86_400_000

    /// 2026-11-27T12:00:00Z, a Friday.
    private static let friday: Int64 = 1_795_780_800_000

    @Test("a Friday noon lies in its day, its Monday-to-Monday week and its calendar month")
    func knownInstant() {
        let t = Self.friday
        // [2026-11-27, 2026-11-28)
        #expect(SpendWindow.containing(t, period: .daily) == SpendWindow(startMs: 1_795_737_600_000, endMs: 1_795_824_000_000))
        // [Mon 2026-11-23, Mon 2026-11-30)
        #expect(SpendWindow.containing(t, period: .weekly) == SpendWindow(startMs: 1_795_392_000_000, endMs: 1_795_996_800_000))
        // [2026-11-01, 2026-12-01)
        #expect(SpendWindow.containing(t, period: .monthly) == SpendWindow(startMs: 1_793_491_200_000, endMs: 1_796_083_200_000))
    }

    @Test("a lifetime window starts at 0 and never ends, whatever the instant")
    func lifetime() {
        for t: Int64 in [Self.friday, 0, -1, -2_208_988_800_000, 7_258_118_400_000] {
            #expect(SpendWindow.containing(t, period: .lifetime) == SpendWindow(startMs: 0, endMs: nil))
        }
    }

    @Test("a window's first millisecond belongs to it and its end belongs to the next window")
    func boundaryMillisecond() {
        let cases: [(BudgetPeriod, start: Int64, end: Int64)] = [
            (.daily, 1_795_737_600_000, 1_795_824_000_000),  // 2026-11-27 → 2026-11-28
            (.weekly, 1_795_392_000_000, 1_795_996_800_000),  // Mon 2026-11-23 → Mon 2026-11-30
            (.monthly, 1_793_491_200_000, 1_796_083_200_000),  // 2026-11-01 → 2026-12-01
        ]
        for (period, start, end) in cases {
            #expect(SpendWindow.containing(start, period: period).startMs == start, "\(period)")
            #expect(SpendWindow.containing(end - 1, period: period).endMs == end, "\(period)")
            #expect(SpendWindow.containing(end - 1, period: period).startMs == start, "\(period)")
            #expect(SpendWindow.containing(end, period: period).startMs == end, "\(period)")
            #expect(SpendWindow.containing(start - 1, period: period).endMs == start, "\(period)")
        }
    }

    @Test("December's window ends at January 1st of the next year, where January's begins")
    func decemberToJanuary() {
        let lastMs: Int64 = 1_798_761_599_999  // 2026-12-31T23:59:59.999Z
        let newYear: Int64 = 1_798_761_600_000  // 2027-01-01T00:00:00Z
        #expect(lastMs + 1 == newYear)
        #expect(SpendWindow.containing(lastMs, period: .monthly) == SpendWindow(startMs: 1_796_083_200_000, endMs: newYear))
        #expect(SpendWindow.containing(newYear, period: .monthly) == SpendWindow(startMs: newYear, endMs: 1_801_440_000_000))
        #expect(SpendWindow.containing(lastMs, period: .daily) == SpendWindow(startMs: newYear - Self.dayMs, endMs: newYear))
    }

    @Test("February has 29 days in a leap year (2028, 2000) and 28 otherwise (2027, 2100)")
    func february() {
        // 2028-02-29T12:00Z → [2028-02-01, 2028-03-01): 29 days.
        let leap = SpendWindow.containing(1_835_438_400_000, period: .monthly)
        #expect(leap == SpendWindow(startMs: 1_832_976_000_000, endMs: 1_835_481_600_000))
        #expect(leap.endMs.map { ($0 - leap.startMs) / Self.dayMs } == 29)
        // 2027-02-28T23:59:59.999Z → [2027-02-01, 2027-03-01): 28 days; one ms later is March.
        let plain = SpendWindow.containing(1_803_859_199_999, period: .monthly)
        #expect(plain == SpendWindow(startMs: 1_801_440_000_000, endMs: 1_803_859_200_000))
        #expect(SpendWindow.containing(1_803_859_200_000, period: .monthly).startMs == 1_803_859_200_000)
        // 2000 is divisible by 400: leap. 2100 is divisible by 100 only: not leap.
        let y2000 = SpendWindow.containing(951_782_400_000, period: .monthly)  // 2000-02-29
        #expect(y2000 == SpendWindow(startMs: 949_363_200_000, endMs: 951_868_800_000))
        let y2100 = SpendWindow.containing(4_105_123_200_000 + 27 * Self.dayMs, period: .monthly)  // 2100-02-28
        #expect(y2100 == SpendWindow(startMs: 4_105_123_200_000, endMs: 4_107_542_400_000))
    }

    @Test("a week spanning a month and year boundary runs Monday to Monday across it")
    func weekAcrossNewYear() {
        // Mon 2026-12-28 → Mon 2027-01-04 holds both Thu 2026-12-31 and Fri 2027-01-01.
        let week = SpendWindow(startMs: 1_798_416_000_000, endMs: 1_799_020_800_000)
        #expect(SpendWindow.containing(1_798_761_599_999, period: .weekly) == week)
        #expect(SpendWindow.containing(1_798_761_600_000, period: .weekly) == week)
        #expect(SpendWindow.containing(1_799_020_800_000 - 1, period: .weekly) == week)
        // Mon 2026-11-30 → Mon 2026-12-07 spans November into December.
        let november = SpendWindow(startMs: 1_795_996_800_000, endMs: 1_795_996_800_000 + 7 * Self.dayMs)
        #expect(SpendWindow.containing(1_796_083_200_000, period: .weekly) == november)  // Tue 2026-12-01
    }

    @Test("instants before 1970 (negative ms) fall in the right windows, not the ones after them")
    func beforeEpoch() {
        // -1 ms is 1969-12-31T23:59:59.999Z, a Wednesday.
        #expect(SpendWindow.containing(-1, period: .daily) == SpendWindow(startMs: -Self.dayMs, endMs: 0))
        // Mon 1969-12-29 → Mon 1970-01-05.
        #expect(SpendWindow.containing(-1, period: .weekly) == SpendWindow(startMs: -259_200_000, endMs: 345_600_000))
        #expect(SpendWindow.containing(0, period: .weekly) == SpendWindow(startMs: -259_200_000, endMs: 345_600_000))
        #expect(SpendWindow.containing(-1, period: .monthly) == SpendWindow(startMs: -2_678_400_000, endMs: 0))
        #expect(SpendWindow.containing(0, period: .monthly) == SpendWindow(startMs: 0, endMs: 2_678_400_000))
        // 1969-07-20T20:17:40Z, a Sunday, mid-day: truncating division would round towards 1970.
        let t: Int64 = -14_182_940_000
        #expect(SpendWindow.containing(t, period: .daily) == SpendWindow(startMs: -14_256_000_000, endMs: -14_169_600_000))
        #expect(SpendWindow.containing(t, period: .weekly) == SpendWindow(startMs: -14_774_400_000, endMs: -14_169_600_000))
        #expect(SpendWindow.containing(t, period: .monthly) == SpendWindow(startMs: -15_897_600_000, endMs: -13_219_200_000))
        // 1900-01-01 was a Monday.
        #expect(SpendWindow.containing(-2_208_988_800_000, period: .weekly).startMs == -2_208_988_800_000)
    }

    @Test("every window holds its instant, starts at midnight, and the calendar periods start on day 1 or Monday")
    func windowShapeOverManyInstants() {
        var rng = SplitMix64(seed: 0xB0B5)
        let lo: Int64 = -2_208_988_800_000  // 1900-01-01
        let hi: Int64 = 7_258_118_400_000  // 2200-01-01
        for _ in 0..<5_000 {
            let t = lo + Int64(rng.next() % UInt64(hi - lo))
            for period in [BudgetPeriod.daily, .weekly, .monthly] {
                let w = SpendWindow.containing(t, period: period)
                let end = w.endMs ?? Int64.min
                #expect(w.startMs <= t && t < end, "\(period) \(t)")
                #expect(w.startMs % Self.dayMs == 0 && end % Self.dayMs == 0, "\(period) \(t)")
                let startDay = w.startMs / Self.dayMs
                switch period {
                case .daily: #expect(end - w.startMs == Self.dayMs)
                case .weekly:
                    #expect(end - w.startMs == 7 * Self.dayMs)
                    // 1970-01-05 (day 4) was a Monday.
                    #expect(((startDay - 4) % 7 + 7) % 7 == 0, "\(t)")
                case .monthly:
                    #expect(civil(fromDays: startDay).day == 1, "\(t)")
                    #expect(civil(fromDays: end / Self.dayMs).day == 1, "\(t)")
                    #expect((28...31).contains((end - w.startMs) / Self.dayMs), "\(t)")
                case .lifetime: break
                }
            }
        }
    }

    @Test("days(fromCivil:) and civil(fromDays:) round-trip every day from 1900 to 2200, in calendar order")
    func civilRoundTrip() {
        let first = days(fromCivil: 1900, 1, 1)
        let last = days(fromCivil: 2200, 1, 1)
        #expect(first == -25_567)
        #expect(last == 84_006)
        #expect(days(fromCivil: 1970, 1, 1) == 0)
        var (y, m, d): (Int64, Int64, Int64) = (1900, 1, 1)
        var mismatches = 0
        for n in first..<last {
            let c = civil(fromDays: n)
            if c != (y, m, d) || days(fromCivil: c.year, c.month, c.day) != n { mismatches += 1 }
            // Step an independent calendar forward by one day.
            d += 1
            if d > Self.monthLength(y, m) {
                d = 1
                m += 1
                if m > 12 { m = 1; y += 1 }
            }
        }
        #expect(mismatches == 0)
        #expect((y, m, d) == (2200, 1, 1))
    }

    @Test("civil dates agree with Foundation's Gregorian calendar in UTC")
    func againstFoundation() throws {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = try #require(TimeZone(identifier: "UTC"))
        var rng = SplitMix64(seed: 1970)
        let first = days(fromCivil: 1900, 1, 1)
        let span = UInt64(days(fromCivil: 2200, 1, 1) - first)
        var samples = (0..<1_000).map { _ in first + Int64(rng.next() % span) }
        samples += [-1, 0, 1, 11_016, 21_243, 20_818, 20_819]
        for n in samples {
            let date = Date(timeIntervalSince1970: TimeInterval(n) * 86_400)
            let parts = calendar.dateComponents([.year, .month, .day, .weekday], from: date)
            let c = civil(fromDays: n)
            #expect(Int64(parts.year!) == c.year && Int64(parts.month!) == c.month && Int64(parts.day!) == c.day, "day \(n)")
            // Foundation: 1 = Sunday, 2 = Monday. The weekly window starts on this day iff it is a Monday.
            let isMonday = SpendWindow.containing(n * Self.dayMs, period: .weekly).startMs == n * Self.dayMs
            #expect(isMonday == (parts.weekday == 2), "day \(n)")
        }
    }

    private static func monthLength(_ y: Int64, _ m: Int64) -> Int64 {
        switch m {
        case 2: return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}

/// A small deterministic pseudo-random generator (SplitMix64), so property checks are reproducible.
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in `range`.
    mutating func next(in range: ClosedRange<Int64>) -> Int64 {
        range.lowerBound + Int64(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }
}
