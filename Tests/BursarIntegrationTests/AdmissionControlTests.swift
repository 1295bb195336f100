@testable import BursarRedis
@testable import BursarServer
import BursarStore
import Logging
import NIOCore
import Testing

/// The pieces of admission control without I/O: the gradient limit, the Redis queue's lanes and
/// its shedding (CoDel and deadlines), and the reservation sequence layout.
@Suite("admission control: the gradient limit, the queue's shedding, reservation sequences")
struct AdmissionControlTests {
    static let ms: Int64 = 1_000_000

    func limit(target: Int64 = 10, initial: Int = 100, min: Int = 4, max: Int = 1000) -> GradientLimit {
        GradientLimit(AdmissionConfiguration(latencyTarget: .milliseconds(target), initialLimit: initial, minLimit: min, maxLimit: max), nowNs: 0)
    }

    /// Acquires `n` slots and releases them all with `latencyMs`, the last one at `atMs`.
    func cycle(_ l: inout GradientLimit, _ n: Int, latencyMs: Int64, missed: Bool = false, atMs: Int64) {
        var taken = 0
        for _ in 0..<n where l.tryAcquire() { taken += 1 }
        for _ in 0..<taken { l.release(latencyNs: latencyMs * Self.ms, missed: missed, nowNs: atMs * Self.ms) }
    }

    @Test("the default latency target is a fifth of the deadline, at least 2 ms (SPEC §15.2)")
    func defaultTarget() {
        #expect(AdmissionConfiguration().latencyTarget == .milliseconds(10))
        #expect(AdmissionConfiguration(deadline: .milliseconds(50)).latencyTarget == .milliseconds(10))
        #expect(AdmissionConfiguration(deadline: .milliseconds(100)).latencyTarget == .milliseconds(20))
        #expect(AdmissionConfiguration(deadline: .milliseconds(5)).latencyTarget == .milliseconds(2), "the floor")
        #expect(AdmissionConfiguration(latencyTarget: .milliseconds(7)).latencyTarget == .milliseconds(7))
    }

    @Test("the limit refuses beyond itself and gives slots back")
    func bounds() {
        var l = limit(initial: 3, min: 1)
        let first = (l.tryAcquire(), l.tryAcquire(), l.tryAcquire())
        #expect(first == (true, true, true))
        let fourth = l.tryAcquire()
        #expect(!fourth)
        #expect(l.inFlight == 3)
        l.release(latencyNs: Self.ms, missed: false, nowNs: Self.ms)
        let again = l.tryAcquire()
        #expect(again)
        #expect(l.currentLimit == 3, "no window has ended")
    }

    @Test("latency over the target shrinks the limit in proportion, at most by half a window, never below the minimum")
    func shrinks() {
        var l = limit(target: 10, initial: 100)
        cycle(&l, 50, latencyMs: 20, atMs: 25)  // twice the target: halved
        #expect(l.currentLimit == 50)
        cycle(&l, 50, latencyMs: 1000, atMs: 50)  // far over: only halved again
        #expect(l.currentLimit == 25)
        for i in 0..<10 { cycle(&l, 10, latencyMs: 1000, atMs: 75 + 25 * Int64(i)) }
        #expect(l.currentLimit == 4)
    }

    @Test("a missed deadline (or a shed) shrinks the limit even when the latencies seen were fine")
    func missedShrinks() {
        var l = limit(target: 10, initial: 100)
        cycle(&l, 10, latencyMs: 1, atMs: 1)
        cycle(&l, 1, latencyMs: 0, missed: true, atMs: 25)
        #expect(l.currentLimit == 80)
    }

    @Test("latency under the target grows the limit by √limit, but only while the limit was what held CHECKs back")
    func grows() {
        var l = limit(target: 10, initial: 100)
        cycle(&l, 40, latencyMs: 2, atMs: 25)  // under the target, limit never reached: unchanged
        #expect(l.currentLimit == 100)
        cycle(&l, 150, latencyMs: 2, atMs: 50)  // reached: +10
        #expect(l.currentLimit == 110)
        for i in 0..<200 { cycle(&l, 2000, latencyMs: 2, atMs: 75 + 25 * Int64(i)) }
        #expect(l.currentLimit == 1000, "capped at the maximum")
    }

