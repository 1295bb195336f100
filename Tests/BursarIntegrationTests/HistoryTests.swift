import BursarClient
import BursarLimits
import BursarRedis
@_spi(Testing) import BursarStore
import BursarWire
import Foundation
import Testing

/// Usage history (SPEC §13.13) is written by the same atomic steps as the counters it mirrors, so
/// for every day it equals what the spend windows were debited. Driven through a real data plane
/// on Redis's test clock, across day, week, month and year boundaries.
@Suite("usage history against real Redis")
struct HistoryTests {
    static let dayMs: Int64 = 86_400_000

    /// What the test expects one history record to hold, kept by the test on its own.
    struct Expected: Equatable, CustomStringConvertible {
        var admitted: Int64 = 0, settled: Int64 = 0, released: Int64 = 0
        var settledTokens: Int64 = 0, settledSpend: Int64 = 0
        var openRequests: Int64 = 0, openTokens: Int64 = 0, openSpend: Int64 = 0
        var denied: [DenyReason: Int64] = [:]
        init() {}
        init(_ c: HistoryCounts) {
            (admitted, settled, released) = (c.admitted, c.settled, c.released)
            (settledTokens, settledSpend) = (c.settledTokens, c.settledSpend)
            (openRequests, openTokens, openSpend) = (c.openRequests, c.openTokens, c.openSpend)
            denied = c.denied
        }
        var description: String {
            "adm \(admitted) set \(settled) rel \(released) tok \(settledTokens) spend \(settledSpend) open \(openRequests)/\(openTokens)/\(openSpend) denied \(denied)"
        }
    }

    struct Place: Hashable { var day: Int64, key: UInt64, model: String }

    struct Open {
        var id: ReservationID
        var place: Place
        var tokens: Int64
        var cost: Int64
        var expiresMs: Int64
    }

