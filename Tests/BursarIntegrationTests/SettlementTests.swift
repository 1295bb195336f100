import BursarClient
import BursarRedis
@_spi(Testing) import BursarStore
import BursarWire
import Testing

/// SETTLE and RELEASE: exactly-once adjustment of every counter a reservation touched.
@Suite("SETTLE and RELEASE against real Redis")
struct SettlementTests {
    /// The counters one reservation moves, read straight from Redis.
    struct Counters: Equatable {
        var keySpend: Int64
        var projectSpend: Int64
        var credits: Int64
        var keyTPMLevel: Int64
        var projectTPMLevel: Int64
    }

    func counters(_ h: Harness, _ w: Harness.World, _ r: CheckResult) async throws -> Counters {
        let reservation = ReservationRecord(reply: try await h.redis.send(
            RedisCommand("GET", try h.recordKey(r))))
        let kw = reservation?.keyWindow ?? "", pw = reservation?.projectWindow ?? ""
        func level(_ scope: String, _ id: UInt64) async throws -> Int64 {
            let value = try await h.redis.send(RedisCommand("GET", Keyspace.buckets(w.org.id, scope: scope, id: id)))
            return try #require(RateBuckets(reply: value)).tpmLevel
        }
        return Counters(
            keySpend: try await h.integer(kw), projectSpend: try await h.integer(pw),
            credits: try await h.store.credits(w.org.id),
            keyTPMLevel: try await level("k", w.key.key.id), projectTPMLevel: try await level("p", w.project.id))
    }

    func world(_ h: Harness) async throws -> Harness.World {
        try await h.world(
            metered: true, credits: 1_000_000, project: ([], nil, 100_000, 500_000),
            limits: KeyLimits(budget: 100_000, period: .daily, tpm: 10_000))
    }