    @Test("the retry hint spaces the refused out: it grows while they outnumber a quarter of the admitted, shrinks otherwise, within the deadline and 20 deadlines")
    func retryHint() {
        var h = RetryHint(deadline: .milliseconds(50), nowNs: 0)
        #expect(h.hintNs == 50 * Self.ms && h.capNs == 1000 * Self.ms)
        #expect(!h.windowEnded(nowNs: 99 * Self.ms) && h.windowEnded(nowNs: 100 * Self.ms))
        // Refused = admitted: four times the share that should come back; √4 = 2.
        h.update(admitted: 1000, refused: 1000, nowNs: 100 * Self.ms)
        #expect(h.hintNs == 100 * Self.ms && h.windowStart == 100 * Self.ms)
        // Sixteen times: still only doubled in one window.
        h.update(admitted: 1000, refused: 4000, nowNs: 200 * Self.ms)
        #expect(h.hintNs == 200 * Self.ms)
        // Exactly the share: unchanged. Four ninths of it: × 2/3. A hundredth: only halved.
        h.update(admitted: 1000, refused: 250, nowNs: 300 * Self.ms)
        #expect(h.hintNs == 200 * Self.ms)
        h.update(admitted: 900, refused: 100, nowNs: 400 * Self.ms)
        #expect(h.hintNs == 133_333_333)
        h.update(admitted: 1000, refused: 2, nowNs: 450 * Self.ms)
        #expect(h.hintNs == 66_666_666)
        // No refusal: halved, never below the deadline.
        h.update(admitted: 10, refused: 0, nowNs: 500 * Self.ms)
        #expect(h.hintNs == 50 * Self.ms)
        // Refused with nothing admitted (Redis's capacity all taken): doubling up to the cap.
        for i in 0..<10 { h.update(admitted: 0, refused: 100, nowNs: (600 + 100 * Int64(i)) * Self.ms) }
        #expect(h.hintNs == 1000 * Self.ms)
        // A short deadline still hints at least a millisecond, and caps at a second.
        let short = RetryHint(deadline: .microseconds(200), nowNs: 0)
        #expect(short.floorNs == Self.ms && short.capNs == 1000 * Self.ms)
    }

    @Test("an overloaded answer's retry_after_ms is the hint spread over [1, 1.5) times it; the engine's windows move the hint")
    func retryAfterSpread() {
        let control = AdmissionControl(AdmissionConfiguration(latencyTarget: .milliseconds(10), initialLimit: 1, minLimit: 1, maxLimit: 1), deadline: .milliseconds(40))
        let waits = (0..<1000).map { _ in control.refused(.limit) }
        #expect(control.shed[ShedReason.limit.rawValue].count == 1000, "each refusal is counted under its reason")
        #expect(waits.allSatisfy { $0 >= 40 && $0 < 60 }, "\(waits.min()!)…\(waits.max()!)")
        #expect(Set(waits).count >= 15, "spread over the range, not one value")
        #expect(Double(waits.reduce(0) { $0 + Int($1) }) / 1000 > 47)
        // One CHECK admitted, 1000 refused: the next window doubles the hint.
        #expect(control.tryAcquire())
        control.release(latency: .milliseconds(1), missed: false, now: .now() + .milliseconds(150))
        #expect(control.retryHint == .milliseconds(80))
        // A window without refusals (the maintenance tick ends it): halved again.
        control.tick(now: .now() + .milliseconds(300))
        #expect(control.retryHint == .milliseconds(40))
        let next = control.refused(.bound)
        #expect(next >= 40 && next < 60)
    }

    func pending(_ lane: RedisLane, waitedMs: Int64, deadlineMs: Int64, now: NIODeadline) -> Pending {
        Pending(
            commands: [RedisCommand("PING")], deadline: now + .milliseconds(deadlineMs - waitedMs), loop: nil, lane: lane,
            enqueued: now - .milliseconds(waitedMs), completion: { _ in })
    }

    @Test("the queue hands out the priority lane first, then the rest in order, up to the batch size")
    func lanes() {
        let q = WorkQueue()
        let stats = RedisClientStats()
        let now = NIODeadline.now()
        _ = q.push(pending(.sheddable, waitedMs: 0, deadlineMs: 50, now: now))
        _ = q.push(pending(.normal, waitedMs: 0, deadlineMs: 50, now: now))
        _ = q.push(pending(.priority, waitedMs: 0, deadlineMs: 50, now: now))
        let batch = q.take(max: 2, stats: stats)
        #expect(batch?.items.map(\.lane) == [.priority, .sheddable])
        #expect(q.take(max: 2, stats: stats)?.items.map(\.lane) == [.normal])
    }