    @Test("a week of traffic: history equals the ledger and the enforcement counters per day, key, project and model")
    func week() async throws {
        let ttlMs: Int64 = 3 * 3_600_000
        try await withHarness(reservationTTLMs: ttlMs) { h in
            let w = try await h.world(project: ([], nil, nil, 40_000_000))
            let org = w.org.id
            let research = try await h.store.createProject(org: org, name: "research", monthlyBudget: 60_000_000)
            try await h.store.setMembership(Membership(orgID: org, projectID: research.id, userID: w.member.id, role: .member, grant: Grant()))
            // Keys of every period, in two projects; the daily one has a budget the traffic runs into.
            let daily = try await h.store.createKey(org: org, project: w.project.id, user: w.member.id, name: "daily", limits: KeyLimits(budget: 4_000_000, period: .daily))
            let weekly = try await h.store.createKey(org: org, project: w.project.id, user: w.member.id, name: "weekly", limits: KeyLimits(budget: 1_000_000_000, period: .weekly))
            let monthly = try await h.store.createKey(org: org, project: research.id, user: w.member.id, name: "monthly", limits: KeyLimits(period: .monthly, models: ["gpt-5", "haiku"]))
            let keys: [(CreatedKey, UInt64)] = [(w.key, w.project.id), (daily, w.project.id), (weekly, w.project.id), (monthly, research.id)]
            let models = ["gpt-5", "haiku", "mistral large"]
            let c = try await h.connect()

            // Saturday 2026-12-26 18:00 UTC: the week turns on Monday the 28th, the month and the
            // year on Friday 2027-01-01; the run ends on Saturday 2027-01-02.
            let start = days(fromCivil: 2026, 12, 26) * Self.dayMs + 18 * 3_600_000
            let end = days(fromCivil: 2027, 1, 2) * Self.dayMs + 20 * 3_600_000
            var now = start
            try await h.setClock(org: org, toMs: now)
            var rng = SplitMix64(state: 0x5EED_2026)
            var expected: [Place: Expected] = [:]
            var open: [Open] = []
            var settledAfterMidnight = 0
            var operations = 0
            var deniedCount = 0

            func finish(_ o: Open, settle: Bool) async throws {
                if settle {
                    let input = Int64(rng.next(upTo: 40)), output = Int64(rng.next(upTo: 80))
                    // Sometimes above the estimate: SETTLE may exceed it.
                    let cost = rng.next(upTo: 5) == 0 ? o.cost + Int64(rng.next(upTo: 200_000)) : Int64(rng.next(upTo: UInt64(o.cost) + 1))
                    let r = try await c.settle(SettleRequest(reservation: o.id, inputTokens: UInt32(input), outputTokens: UInt32(output), cost: cost))
                    if now >= o.expiresMs {
                        #expect(r.status == .expired)
                        return
                    }
                    #expect(r.status == .applied, "settle: \(r.status)")
                    var e = expected[o.place, default: Expected()]
                    e.settled += 1
                    e.settledTokens += input + output
                    e.settledSpend += cost
                    e.openRequests -= 1
                    e.openTokens -= o.tokens
                    e.openSpend -= o.cost
                    expected[o.place] = e
                    if HistoryDay.of(ms: now) != o.place.day { settledAfterMidnight += 1 }
                    // Exactly once: a repeat changes nothing.
                    #expect(try await c.settle(SettleRequest(reservation: o.id, inputTokens: 1, outputTokens: 1, cost: 1)).status == .alreadySettled)
                } else {
                    let r = try await c.release(o.id)
                    if now >= o.expiresMs {
                        #expect(r.status == .expired)
                        return
                    }
                    #expect(r.status == .applied)
                    var e = expected[o.place, default: Expected()]
                    e.released += 1
                    e.openRequests -= 1
                    e.openTokens -= o.tokens
                    e.openSpend -= o.cost
                    expected[o.place] = e
                }
            }

            while now < end {
                operations += 1
                let (key, _) = keys[Int(rng.next(upTo: UInt64(keys.count)))]
                let model = models[Int(rng.next(upTo: UInt64(models.count)))]
                let input = UInt32(rng.next(upTo: 50) + 1), output = UInt32(rng.next(upTo: 100) + 1)
                let cost = Int64(rng.next(upTo: 900_000) + 1)
                let r = try await c.check(CheckRequest(
                    digest: KeyDigest(secret: key.secret), model: try ModelName(model), inputTokens: input, maxOutputTokens: output,
                    estimatedCost: cost))
                let day = HistoryDay.of(ms: now)
                if r.allowed {
                    let place = Place(day: day, key: key.key.id, model: model)
                    var e = expected[place, default: Expected()]
                    e.admitted += 1
                    e.openRequests += 1
                    e.openTokens += Int64(input + output)
                    e.openSpend += cost
                    expected[place] = e
                    open.append(Open(id: r.reservation, place: place, tokens: Int64(input + output), cost: cost, expiresMs: now + ttlMs))
                } else {
                    deniedCount += 1
                    let place = Place(day: day, key: key.key.id, model: r.reason == .modelNotAllowed ? "" : model)
                    expected[place, default: Expected()].denied[r.reason, default: 0] += 1
                }
                // Finish some of what is open: most settled, some released, some left to expire.
                while open.count > Int(rng.next(upTo: 6)) {
                    let o = open.removeFirst()
                    switch rng.next(upTo: 10) {
                    case 0: continue  // never finished: it expires with its estimate, still open in the history
                    case 1, 2: try await finish(o, settle: false)
                    default: try await finish(o, settle: true)
                    }
                }
                now += Int64(rng.next(upTo: 80 * 60_000) + 60_000)
                try await h.setClock(org: org, toMs: now)
            }
            for o in open { try await finish(o, settle: true) }
            await c.close()
            #expect(settledAfterMidnight > 0, "no SETTLE crossed midnight: the test did not test the rule")
            #expect(deniedCount > 0)

            // 1. The history, record by record, is what the test counted.
            let reader = HistoryReader(redis: h.redis)
            let first = HistoryDay.of(ms: start), last = HistoryDay.of(ms: end)
            let entries = try await reader.entries(org: org, from: first - 1, to: last + 1)
            var got: [Place: Expected] = [:]
            for e in entries {
                got[Place(day: e.day, key: e.keyID, model: e.model)] = Expected(e.counts)
                #expect(keys.contains { $0.0.key.id == e.keyID && $0.1 == e.projectID }, "record of key \(e.keyID) filed under project \(e.projectID)")
            }
            #expect(Set(got.keys) == Set(expected.keys))
            for (place, e) in expected { #expect(got[place] == e, "\(place): history \(String(describing: got[place])), counted \(e)") }
            print("history: \(operations) CHECKs over \(last - first + 1) days, \(entries.count) records, \(settledAfterMidnight) settled after midnight, \(deniedCount) denied")

            // 2. Against the enforcement counters themselves: each spend window's counter equals
            // the history's spend (settled + open) of the days in that window.
            func spend(key: UInt64? = nil, project: UInt64? = nil, days range: ClosedRange<Int64>) -> Int64 {
                entries.filter { range.contains($0.day) && (key == nil || $0.keyID == key) && (project == nil || $0.projectID == project) }
                    .reduce(0) { $0 + $1.counts.spend }
            }
            var windowsChecked = 0
            for day in first...last {
                let ms = day * Self.dayMs
                for (key, project) in keys {
                    let period = key.key.limits.period
                    let window = SpendWindow.containing(ms, period: period)
                    let counter = Keyspace.keySpend(org, key.key.id, window: String(window.startMs))
                    let windowDays = HistoryDay.of(ms: window.startMs)...HistoryDay.of(ms: window.endMs! - 1)
                    #expect(try await h.integer(counter) == spend(key: key.key.id, days: windowDays), "key \(key.key.id) \(period) window of \(HistoryDay.format(day))")
                    let month = SpendWindow.containing(ms, period: .monthly)
                    let monthDays = HistoryDay.of(ms: month.startMs)...HistoryDay.of(ms: month.endMs! - 1)
                    let pcounter = Keyspace.projectSpend(org, project, window: String(month.startMs))
                    #expect(try await h.integer(pcounter) == spend(project: project, days: monthDays), "project \(project) month of \(HistoryDay.format(day))")
                    windowsChecked += 2
                }
                // The daily key, day by day: the strictest form of the rule.
                let dayCounter = Keyspace.keySpend(org, daily.key.id, window: String(ms))
                #expect(try await h.integer(dayCounter) == spend(key: daily.key.id, days: day...day))
            }
            #expect(windowsChecked > 0)
        }
    }

    @Test("a void gives back the history of an admission; denials before the counters are read are kept")
    func voidAndEarlyDenials() async throws {
        try await withHarness { h in
            let w = try await h.world(limits: KeyLimits(models: ["gpt-5"]))
            let c = try await h.connect()
            let admitted = try await c.check(.make(w.digest, cost: 7_000))
            #expect(admitted.allowed)
            // A model the key may not use: kept under the empty model, its name not stored.
            #expect(try await c.check(.make(w.digest, model: "made-up-model", cost: 1)).reason == .modelNotAllowed)
            let limiter = Limiter(clock: .testFrozen)
            let given = try await h.redis.send(limiter.voidCommand(try h.name(admitted)))
            #expect(try limiter.parseVoid(given))
            try await h.store.revokeKey(org: w.org.id, w.key.key.id)
            try await Task.sleep(for: .milliseconds(50))
            var revoked = try await c.check(.make(w.digest, cost: 1))
            for _ in 0..<40 where revoked.reason != .keyRevoked {
                try await Task.sleep(for: .milliseconds(100))
                revoked = try await c.check(.make(w.digest, cost: 1))
            }
            #expect(revoked.reason == .keyRevoked)
            await c.close()
            let today = HistoryDay.of(ms: try await h.clockUs(org: w.org.id) / 1000)
            let entries = try await HistoryReader(redis: h.redis).entries(org: w.org.id, from: today, to: today)
            let byModel = Dictionary(uniqueKeysWithValues: entries.map { ($0.model, $0.counts) })
            #expect(Set(byModel.keys) == ["gpt-5", ""])
            let gpt = try #require(byModel["gpt-5"])
            #expect(gpt.admitted == 0 && gpt.openRequests == 0 && gpt.openSpend == 0 && gpt.openTokens == 0)
            #expect(gpt.denied == [.keyRevoked: 1])
            #expect(byModel[""]?.denied == [.modelNotAllowed: 1])
            #expect(entries.allSatisfy { $0.projectID == w.project.id && $0.keyID == w.key.key.id })
            // Record and index expire together, the retention after the day ends.
            let ttl = try await h.redis.send(RedisCommand("PEXPIRETIME", Keyspace.history(w.org.id, day: today, key: w.key.key.id, model: "gpt-5"))).int
            let indexTTL = try await h.redis.send(RedisCommand("PEXPIRETIME", Keyspace.historyIndex(w.org.id, day: today))).int
            #expect(ttl == (today + 1) * Self.dayMs + Int64(HistoryRetention.standard.days) * Self.dayMs)
            #expect(indexTTL == ttl)
        }
    }

    @Test("budget alerts: 50, 80 and 100 % recorded once per window, in the audit log, the step's reply and the metrics")
    func budgetAlerts() async throws {
        try await withHarness { h in
            let w = try await h.world(project: ([], nil, nil, 2_000), limits: KeyLimits(budget: 1_000, period: .daily))
            let c = try await h.connect()
            let org = w.org.id, key = w.key.key.id, project = w.project.id
            let limiter = Limiter(clock: .testFrozen)
            func actions() async throws -> [String] {
                let entries = try await AuditLog(redis: h.redis).read(org: org, limit: 100)
                return entries.filter { $0.actor == "bursard" }.map { "\($0.action) \($0.target)" }.sorted()
            }
            func counted(_ bit: Int) -> Int { h.engine.stats.budgetAlerts[bit].count }
            // Key 40 %: nothing; 60 %: the key's 50 %.
            let a = try await c.check(.make(w.digest, cost: 400))
            #expect(a.allowed)
            #expect(try await actions().isEmpty)
            #expect(try await c.check(.make(w.digest, cost: 200)).allowed)
            #expect(try await actions() == ["budget.50 key:\(key)"])
            #expect(counted(0) == 1)
            // Released back to 20 % and up to 60 % again: the window's 50 % is not recorded twice.
            #expect(try await c.release(a.reservation).status == .applied)
            #expect(try await c.check(.make(w.digest, cost: 400)).allowed)
            #expect(try await actions() == ["budget.50 key:\(key)"])
            #expect(counted(0) == 1)
            // A SETTLE above its estimate (key 700 → 1,050 of 1,000; project 700 → 1,050 of 2,000)
            // crosses the key's 80 and 100 % and the project's 50 % at once.
            let b = try await c.check(.make(w.digest, cost: 100))
            #expect(b.allowed)
            let settle = try await h.redis.send(limiter.settleCommand(SettleRequest(reservation: try h.name(b), inputTokens: 1, outputTokens: 1, cost: 450)))
            #expect(try limiter.parseSettle(settle).status == .applied)
            #expect(try limiter.parseSettle(settle).costDelta == 350)
            #expect(limiter.settleAlerts(settle) == [.key80, .key100, .project50])
            // Applied, the reply is one string (status, deltas, alerts as four 64-bit integers);
            // anything else the array of the first three, which crosses nothing.
            if case .bulk(let packed) = settle { #expect(packed.count == 32) } else { Issue.record("not packed: \(settle)") }
            let again = try await h.redis.send(limiter.settleCommand(SettleRequest(reservation: try h.name(b), inputTokens: 1, outputTokens: 1, cost: 450)))
            let againStatus = try limiter.parseSettle(again).status
            #expect(again.array?.count == 3 && againStatus == .alreadySettled && limiter.settleAlerts(again) == [])
            #expect(try await actions() == ["budget.100 key:\(key)", "budget.50 key:\(key)", "budget.50 project:\(project)", "budget.80 key:\(key)"])
            let dayStart = SpendWindow.containing(try await h.clockUs(org: org) / 1000, period: .daily).startMs
            #expect(try await HistoryReader(redis: h.redis).alerts(window: Keyspace.keySpend(org, key, window: String(dayStart))) == [50, 80, 100])
            // The next day is a new window for the key (60 %: its 50 % again); the project's month
            // goes on (1,650 of 2,000: its 80 %).
            try await h.advance(org: org, by: .seconds(86_400))
            #expect(try await c.check(.make(w.digest, cost: 600)).allowed)
            #expect(try await actions().filter { $0 == "budget.50 key:\(key)" }.count == 2)
            #expect(try await actions().contains("budget.80 project:\(project)"))
            #expect(counted(0) == 2 && counted(4) == 1)
            await c.close()
        }
    }
}

extension SplitMix64 {
    /// A number in 0..<n, from the next value (modulo: the small bias does not matter here), so a
    /// failing run can be replayed from its seed.
    mutating func next(upTo n: UInt64) -> UInt64 { next() % n }
}
