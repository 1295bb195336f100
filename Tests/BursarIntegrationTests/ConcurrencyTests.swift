import BursarClient
import BursarRedis
import BursarStore
import BursarWire
import Foundation
import Testing

/// Three real bursard processes on one Redis, 200 concurrent connections, one key: no
/// over-admission, and the counters in Redis equal exactly what was admitted.
@Suite("exactness under concurrency, three bursard processes", .serialized)
struct ConcurrencyTests {
    struct Admission: Sendable {
        var reservation: ReservationID
        var cost: Int64
        var settledCost: Int64?
    }

    struct Outcome: Sendable {
        var admitted: [Admission] = []
        var denied: [DenyReason: Int] = [:]
    }

    /// Runs `connections` clients spread over the instances for `seconds`, each sending CHECKs
    /// back to back; `settle` decides per admission whether to settle it and at what cost.
    func hammer(
        ports: [Int], connections: Int, seconds: Double, digest: KeyDigest, cost: @escaping @Sendable (Int) -> Int64,
        settle: @escaping @Sendable (Int64) -> Int64? = { _ in nil }
    ) async throws -> Outcome {
        let clients = try await withThrowingTaskGroup(of: BursarConnection.self) { group in
            for i in 0..<connections {
                group.addTask { try await BursarConnection.connect(host: "127.0.0.1", port: ports[i % ports.count]) }
            }
            var all: [BursarConnection] = []
            for try await c in group { all.append(c) }
            return all
        }
        let end = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        let outcome = try await withThrowingTaskGroup(of: Outcome.self) { group in
            for (i, client) in clients.enumerated() {
                group.addTask {
                    var local = Outcome()
                    var n = i
                    while ContinuousClock.now < end {
                        n += connections
                        let c = cost(n)
                        let r = try await client.check(.make(digest, input: 1, output: 1, cost: c))
                        if r.allowed {
                            var a = Admission(reservation: r.reservation, cost: c)
                            if let actual = settle(c) {
                                let s = try await client.settle(SettleRequest(reservation: r.reservation, inputTokens: 1, outputTokens: 1, cost: actual))
                                #expect(s.status == .applied)
                                a.settledCost = actual
                            }
                            local.admitted.append(a)
                        } else {
                            local.denied[r.reason, default: 0] += 1
                        }
                    }
                    return local
                }
            }
            var total = Outcome()
            for try await part in group {
                total.admitted += part.admitted
                for (k, v) in part.denied { total.denied[k, default: 0] += v }
            }
            return total
        }
        for c in clients { await c.close() }
        return outcome
    }

    func withFleet(_ body: (Harness, [Int]) async throws -> Void) async throws {
        try await withHarness { h in
            var fleet: [BursardProcess] = []
            defer { for b in fleet { b.stop() } }
            for _ in 0..<3 { fleet.append(try await BursardProcess(redis: h.redisServer.endpoint, extraArguments: ["--deadline-ms", "10000"])) }
            try await body(h, fleet.map(\.port))
        }
    }

    /// Sum of costs admitted, and the spend counter of the key's window in Redis.
    func keySpend(_ h: Harness, _ o: Outcome) async throws -> Int64 {
        guard let first = o.admitted.first else { return 0 }
        let kw = ReservationRecord(reply: try await h.redis.send(
            RedisCommand("GET", try h.recordKey(first.reservation))))?.keyWindow ?? ""
        return try await h.integer(kw)
    }

    @Test("budget B: admitted estimates sum to at most B, and Redis holds exactly that sum")
    func budget() async throws {
        try await withFleet { h, ports in
            let budget: Int64 = 1_000_000
            let w = try await h.world(metered: true, credits: 5_000_000, limits: KeyLimits(budget: budget, rpm: 100_000))
            let o = try await hammer(ports: ports, connections: 200, seconds: 2.5, digest: w.digest) { n in Int64(1 + (n * 7919) % 20_000) }
            let admittedCost = o.admitted.reduce(0) { $0 + $1.cost }
            #expect(admittedCost <= budget)
            #expect((o.denied[.keyBudget] ?? 0) > 0, "the budget must have been the binding limit")
            #expect(o.denied.keys.allSatisfy { $0 == .keyBudget }, "\(o.denied)")
            // Tight: the budget was not left with room for the cheapest refused request class.
            #expect(budget - admittedCost < 20_000)
            #expect(try await keySpend(h, o) == admittedCost)
            #expect(try await h.store.credits(w.org.id) == 5_000_000 - admittedCost)
            let sequences = Set(try o.admitted.map { try h.name($0.reservation).sequence })
            #expect(sequences.count == o.admitted.count, "reservation ids are unique")
        }
    }

    @Test("RPM R: admissions over any interval t are at most R + R·t/60 in Redis time")
    func rpm() async throws {
        try await withFleet { h, ports in
            let rpm: Int64 = 600
            let w = try await h.world(limits: KeyLimits(rpm: rpm))
            let o = try await hammer(ports: ports, connections: 200, seconds: 3, digest: w.digest) { _ in 1 }
            #expect((o.denied[.keyRPM] ?? 0) > 0)
            #expect(o.admitted.count >= Int(rpm), "a full bucket admits R at once")
            // Admission times as Redis saw them (the script records them in µs).
            var times: [Int64] = []
            for a in o.admitted {
                let at = ReservationRecord(reply: try await h.redis.send(RedisCommand("GET", try h.recordKey(a.reservation))))?.createdAtUs
                times.append(try #require(at))
            }
            times.sort()
            var worst: Double = 0
            for i in times.indices {
                for j in i..<times.count {
                    let count = Double(j - i + 1)
                    let allowed = Double(rpm) + Double(rpm) * Double(times[j] - times[i]) / 60_000_000
                    worst = max(worst, count - allowed)
                }
            }
            #expect(worst <= 0, "an interval admitted \(worst) more than the contract allows")
            let total = Double(times.last! - times.first!) / 60_000_000
            #expect(Double(o.admitted.count) <= Double(rpm) * (1 + total))
            #expect(try await keySpend(h, o) == Int64(o.admitted.count))
        }
    }

    @Test("with SETTLE in the mix, Redis holds exactly the settled actuals plus the unsettled estimates")
    func settledLedger() async throws {
        try await withFleet { h, ports in
            let w = try await h.world(metered: true, credits: 10_000_000, limits: KeyLimits(budget: 2_000_000))
            let o = try await hammer(
                ports: ports, connections: 200, seconds: 2.5, digest: w.digest, cost: { n in Int64(100 + (n * 31) % 5_000) },
                settle: { c in c % 3 == 0 ? nil : (c % 3 == 1 ? c / 2 : c + 777) })
            let ledger = o.admitted.reduce(0) { $0 + ($1.settledCost ?? $1.cost) }
            #expect(o.admitted.contains { $0.settledCost == nil } && o.admitted.contains { $0.settledCost != nil })
            #expect(try await keySpend(h, o) == ledger)
            #expect(try await h.store.credits(w.org.id) == 10_000_000 - ledger)
        }
    }
}