    @Test("CoDel: a queue delay over the target for a whole interval turns dropping on; a delay within it turns it off")
    func codel() async throws {
        let q = WorkQueue(target: .milliseconds(5), interval: .milliseconds(30))
        let stats = RedisClientStats()
        // A 50 ms deadline tolerates 10 ms of queue (a fifth of it).
        _ = q.push(pending(.sheddable, waitedMs: 20, deadlineMs: 50, now: .now()))
        #expect(q.take(max: 10, stats: stats)?.dropping == false, "one delay over the target is a burst, not a standing queue")
        try await Task.sleep(for: .milliseconds(40))
        _ = q.push(pending(.sheddable, waitedMs: 20, deadlineMs: 50, now: .now()))
        let dropping = try #require(q.take(max: 10, stats: stats))
        #expect(dropping.dropping, "over the target for longer than the interval")
        _ = q.push(pending(.sheddable, waitedMs: 1, deadlineMs: 50, now: .now()))
        #expect(q.take(max: 10, stats: stats)?.dropping == false)
    }

    @Test("shedding: sheddable requests too old for a dropping queue, or whose deadline cannot cover a round trip, fail unsent with .shed; others are sent")
    func shedding() throws {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let client = RedisClient(configuration: RedisClientConfiguration(endpoint: .tcp(host: "127.0.0.1", port: 1, db: 0)), logger: logger)
        defer { client.shutdown() }
        client.stats.expectedRoundTripNs.store(8_000_000, ordering: .relaxed)  // 8 ms
        let now = NIODeadline.now()
        var deliveries = Deliveries()
        // A dropping queue: a CHECK that waited over a fifth of its deadline (10 ms of 50) is shed.
        let queued = [
            pending(.sheddable, waitedMs: 15, deadlineMs: 50, now: now),  // shed
            pending(.priority, waitedMs: 15, deadlineMs: 50, now: now),  // never shed
            pending(.normal, waitedMs: 15, deadlineMs: 50, now: now),  // never shed
            pending(.sheddable, waitedMs: 3, deadlineMs: 50, now: now),  // sent
        ]
        let sent = client.unexpired(Batch(items: queued, dropping: true, target: .milliseconds(5)), now: now, into: &deliveries)
        #expect(sent.map(\.lane) == [.priority, .normal, .sheddable])
        #expect(client.stats.shedQueueDelay.load(ordering: .relaxed) == 1)
        // Any queue: a CHECK whose deadline cannot cover the expected round trip is shed.
        let late = [
            pending(.sheddable, waitedMs: 8, deadlineMs: 12, now: now),  // 4 ms left < 6 (8 expected, capped at half of 12): shed
            pending(.normal, waitedMs: 8, deadlineMs: 12, now: now),  // never shed
            pending(.sheddable, waitedMs: 0, deadlineMs: 2, now: now),  // 2 ms left, must cover only 1 (half its deadline): sent
        ]
        let live = client.unexpired(Batch(items: late, dropping: false, target: .milliseconds(5)), now: now, into: &deliveries)
        #expect(live.map(\.lane) == [.normal, .sheddable])
        #expect(client.stats.shedDeadline.load(ordering: .relaxed) == 1)
        #expect(RedisError(.shed, "x").certainlyNotExecuted)
    }

    @Test("reservation sequences: epoch and counter round-trip, the local bit and the earlier releases' local range are recognized")
    func sequences() {
        let s = ReservationSequence.make(epoch: 77, counter: 12_345)
        #expect(ReservationSequence.epoch(of: s) == 77 && ReservationSequence.counter(of: s) == 12_345)
        #expect(!ReservationSequence.isLocal(s) && s < UInt64(Int64.max))
        let local = ReservationSequence.make(epoch: ReservationSequence.maxEpoch, counter: ReservationSequence.maxCounter, local: true)
        #expect(ReservationSequence.isLocal(local) && ReservationSequence.epoch(of: local) == ReservationSequence.maxEpoch)
        #expect(local <= UInt64(Int64.max), "fits a signed 64-bit integer")
        #expect(ReservationSequence.isLocal((1 << 52) + 5), "a local admission of an earlier release")
        #expect(ReservationSequence.epoch(of: 1001) == nil, "a Redis-counter sequence of an earlier release")
        #expect(ReservationSequence.epoch(fromCounter: 1) == 1)
        #expect(ReservationSequence.epoch(fromCounter: Int64(ReservationSequence.maxEpoch) + 1) == 1, "epochs wrap, skipping 0")
    }
}
