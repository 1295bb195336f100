import BursarClient
import BursarRedis
@_spi(Testing) import BursarServer
import BursarStore
import BursarWire
import Foundation
import NIOCore
import Testing

/// Redis stopping, pausing, restarting and forgetting its scripts: every decision is answered
/// within the deadline, and nothing is lost or counted twice.
@Suite("store faults against real Redis")
struct ResilienceTests {
    /// One allowed CHECK while Redis is healthy. These tests run with short deadlines, so on a
    /// loaded machine a first attempt may time out (and is released, costing nothing); retry.
    func warmUp(_ c: BursarConnection, _ digest: KeyDigest, cost: Int64 = 0) async throws -> Bool {
        try await checkUntilAnswered(c, .make(digest, cost: cost), attempts: 50, pause: .milliseconds(20)).allowed
    }

    @Test("with Redis down, CHECK answers store_unavailable promptly instead of hanging")
    func redisDown() async throws {
        try await withHarness(deadline: .milliseconds(100)) { h in
            let w = try await h.world()
            let c = try await h.connect()
            #expect(try await warmUp(c, w.digest))
            let failedBefore = storeFailures(h)
            h.redisServer.stop()
            // Bounded by the deadline (100 ms), not by TCP or hiredis timeouts: a request waiting
            // on Redis's I/O timeout (5 s in this harness) would take that long. Each answer is
            // timed on the client's event loop, where it arrives, not after the test's task
            // resumes: under the full suite the two cooperative threads are often held by other
            // tests' blocking process waits, which once made a prompt answer look 1-3 s late.
            func timed(_ body: Frame.Body) async throws -> (Frame, TimeAmount) {
                let sent = NIODeadline.now()
                return try await c.request(body).map { ($0, NIODeadline.now() - sent) }.get()
            }
            for _ in 0..<5 {
                let (answer, took) = try await timed(.check(.make(w.digest)))
                guard case .checkResult(let r) = answer.body else {
                    Issue.record("unexpected answer \(answer)")
                    return
                }
                #expect(r.reason == .storeUnavailable)
                #expect(took < .seconds(1), "\(took)")
            }
            let (answer, took) = try await timed(.settle(SettleRequest(
                reservation: h.unmadeID(org: w.org.id), inputTokens: 1, outputTokens: 1, cost: 1)))
            guard case .settleResult(let s) = answer.body else {
                Issue.record("unexpected answer \(answer)")
                return
            }
            #expect(s.status == .storeUnavailable)
            #expect(took < .seconds(1), "\(took)")
            // Each of the six answers counted once as a store failure: Redis gone (or the deadline
            // first, while the connection had not noticed yet), never as Redis answering an error.
            let failed = storeFailures(h).enumerated().map { $0.element - failedBefore[$0.offset] }
            #expect(failed[StoreFailureCause.deadline.rawValue] + failed[StoreFailureCause.connection.rawValue] == 6
                && failed[StoreFailureCause.error.rawValue] == 0, "\(failed)")
            await c.close()
        }
    }

    @Test("a CHECK that Redis admits after the deadline is answered unavailable and then released")
    func lateAdmissionIsReleased() async throws {
        try await withHarness(deadline: .milliseconds(100)) { h in
            let w = try await h.world(metered: true, credits: 50_000)
            let c = try await h.connect()
            #expect(try await warmUp(c, w.digest))  // resolve the digest while Redis is up
            // The warm-up's delivery confirmation goes to Redis just after its answer: stopped with
            // that round trip in flight, Redis would hold the CHECK behind it unsent (one round
            // trip per connection), and it would expire unsent instead of being admitted late.
            for _ in 0..<200 where h.engine.pendingDeliveryConfirmations > 0 || h.engine.unresolvedAttempts > 0 {
                try await Task.sleep(for: .milliseconds(5))
            }
            let lateBefore = h.engine.stats.lateAdmissionsReleased.load(ordering: .relaxed)
            let voidedBefore = h.engine.stats.unknownOutcomesVoided.load(ordering: .relaxed)
            let failedBefore = storeFailures(h)
            h.redisServer.signal(SIGSTOP)
            let r = try await c.check(.make(w.digest, cost: 20_000))
            #expect(r.reason == .storeUnavailable)
            // Counted as a deadline passed (Redis too late), not as a connection lost or an error.
            #expect(storeFailures(h).enumerated().map { $0.element - failedBefore[$0.offset] } == [1, 0, 0])
            try await Task.sleep(for: .milliseconds(300))
            h.redisServer.signal(SIGCONT)
            // The late admission is given back once: released when its reply comes late, or voided
            // when the connection it was sent on is lost first (its Redis I/O timeout passes on a
            // loaded machine): either way the credits come back to the full balance.
            func givenBack() -> Int {
                (h.engine.stats.lateAdmissionsReleased.load(ordering: .relaxed) - lateBefore)
                    + (h.engine.stats.unknownOutcomesVoided.load(ordering: .relaxed) - voidedBefore)
            }
            var credits: Int64 = -1
            for _ in 0..<100 {
                credits = try await h.store.credits(w.org.id)
                if credits == 50_000 && givenBack() == 1 { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            // If the CHECK never reached Redis (shed or expired unsent on a loaded machine), the
            // counts say so.
            let sent = "shed_deadline=\(h.redis.stats.shedDeadline.load(ordering: .relaxed)) "
                + "shed_queue=\(h.redis.stats.shedQueueDelay.load(ordering: .relaxed)) "
                + "expired=\(h.redis.stats.expiredBeforeSend.load(ordering: .relaxed)) "
                + "lost=\(h.redis.stats.connectionErrors.load(ordering: .relaxed)) voided=\(h.engine.stats.unknownOutcomesVoided.load(ordering: .relaxed))"
            #expect(credits == 50_000, "\(sent)")
            #expect(givenBack() == 1, "\(sent)")
            // The whole balance is there again. The harness's deadline is 100 ms, so on a loaded
            // machine this CHECK may itself miss it (store_unavailable): that is retried once
            // what it may have admitted late is given back too; a denial by a limit is not.
            var last = try await c.check(.make(w.digest, cost: 50_000))
            for _ in 0..<3 where last.reason == .storeUnavailable || last.reason == .overloaded {
                for _ in 0..<100 where try await h.store.credits(w.org.id) != 50_000 { try await Task.sleep(for: .milliseconds(20)) }
                last = try await c.check(.make(w.digest, cost: 50_000))
            }
            #expect(last.allowed, "\(last.reason) \(sent)")
            await c.close()
        }
    }

    @Test("Redis over its maxmemory: a CHECK is refused whole, answered store_unavailable, and moves nothing; under it again, admitted")
    func overMaxmemory() async throws {
        try await withHarness { h in
            let w = try await h.world(metered: true, credits: 10_000)
            let c = try await h.connect()
            #expect(try await warmUp(c, w.digest))  // cost 0: credits stay 10,000
            func reservations() async throws -> Int { try await h.redis.send(RedisCommand("KEYS", Keyspace.org(w.org.id) + "r:*")).array?.count ?? -1 }
            let before = try await reservations()
            let failedBefore = storeFailures(h)
            // One byte: every write is over the limit (noeviction), every read still served.
            try await h.redis.send(RedisCommand("CONFIG", "SET", "maxmemory", "1"))
            let refused: CheckResult
            do {
                refused = try await c.check(.make(w.digest, cost: 1_000))
            } catch {
                try await h.redis.send(RedisCommand("CONFIG", "SET", "maxmemory", "0"))
                throw error
            }
            let creditsWhileOver = try await h.store.credits(w.org.id)
            let reservationsWhileOver = try await reservations()
            try await h.redis.send(RedisCommand("CONFIG", "SET", "maxmemory", "0"))
            #expect(refused.reason == .storeUnavailable && !refused.allowed, "\(refused)")
            // Redis answered, with an error (OOM): counted as that, so that an operator tells a
            // refusing store from a slow or absent one.
            #expect(storeFailures(h).enumerated().map { $0.element - failedBefore[$0.offset] } == [0, 0, 1])
            #expect(creditsWhileOver == 10_000 && reservationsWhileOver == before, "credits \(creditsWhileOver), reservations \(before) -> \(reservationsWhileOver)")
            // Under the limit again, the same request is admitted and debited once.
            let admitted = try await checkUntilAnswered(c, .make(w.digest, cost: 1_000), attempts: 50, pause: .milliseconds(20))
            #expect(admitted.allowed, "\(admitted.reason)")
            await expectEventually(within: .seconds(2), "credits debited once") { (try? await h.store.credits(w.org.id)) == 9_000 }
            await c.close()
        }
    }

    @Test("after SCRIPT FLUSH and FUNCTION FLUSH the scripts and libraries are reloaded and the CHECK still succeeds")
    func noscript() async throws {
        try await withHarness { h in
            let w = try await h.world()
            let c = try await h.connect()
            #expect(try await c.check(.make(w.digest)).allowed)
            let reloadsBefore = h.redis.stats.scriptReloads.load(ordering: .relaxed)
            try await h.redis.send(RedisCommand("SCRIPT", "FLUSH"))
            try await h.redis.send(RedisCommand("FUNCTION", "FLUSH"))
            let r = try await c.check(.make(w.digest))
            #expect(try r.allowed && ReservationSequence.counter(of: h.name(r).sequence) == 2)
            // Counted from before the flush: the engine's own background steps (a heartbeat, a
            // sweep) run scripts on the same client and may meet the empty cache first (CI,
            // 2026-12-06). A reload loads every script, so each connection reloads at most once:
            // a few in all, never one per call.
            let reloads = h.redis.stats.scriptReloads.load(ordering: .relaxed) - reloadsBefore
            #expect(reloads >= 1 && reloads <= 4, "\(reloads) reloads")
            await c.close()
        }
    }

    @Test("Redis restarted empty: scripts reloaded, every key answers unknown_key (never a cached admission), old reservations unknown")
    func restartedEmpty() async throws {
        try await withHarness(deadline: .milliseconds(200)) { h in
            let w = try await h.world(metered: true, credits: 10_000)
            let c = try await h.connect()
            let before = try await checkUntilAnswered(c, .make(w.digest, cost: 1_000), attempts: 50, pause: .milliseconds(20))
            #expect(before.allowed)
            let reloads = h.redis.stats.scriptReloads.load(ordering: .relaxed)
            h.redisServer.stop()
            try h.redisServer.start(appendOnly: false)  // no AOF, no snapshot: an empty Redis
            // The digest is still cached, but the key is re-read inside the step: it is gone.
            let after = try await checkUntilAnswered(c, .make(w.digest, cost: 1_000), attempts: 100, pause: .milliseconds(50))
            #expect(after.reason == .unknownKey)
            #expect(h.redis.stats.scriptReloads.load(ordering: .relaxed) > reloads)
            // The unknown_key answer dropped the digest from the cache; it is now cached as unknown.
            #expect(try await c.check(.make(w.digest)).reason == .unknownKey)
            let settle = try await c.settle(SettleRequest(reservation: before.reservation, inputTokens: 1, outputTokens: 1, cost: 1))
            #expect(settle.status == .unknown)
            #expect(await h.engine.readiness() == nil)
            await c.close()
        }
    }

    @Test("a client that disconnects with CHECKs in flight: Redis's admissions are released, the counters end where they began")
    func clientGoneWithChecksInFlight() async throws {
        // Redis stays stopped until bursard has read the five CHECKs, which on a loaded machine can
        // take seconds: the deadline and the Redis I/O timeout are set far beyond that, so what
        // releases the admissions is the client's absence (this test's subject), never a deadline
        // passing (StallTests) or the Redis connection timing out (ResilienceTests' stall cases).
        try await withHarness(deadline: .seconds(120), redisIOTimeoutMs: 120_000) { h in
            let w = try await h.world(metered: true, credits: 100_000)
            let warm = try await h.connect()
            let first = try await warm.check(.make(w.digest, cost: 1_000))
            #expect(first.allowed)
            #expect(try await warm.release(first.reservation).status == .applied)
            await warm.close()
            let orphansBefore = h.engine.stats.orphanedAdmissionsReleased.load(ordering: .relaxed)

            h.redisServer.signal(SIGSTOP)
            let c = try await h.connect()
            let inFlight = (0..<5).map { _ in c.request(.check(.make(w.digest, cost: 7_000))) }
            // Read by bursard and sent toward Redis before the client closes: waited for, not
            // slept on (a loaded machine may take longer than any fixed sleep to read them).
            var read = 0
            for _ in 0..<500 where read < 5 {
                read = h.server.connectionStats.inFlight.load(ordering: .relaxed)
                if read < 5 { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(read == 5, "bursard read \(read) of the 5 CHECKs")
            await c.close()  // a full close: FIN, and nothing read from now on
            for future in inFlight { _ = try? await future.get() }
            // To bursard the FIN looks like a half-close, after which a client may still read: it
            // keeps the connection to answer. Redis resumes and admits all five (35,000 reserved);
            // the answers reach a closed socket, whose reset tells bursard nobody read them, so
            // each admission is released again.
            try await Task.sleep(for: .milliseconds(100))
            h.redisServer.signal(SIGCONT)
            var credits: Int64 = -1
            for _ in 0..<1500 {
                credits = try await h.store.credits(w.org.id)
                if credits == 100_000 && h.engine.stats.orphanedAdmissionsReleased.load(ordering: .relaxed) == orphansBefore + 5 { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            let stats = h.engine.stats
            let seen = "decisions by reason \(stats.decisions.map(\.count)), late admissions released \(stats.lateAdmissionsReleased.load(ordering: .relaxed)), unknown outcomes voided \(stats.unknownOutcomesVoided.load(ordering: .relaxed))"
            #expect(stats.orphanedAdmissionsReleased.load(ordering: .relaxed) == orphansBefore + 5, "\(seen)")
            #expect(credits == 100_000)
            #expect(stats.decisions[0].count == 6, "the warm-up and the five; \(seen)")
            var closed = false
            for _ in 0..<1500 where !closed {
                closed = h.server.openConnections == 0
                if !closed { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(closed)
        }
    }

    @Test("after a Redis restart with AOF, bursard reconnects on its own and the counters carry on")
    func restart() async throws {
        try await withHarness(deadline: .milliseconds(200), appendOnly: true) { h in
            let w = try await h.world(metered: true, credits: 10_000)
            let c = try await h.connect()
            #expect(try await warmUp(c, w.digest, cost: 3_000))
            h.redisServer.stop()
            #expect(try await c.check(.make(w.digest, cost: 3_000)).reason == .storeUnavailable)
            try h.redisServer.start(appendOnly: true)
            let result = try await checkUntilAnswered(c, .make(w.digest, cost: 3_000), attempts: 100, pause: .milliseconds(50))
            #expect(result.allowed)
            #expect(result.orgCreditsRemaining == 4_000)
            #expect(h.redis.stats.connects.load(ordering: .relaxed) >= 2)
            await c.close()
        }
    }
}

/// The engine's store failures so far, by `StoreFailureCause`.
private func storeFailures(_ h: Harness) -> [Int] {
    StoreFailureCause.allCases.map { h.engine.stats.storeFailures[$0.rawValue].count }
}
