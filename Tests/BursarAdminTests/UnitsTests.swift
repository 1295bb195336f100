import BursarAPI
import Testing

/// What people type and read, shared by bursarctl and the web console: exact dollars, limits,
/// dates and relative times.
@Suite("Units: dollars, limits, dates and relative times, exactly")
struct UnitsTests {
    @Test("dollars parse to exact nano-USD, and malformed, over-precise, negative or too large amounts are refused naming the text")
    func money() throws {
        #expect(try Units.parseMoney("200") == 200_000_000_000)
        #expect(try Units.parseMoney("$12.50") == 12_500_000_000)
        #expect(try Units.parseMoney(" .5 ") == 500_000_000)
        #expect(try Units.parseMoney("0.000000001") == 1)
        #expect(try Units.parseMoney("9223372036.854775807") == Int64.max)
        #expect(try Units.parseMoney("-5.1", allowNegative: true) == -5_100_000_000)
        for bad in ["", "$", "12.x", "1,5", "1e3", "0x10", "12.5.1"] {
            #expect(throws: UnitParseError.self, "\(bad)") { try Units.parseMoney(bad) }
        }
        #expect(throws: UnitParseError("'0.0000000001' has more than 9 decimals (the smallest amount is $0.000000001)")) { try Units.parseMoney("0.0000000001") }
        #expect(throws: UnitParseError("'-1' must not be negative")) { try Units.parseMoney("-1") }
        #expect(throws: UnitParseError("'9223372036.854775808' is too large (at most $9,223,372,036.854775807)")) { try Units.parseMoney("9223372036.854775808") }
    }

    @Test("amounts print as dollars with at least cents, and as plain decimals a form takes back unchanged")
    func dollars() throws {
        #expect(Units.dollars(1_240_000_000_000) == "$1,240.00")
        #expect(Units.dollars(1) == "$0.000000001")
        #expect(Units.dollars(-5_100_000_000) == "-$5.10")
        for n: Int64 in [0, 1, 12_500_000_000, 2_000_000_000_000, 123_456_789_012] {
            #expect(try Units.parseMoney(Units.plainDollars(n)) == n, "\(n)")
        }
        #expect(Units.plainDollars(2_000_000_000_000) == "2000")
        #expect(Units.count(120_000) == "120,000")
    }

    @Test("limits take k and m suffixes and underscores; anything else is refused")
    func limits() throws {
        #expect(try Units.parseLimit("20k") == 20_000)
        #expect(try Units.parseLimit("1M") == 1_000_000)
        #expect(try Units.parseLimit("120_000") == 120_000)
        for bad in ["", "k", "1.5k", "-3", "12 000", "99999999999999999999"] {
            #expect(throws: UnitParseError.self, "\(bad)") { try Units.parseLimit(bad) }
        }
    }

    @Test("dates are calendar days at 00:00 UTC; impossible dates are refused")
    func dates() throws {
        #expect(try Units.parseDay("2026-12-31") == 1_798_675_200_000)
        #expect(Units.day(1_798_675_200_000) == "2026-12-31")
        #expect(Units.day(1_798_675_200_000 + 86_399_999) == "2026-12-31")
        for bad in ["2026-02-30", "2026-13-01", "26-01-01", "2026/01/01", "1969-12-31"] {
            #expect(throws: UnitParseError.self, "\(bad)") { try Units.parseDay(bad) }
        }
    }

    @Test("relative times read as people say them")
    func relative() {
        let now: Int64 = 1_800_000_000_000
        let day: Int64 = 86_400_000
        #expect(Units.relative(now + 30 * day, nowMs: now) == "in 30 days")
        #expect(Units.relative(now + day, nowMs: now) == "in 1 day")
        #expect(Units.relative(now - 3 * 3_600_000, nowMs: now) == "3 hours ago")
        #expect(Units.relative(now + 2 * 60_000, nowMs: now) == "in 2 minutes")
        #expect(Units.relative(now + 10_000, nowMs: now) == "now")
        #expect(Units.relative(now + 90 * day, nowMs: now) == "in 3 months")
        #expect(Units.relative(now - 800 * day, nowMs: now) == "2 years ago")
    }
}