    @Test("SETTLE below the estimate returns the difference on every counter")
    func settleDown() async throws {
        try await withHarness { h in
            let w = try await world(h)
            let c = try await h.connect()
            let r = try await c.check(.make(w.digest, input: 100, output: 900, cost: 5_000))
            #expect(r.allowed)
            let before = try await counters(h, w, r)
            #expect(before.keySpend == 5_000 && before.projectSpend == 5_000 && before.credits == 995_000)
            #expect(before.keyTPMLevel == 1_000 * 60_000_000)
            let s = try await c.settle(SettleRequest(reservation: r.reservation, inputTokens: 100, outputTokens: 200, cost: 1_500))
            #expect(s.status == .applied && s.costDelta == -3_500 && s.tokenDelta == -700)
            let after = try await counters(h, w, r)
            #expect(after == Counters(keySpend: 1_500, projectSpend: 1_500, credits: 998_500,
                                      keyTPMLevel: 300 * 60_000_000, projectTPMLevel: 300 * 60_000_000))
            await c.close()
        }
    }

    @Test("a scope's RPM and TPM buckets are one value: SETTLE moves the TPM bucket and leaves the RPM bucket as the CHECK wrote it")
    func bucketPair() async throws {
        try await withHarness { h in
            let w = try await h.world(limits: KeyLimits(rpm: 60, tpm: 6_000))
            let c = try await h.connect()
            let name = Keyspace.buckets(w.org.id, scope: "k", id: w.key.key.id)
            func pair() async throws -> RateBuckets { try #require(RateBuckets(reply: try await h.redis.send(RedisCommand("GET", name)))) }
            let t0 = try await h.clockUs(org: w.org.id)
            let r = try await c.check(.make(w.digest, input: 100, output: 500))
            let checked = try await pair()
            #expect(checked.rpmLevel == RateBuckets.scale && checked.rpmUpdatedUs == t0)
            #expect(checked.tpmLevel == 600 * RateBuckets.scale && checked.tpmUpdatedUs == t0)
            // Drains empty when the TPM bucket does: 600 of 6,000 per minute, 6 s.
            #expect(checked.drainedAtUs == t0 + 6_000_000)
            try await h.advance(org: w.org.id, by: .seconds(1))
            #expect(try await c.settle(SettleRequest(reservation: r.reservation, inputTokens: 100, outputTokens: 100, cost: 0)).status == .applied)
            let settled = try await pair()
            // RPM untouched; TPM drained for 1 s (100 tokens) then given back 400: 100 left, now.
            #expect(settled.rpmLevel == checked.rpmLevel && settled.rpmUpdatedUs == t0)
            #expect(settled.tpmLevel == 100 * RateBuckets.scale && settled.tpmUpdatedUs == t0 + 1_000_000)
            // The drain time never moves earlier, so the RPM bucket (1 s) is never cut short.
            #expect(settled.drainedAtUs == checked.drainedAtUs)
            await c.close()
        }
    }

    @Test("a reservation an older bursard wrote as a hash (open across an upgrade) is settled exactly once and rewritten packed")
    func reservationFromBeforeUpgrade() async throws {
        try await withHarness { h in
            let w = try await world(h)
            let c = try await h.connect()
            let r = try await c.check(.make(w.digest, input: 100, output: 900, cost: 5_000))
            #expect(r.allowed)
            let name = try h.recordKey(r)
            // Rewrite the record as the hash the layout before 2026-12-02 kept, field by field,
            // same TTL (that layout had no budgets and no model, so no history either).
            let written = try #require(ReservationRecord(reply: try await h.redis.send(RedisCommand("GET", name))))
            #expect(written.packed && written.status == "open" && written.tokens == 1_000 && written.cost == 5_000)
            var hset = RedisCommand("HSET", name)
            for (f, v) in zip(ReservationRecord.textFieldNames, written.textFields) { hset.append(f); hset.append(v) }
            _ = try await h.redis.send([RedisCommand("DEL", name), hset, RedisCommand("PEXPIRE", name, "4000000")])
            #expect(try await h.redis.send(RedisCommand("TYPE", name)) == .status("hash"))

            let s = try await c.settle(SettleRequest(reservation: r.reservation, inputTokens: 100, outputTokens: 200, cost: 1_500))
            #expect(s.status == .applied && s.costDelta == -3_500 && s.tokenDelta == -700)
            let after = try await counters(h, w, r)
            #expect(after == Counters(keySpend: 1_500, projectSpend: 1_500, credits: 998_500,
                                      keyTPMLevel: 300 * 60_000_000, projectTPMLevel: 300 * 60_000_000))
            let record = try #require(ReservationRecord(reply: try await h.redis.send(RedisCommand("GET", name))))
            #expect(record.packed && record.status == "settled" && record.actualCost == 1_500 && record.actualTokens == 300)
            #expect(record.model == nil && record.keyWindow == written.keyWindow && record.keyTPM == 10_000)
            #expect(try await h.redis.send(RedisCommand("PTTL", name)).int ?? 0 > 3_000_000)
            #expect(try await c.settle(SettleRequest(reservation: r.reservation, inputTokens: 1, outputTokens: 1, cost: 1)).status == .alreadySettled)
            await c.close()
        }
    }

    @Test("reservations in the text layout of 2026-12-05 (open across an upgrade) are settled, released and voided exactly once, their history moved, and rewritten packed")
    func textReservationFromBeforeUpgrade() async throws {
        try await withHarness { h in
            let w = try await world(h)
            let c = try await h.connect()
            let today = HistoryDay.of(ms: try await h.clockUs(org: w.org.id) / 1000)
            func history() async throws -> HistoryCounts {
                var sum = HistoryCounts()
                for e in try await HistoryReader(redis: h.redis).entries(org: w.org.id, from: today, to: today) where e.keyID == w.key.key.id {
                    sum.add(e.counts)
                }
                return sum
            }
            // Three admissions, each record rewritten as the text a bursard of 2026-12-05 wrote.
            var admitted: [CheckResult] = []
            for _ in 0..<3 {
                let r = try await c.check(.make(w.digest, input: 100, output: 900, cost: 5_000))
                #expect(r.allowed)
                let name = try h.recordKey(r)
                let written = try #require(ReservationRecord(reply: try await h.redis.send(RedisCommand("GET", name))))
                #expect(written.packed && written.model != nil && written.keyBudget == 100_000 && written.projectBudget == 500_000)
                let text = written.textLayout
                #expect(ReservationRecord(text) == { var t = written; t.packed = false; return t }(), "\(text)")
                _ = try await h.redis.send(RedisCommand("SET", name, text, "KEEPTTL"))
                admitted.append(r)
            }
            let before = try await counters(h, w, admitted[0])
            #expect(before.keySpend == 15_000 && before.credits == 985_000)
            let open = try await history()
            #expect(open.admitted == 3 && open.openRequests == 3 && open.openSpend == 15_000)

            let s = try await c.settle(SettleRequest(reservation: admitted[0].reservation, inputTokens: 100, outputTokens: 200, cost: 1_500))
            #expect(s.status == .applied && s.costDelta == -3_500 && s.tokenDelta == -700)
            #expect(try await c.release(admitted[1].reservation).status == .applied)
            let limiter = Limiter(clock: .testFrozen)
            #expect(try limiter.parseVoid(try await h.redis.send(limiter.voidCommand(try h.name(admitted[2])))))

            let after = try await counters(h, w, admitted[0])
            #expect(after.keySpend == 1_500 && after.projectSpend == 1_500 && after.credits == 998_500)
            let moved = try await history()
            #expect(moved.admitted == 2 && moved.settled == 1 && moved.released == 1)
            #expect(moved.settledSpend == 1_500 && moved.settledTokens == 300 && moved.openSpend == 0 && moved.openRequests == 0)
            var states: [ReservationRecord] = []
            for r in admitted {
                states.append(try #require(ReservationRecord(reply: try await h.redis.send(RedisCommand("GET", try h.recordKey(r))))))
            }
            #expect(states.map(\.status) == ["settled", "released", "void"] && states.allSatisfy(\.packed))
            #expect(states[0].actualCost == 1_500 && states[0].model == states[1].model && states[0].keyBudget == 100_000)
            #expect(try await c.settle(SettleRequest(reservation: admitted[0].reservation, inputTokens: 1, outputTokens: 1, cost: 1)).status == .alreadySettled)
            #expect(try await c.release(admitted[1].reservation).status == .alreadyReleased)
            await c.close()
        }
    }

    @Test("a step on a packed reservation changes it in place: SETTLE its status and actuals, RELEASE and VOID its status byte; its names, its other fields and its expiry stay as the CHECK wrote them")
    func packedInPlace() async throws {
        try await withHarness { h in
            let w = try await world(h)
            let c = try await h.connect()
            var admitted: [CheckResult] = []
            for _ in 0..<3 {
                let r = try await c.check(.make(w.digest, input: 100, output: 900, cost: 5_000))
                #expect(r.allowed)
                admitted.append(r)
            }
            func raw(_ r: CheckResult) async throws -> [UInt8] {
                guard case .bulk(let b) = try await h.redis.send(RedisCommand("GET", try h.recordKey(r))) else {
                    Issue.record("no record for \(r.reservation.hex)")
                    return []
                }
                return b
            }
            func pttl(_ r: CheckResult) async throws -> Int64 {
                try #require(try await h.redis.send(RedisCommand("PTTL", try h.recordKey(r))).int)
            }
            var before: [[UInt8]] = [], ttl: [Int64] = []
            for r in admitted {
                before.append(try await raw(r))
                ttl.append(try await pttl(r))
            }
            #expect(try await c.settle(SettleRequest(reservation: admitted[0].reservation, inputTokens: 100, outputTokens: 200, cost: 1_500)).status == .applied)
            #expect(try await c.release(admitted[1].reservation).status == .applied)
            let limiter = Limiter(clock: .testFrozen)
            #expect(try limiter.parseVoid(try await h.redis.send(limiter.voidCommand(try h.name(admitted[2])))))
            // Status byte 9 (after the mark), the actual tokens and cost at 76..<92.
            let changed: [Set<Int>] = [Set([9]).union(76..<92), [9], [9]]
            for (i, r) in admitted.enumerated() {
                let after = try await raw(r)
                #expect(after.count == before[i].count)
                let differing = Set(zip(before[i], after).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset))
                #expect(differing.isSubset(of: changed[i]), "record \(i): bytes \(differing.sorted()) changed")
                let left = try await pttl(r)
                #expect(left <= ttl[i] && left > ttl[i] - 60_000, "record \(i): PTTL \(ttl[i]) then \(left)")
            }
            let settled = try #require(ReservationRecord(reply: try await h.redis.send(RedisCommand("GET", try h.recordKey(admitted[0])))))
            let open = try #require(ReservationRecord(reply: .bulk(before[0])))
            #expect(settled.status == "settled" && settled.actualTokens == 300 && settled.actualCost == 1_500)
            #expect({ var s = settled; s.status = open.status; s.actualTokens = nil; s.actualCost = nil; return s }() == open)
            var states: [ReservationRecord] = []
            for r in admitted.dropFirst() {
                states.append(try #require(ReservationRecord(reply: try await h.redis.send(RedisCommand("GET", try h.recordKey(r))))))
            }
            #expect(states.map(\.status) == ["released", "void"] && states.allSatisfy { $0.actualCost == nil && $0.packed })
            await c.close()
        }
    }

    @Test("a sweep voids what one dead epoch left undelivered, in the set and in an earlier release's sorted set, and nothing of another epoch")
    func sweepVoidsOneEpoch() async throws {
        try await withHarness { h in
            let w = try await world(h)
            let limiter = h.engine.limiter
            let identity = KeyIdentity(orgID: w.org.id, keyID: w.key.key.id)
            let dead = ReservationSequence.maxEpoch - 1, alive = ReservationSequence.maxEpoch - 2
            // Admissions sent straight to Redis, never confirmed: four of the dead epoch (the
            // counters at both ends of its range included), one of a live one.
            let deadSequences = [1, 2, 3, ReservationSequence.maxCounter].map { ReservationSequence.make(epoch: dead, counter: $0) }
            let aliveSequence = ReservationSequence.make(epoch: alive, counter: 1)
            for sequence in deadSequences + [aliveSequence] {
                let reply = try await h.redis.send(limiter.checkCommand(.make(w.digest, cost: 1_000), identity: identity, sequence: sequence))
                #expect(CheckReplySlots(reply)?[.outcome] == 1, "admitted: \(reply)")
            }
            let undelivered = Keyspace.undelivered(w.org.id), legacy = Keyspace.legacyUndelivered(w.org.id)
            #expect(try await h.redis.send(RedisCommand("SCARD", undelivered)).int == 5)
            #expect(try await h.redis.send(RedisCommand("OBJECT", "ENCODING", undelivered)).string == "intset")
            // One of the dead epoch's as a bursard of an earlier release marked it: in the sorted set.
            let old = String(deadSequences[0])
            _ = try await h.redis.send([RedisCommand("SREM", undelivered, old), RedisCommand("ZADD", legacy, String(dead), old)])
            let window = try #require(ReservationRecord(reply: try await h.redis.send(
                RedisCommand("GET", Keyspace.reservation(w.org.id, aliveSequence))))?.keyWindow)
            #expect(try await h.integer(window) == 5_000)

            // Two at a time, as the reconciler asks, until a sweep comes back short.
            var swept: [Int] = []
            repeat {
                swept.append(Int(try #require(try await h.redis.send(limiter.sweepCommand(org: w.org.id, epoch: dead, limit: 2)).int)))
            } while swept.last == 2
            #expect(swept == [2, 2, 0])
            #expect(try await h.integer(window) == 1_000)
            #expect(try await h.redis.send(RedisCommand("ZCARD", legacy)).int == 0)
            #expect(try await h.redis.send(RedisCommand("SMEMBERS", undelivered)).array?.compactMap(\.string) == [String(aliveSequence)])
            for sequence in deadSequences {
                let record = ReservationRecord(reply: try await h.redis.send(RedisCommand("GET", Keyspace.reservation(w.org.id, sequence))))
                #expect(record?.status == "swept", "\(sequence): \(String(describing: record))")
            }
        }
    }

    @Test("SETTLE above the estimate charges the difference and later CHECKs see it")
    func settleUp() async throws {
        try await withHarness { h in
            let w = try await world(h)
            // The key's budget is daily, and the test moves the clock a minute on: frozen at noon
            // (UTC) of today, that minute never crosses midnight (CI once ran it at 23:59:30).
            let nowMs = try await h.redisTimeUs() / 1_000
            try await h.setClock(org: w.org.id, toMs: nowMs - nowMs % 86_400_000 + 43_200_000)
            let c = try await h.connect()
            let r = try await c.check(.make(w.digest, input: 10, output: 10, cost: 1_000))
            let s = try await c.settle(SettleRequest(reservation: r.reservation, inputTokens: 5_000, outputTokens: 5_000, cost: 120_000))
            #expect(s.status == .applied && s.costDelta == 119_000 && s.tokenDelta == 9_980)
            let after = try await counters(h, w, r)
            #expect(after.keySpend == 120_000 && after.projectSpend == 120_000 && after.credits == 880_000)
            #expect(after.keyTPMLevel == 10_000 * 60_000_000)
            // The key is now over its daily budget (and its TPM): the next CHECK is denied.
            let next = try await c.check(.make(w.digest, input: 1, output: 0, cost: 0))
            #expect(next.reason == .keyTPM)
            try await h.advance(org: w.org.id, by: .seconds(60))
            let later = try await c.check(.make(w.digest, input: 1, output: 0, cost: 1))
            #expect(later.reason == .keyBudget && later.keyBudgetRemaining == 100_000 - 120_000, "\(later)")
            await c.close()
        }
    }

    @Test("a repeated SETTLE changes nothing and says it was already settled")
    func duplicateSettle() async throws {
        try await withHarness { h in
            let w = try await world(h)
            let c = try await h.connect()
            let r = try await c.check(.make(w.digest, cost: 2_000))
            let settle = SettleRequest(reservation: r.reservation, inputTokens: 10, outputTokens: 5, cost: 1_000)
            #expect(try await c.settle(settle).status == .applied)
            let once = try await counters(h, w, r)
            let again = try await c.settle(settle)
            #expect(again.status == .alreadySettled && again.costDelta == 0 && again.tokenDelta == 0)
            #expect(try await c.release(r.reservation).status == .alreadySettled)
            #expect(try await counters(h, w, r) == once)
            await c.close()
        }
    }

    @Test("RELEASE returns tokens and cost but the request still counts toward RPM")
    func release() async throws {
        try await withHarness { h in
            let w = try await h.world(metered: true, credits: 10_000, limits: KeyLimits(budget: 10_000, rpm: 2, tpm: 1_000))
            let c = try await h.connect()
            let r = try await c.check(.make(w.digest, input: 300, output: 300, cost: 4_000))
            #expect(r.requestsRemaining == 1 && r.tokensRemaining == 400)
            let rel = try await c.release(r.reservation)
            #expect(rel.status == .applied && rel.costDelta == -4_000 && rel.tokenDelta == -600)
            #expect(try await h.store.credits(w.org.id) == 10_000)
            let next = try await c.check(.make(w.digest, input: 300, output: 300, cost: 10_000))
            #expect(next.allowed && next.requestsRemaining == 0 && next.tokensRemaining == 400 && next.keyBudgetRemaining == 0)
            #expect(try await c.release(r.reservation).status == .alreadyReleased)
            let s = try await c.settle(SettleRequest(reservation: r.reservation, inputTokens: 1, outputTokens: 1, cost: 1))
            #expect(s.status == .alreadyReleased)
            #expect(try await h.store.credits(w.org.id) == 0)
            await c.close()
        }
    }

    @Test("an unsettled reservation keeps its estimate past its TTL; a late SETTLE says expired and moves nothing")
    func expiry() async throws {
        try await withHarness(reservationTTLMs: 60_000) { h in
            let w = try await world(h)
            let c = try await h.connect()
            let r = try await c.check(.make(w.digest, input: 10, output: 10, cost: 7_000))
            let held = try await counters(h, w, r)
            try await h.advance(org: w.org.id, by: .seconds(59))
            let open = ReservationRecord(reply: try await h.redis.send(RedisCommand("GET", try h.recordKey(r))))
            #expect(open?.status == "open")
            try await h.advance(org: w.org.id, by: .seconds(1))
            let late = try await c.settle(SettleRequest(reservation: r.reservation, inputTokens: 1, outputTokens: 1, cost: 1))
            #expect(late.status == .expired && late.costDelta == 0)
            #expect(try await c.release(r.reservation).status == .expired)
            let after = try await counters(h, w, r)
            #expect(after.keySpend == held.keySpend && after.credits == held.credits && after.keySpend == 7_000)
            // The record outlives its TTL by an hour in real time, then the id is simply unknown.
            let ttl = try await h.redis.send(RedisCommand("PTTL", try h.recordKey(r))).int ?? 0
            #expect(ttl > 3_600_000 && ttl <= 3_660_000)
            await c.close()
        }
    }

    @Test("an unknown reservation id is reported and moves nothing")
    func unknown() async throws {
        try await withHarness { h in
            let w = try await world(h)
            let c = try await h.connect()
            let ghost = ReservationID(orgID: w.org.id, sequence: 999)
            #expect(try await c.settle(SettleRequest(reservation: ghost, inputTokens: 1, outputTokens: 1, cost: 1)).status == .unknown)
            #expect(try await c.release(ghost).status == .unknown)
            #expect(try await h.store.credits(w.org.id) == 1_000_000)
            await c.close()
        }
    }

    @Test("SETTLE charges the window the reservation was made in, even after it rolled over")
    func settleAcrossWindow() async throws {
        try await withHarness { h in
            let w = try await world(h)
            let c = try await h.connect()
            try await h.setClock(org: w.org.id, toMs: 1_795_823_999_000)  // 2026-11-27T23:59:59Z
            let r = try await c.check(.make(w.digest, cost: 10_000))
            try await h.advance(org: w.org.id, by: .seconds(2))  // next day
            #expect(try await c.settle(SettleRequest(reservation: r.reservation, inputTokens: 1, outputTokens: 1, cost: 30_000)).status == .applied)
            #expect(try await h.integer(Keyspace.keySpend(w.org.id, w.key.key.id, window: "1795737600000")) == 30_000)
            let fresh = try await c.check(.make(w.digest, cost: 100))
            #expect(fresh.keyBudgetRemaining == 100_000 - 100)
            await c.close()
        }
    }
}
