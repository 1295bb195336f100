import BursarClient
import BursarLimits
import BursarStore
import BursarWire
import Testing

/// Spend windows cross their calendar boundaries on Redis's clock (frozen and moved by the test
/// clock seam), and the script's calendar agrees with the Swift one.
@Suite("spend windows against real Redis")
struct WindowTests {
    static let day: Int64 = 86_400_000

    /// Exhausts a key's budget just before `boundaryMs`, checks it stays exhausted to the last
    /// millisecond of the window and is whole again at `boundaryMs`.
    func crossing(_ period: BudgetPeriod, boundaryMs: Int64, windowStartMs: Int64) async throws {
        try await withHarness { h in
            let w = try await h.world(limits: KeyLimits(budget: 1_000, period: period))
            let c = try await h.connect()
            try await h.setClock(org: w.org.id, toMs: boundaryMs - 5_000)
            let first = try await c.check(.make(w.digest, cost: 1_000))
            #expect(first.allowed)
            #expect(first.keyBudgetResetAtMs == boundaryMs)
            #expect(try await h.integer(Keyspace.keySpend(w.org.id, w.key.key.id, window: String(windowStartMs))) == 1_000)
            try await h.setClock(org: w.org.id, toMs: boundaryMs - 1)
            let last = try await c.check(.make(w.digest, cost: 1))
            #expect(last.reason == .keyBudget && last.keyBudgetRemaining == 0)
            try await h.setClock(org: w.org.id, toMs: boundaryMs)
            let next = try await c.check(.make(w.digest, cost: 1_000))
            #expect(next.allowed && next.keyBudgetRemaining == 0)
            #expect(next.keyBudgetResetAtMs == SpendWindow.containing(boundaryMs, period: period).endMs)
            await c.close()
        }
    }

    @Test("a daily budget resets at 00:00 UTC")
    func daily() async throws {
        // 2026-11-28T00:00:00Z
        try await crossing(.daily, boundaryMs: 1_795_824_000_000, windowStartMs: 1_795_824_000_000 - Self.day)
    }

    @Test("a weekly budget resets on Monday 00:00 UTC")
    func weekly() async throws {
        // Monday 2026-11-30T00:00:00Z; the week before began Monday 2026-11-23.
        try await crossing(.weekly, boundaryMs: 1_795_996_800_000, windowStartMs: 1_795_392_000_000)
    }

    @Test("a monthly budget resets on the 1st 00:00 UTC, across a year end")
    func monthly() async throws {
        // 2027-01-01T00:00:00Z; December 2026 began 2026-12-01T00:00:00Z.
        try await crossing(.monthly, boundaryMs: 1_798_761_600_000, windowStartMs: 1_796_083_200_000)
    }

    @Test("a lifetime budget never resets")
    func lifetime() async throws {
        try await withHarness { h in
            let w = try await h.world(limits: KeyLimits(budget: 1_000, period: .lifetime))
            let c = try await h.connect()
            let r = try await c.check(.make(w.digest, cost: 1_000))
            #expect(r.allowed && r.keyBudgetResetAtMs == 0)
            try await h.advance(org: w.org.id, by: .seconds(400 * 86_400))
            #expect(try await c.check(.make(w.digest, cost: 1)).reason == .keyBudget)
            #expect(try await h.integer(Keyspace.keySpend(w.org.id, w.key.key.id, window: "life")) == 1_000)
            await c.close()
        }
    }

    @Test("the project budget is monthly and resets on the 1st")
    func projectMonthly() async throws {
        try await withHarness { h in
            let w = try await h.world(project: ([], nil, nil, 1_000))
            let c = try await h.connect()
            let march1: Int64 = 1_835_481_600_000  // 2028-03-01T00:00:00Z (2028 is a leap year)
            try await h.setClock(org: w.org.id, toMs: march1 - 1)
            let r = try await c.check(.make(w.digest, cost: 1_000))
            #expect(r.allowed && r.projectBudgetResetAtMs == march1)
            #expect(try await c.check(.make(w.digest, cost: 1)).reason == .projectBudget)
            try await h.setClock(org: w.org.id, toMs: march1)
            #expect(try await c.check(.make(w.digest, cost: 1_000)).allowed)
            await c.close()
        }
    }

    @Test("the script's calendar agrees with the Swift calendar at many instants")
    func scriptAgreesWithSwift() async throws {
        try await withHarness { h in
            let c = try await h.connect()
            var keys: [(BudgetPeriod, Harness.World)] = []
            for period in [BudgetPeriod.daily, .weekly, .monthly] {
                keys.append((period, try await h.world(project: ([], nil, nil, maxExactValue), limits: KeyLimits(budget: maxExactValue, period: period))))
            }
            // A deterministic spread over 1971…2200, plus every month start of 2024–2028 ± 1 ms.
            var instants: [Int64] = []
            var x: UInt64 = 0x9E37_79B9_7F4A_7C15
            for _ in 0..<200 {
                x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                instants.append(31_536_000_000 + Int64(x >> 24) % 7_226_000_000_000)
            }
            for year in Int64(2024)...2028 {
                for month in Int64(1)...12 {
                    let start = days(fromCivil: year, month, 1) * Self.day
                    instants += [start - 1, start, start + 1]
                }
            }
            for t in instants {
                for (period, w) in keys {
                    try await h.setClock(org: w.org.id, toMs: t)
                    let r = try await c.check(.make(w.digest, cost: 0))
                    let expected = SpendWindow.containing(t, period: period)
                    #expect(r.keyBudgetResetAtMs == expected.endMs, "\(period) at \(t): \(r.reason)")
                    if period == .monthly { #expect(r.projectBudgetResetAtMs == expected.endMs, "project at \(t)") }
                }
            }
            await c.close()
        }
    }
}
