import BursarStore
import BursarWire
import Histogram
import NIOCore
import Synchronization

/// One lane of load: a transport and every request it carries. All mutable state is touched only
/// on the transport's event loop (requests are started there and every answer arrives there), so
/// the hot path takes no lock; the runner reads it with `loop.submit` once the lane is quiet.
final class Driver: @unchecked Sendable {
    /// A lane's counts and histograms, merged by the runner at the end.
    struct Tally: Sendable {
        var decisions = 0
        var allowed = 0
        var denied: [DenyReason: Int] = [:]
        var settles = 0
        var releases = 0
        var notApplied = 0
        var errors = 0
        var unanswered = 0
        var shed = 0
        var ledger = Ledger()
        var checkLatency = RunResult.emptyHistogram()
        var followUpLatency = RunResult.emptyHistogram()
    }

    let loop: any EventLoop
    let transport: any DecisionTransport
    private let workload: Workload
    private let world: BenchWorld
    private let load: LoadModel
    private let lane: UInt64
    private let lanes: UInt64
    private let start: NIODeadline
    private let measureStart: NIODeadline
    private let end: NIODeadline
    private let maxInFlight: Int

    /// Requests (CHECK and its follow-up) started and not yet finished; readable from any thread.
    let inFlight = Atomic<Int>(0)
    private var tally = Tally()
    private var issued: UInt64 = 0
    private var closing = false
    private var lastAnswer: NIODeadline

    init(
        transport: any DecisionTransport, lane: Int, of lanes: Int, configuration: BenchConfiguration, world: BenchWorld,
        start: NIODeadline, measureStart: NIODeadline, end: NIODeadline
    ) {
        self.loop = transport.eventLoop
        self.transport = transport
        self.workload = configuration.workload
        self.world = world
        self.load = configuration.load
        self.lane = UInt64(lane)
        self.lanes = UInt64(lanes)
        self.start = start
        self.measureStart = measureStart
        self.end = end
        self.maxInFlight = configuration.maxInFlightPerConnection
        self.lastAnswer = start
    }

    /// Starts the lane: `pipeline` flows (closed loop) or the schedule's first tick (open loop).
    func begin() {
        loop.preconditionInEventLoop()
        switch load {
        case .closed(let pipeline):
            for _ in 0..<pipeline { launch(scheduled: nil) }
        case .open(let rate):
            // Lanes are staggered so the sum of their schedules is evenly spaced.
            let interval = Int64(lanes) * 1_000_000_000 / Int64(max(1, rate))
            tick(0, interval: interval, first: start + .nanoseconds(interval * Int64(lane) / Int64(lanes)))
        }
    }

    /// Stops starting requests; answers still due arrive and are counted as unanswered if they fail.
    func close() {
        loop.preconditionInEventLoop()
        closing = true
    }

    /// What the lane saw; requests still in flight are counted as unanswered and unresolved.
    func result() -> Tally {
        loop.preconditionInEventLoop()
        var t = tally
        let stuck = inFlight.load(ordering: .relaxed)
        t.unanswered += stuck
        t.ledger.unresolved += stuck
        t.ledger.unattributed += stuck
        t.ledger.spanNs = (lastAnswer - start).nanoseconds
        return t
    }

    private func tick(_ i: Int64, interval: Int64, first: NIODeadline) {
        let scheduled = first + .nanoseconds(i * interval)
        guard !closing, scheduled < end else { return }
        if inFlight.load(ordering: .relaxed) >= maxInFlight {
            tally.shed += 1
        } else {
            launch(scheduled: scheduled)
        }
        // Absolute times: the schedule never drifts, and a late loop catches up at once, each
        // late request charged its lateness.
        loop.scheduleTask(deadline: scheduled + .nanoseconds(interval)) { self.tick(i + 1, interval: interval, first: first) }
    }

    /// Starts one CHECK (and, if admitted, its SETTLE or RELEASE). Latency counts from
    /// `scheduled` when given (open loop), else from the send.
    private func launch(scheduled: NIODeadline?) {
        guard !closing else { return }
        let n = issued &* lanes &+ lane
        issued &+= 1
        let k = workload.keyIndex(n)
        let estimate = workload.estimate(n)
        let origin = scheduled ?? .now()
        let measured = origin >= measureStart && origin < end
        inFlight.add(1, ordering: .relaxed)
        transport.check(workload.check(n, digest: world.keys[k].digest, model: world.model), identity: world.identity(ofKey: k))
            .whenComplete { result in
                let now = NIODeadline.now()
                self.lastAnswer = now
                switch result {
                case .failure:
                    self.failed()
                    self.tally.ledger.uncertainCheck(k, estimate: estimate)
                    self.finish(ok: false)
                case .success(let answer):
                    if measured {
                        self.tally.decisions += 1
                        self.record(&self.tally.checkLatency, now - origin)
                        if answer.allowed { self.tally.allowed += 1 } else { self.tally.denied[answer.reason, default: 0] += 1 }
                    }
                    guard answer.allowed else { return self.finish(ok: true) }
                    self.tally.ledger.admit(k, estimate: estimate, tokens: Workload.reservedTokens, reservation: answer.reservation)
                    // Admitted too late to settle or release: Redis keeps the estimate (until the
                    // reservation expires, long after the audit), exactly as the ledger does.
                    guard !self.closing else { return self.finish(ok: true) }
                    self.followUp(n, key: k, estimate: estimate, reservation: answer.reservation, measured: measured)
                }
            }
    }

    /// Most tries of a SETTLE or RELEASE answered `store_unavailable` (outcome unknown) or
    /// `overloaded` (nothing changed).
    static let followUpAttempts = 3

    /// Pause before retrying a SETTLE or RELEASE answered `overloaded`, times the attempt.
    static let overloadedBackoff: TimeAmount = .milliseconds(20)

    /// SETTLEs or RELEASEs admission `n`. An answer of `store_unavailable` leaves the outcome
    /// unknown; like a gateway, the lane retries with the same reservation id (idempotent), and a
    /// repeat answering `already_settled`/`already_released` means the earlier try took effect.
    /// An answer of `overloaded` changed nothing: the lane retries the same way after a pause.
    /// `uncertain` is set once a try answered `store_unavailable` (it may have applied).
    private func followUp(
        _ n: UInt64, key k: Int, estimate: Int64, reservation: ReservationID, measured: Bool, attempt: Int = 1, uncertain: Bool = false
    ) {
        let sent = NIODeadline.now()
        let actual = workload.actual(n, estimate: estimate)
        // What the counters move by if this applies.
        let cost = actual.map { $0 - estimate } ?? -estimate
        let tokens = actual == nil ? -Workload.reservedTokens : Workload.settleTokenDelta
        let answer = actual.map { transport.settle(workload.settle(reservation, actual: $0)) } ?? transport.release(reservation)
        answer.whenComplete { result in
            let now = NIODeadline.now()
            self.lastAnswer = now
            switch result {
            case .failure:
                self.failed()
                self.tally.ledger.uncertainFollowUp(k, cost: cost, tokens: tokens)
                self.finish(ok: false)
            case .success(let answer):
                if measured {
                    if actual != nil { self.tally.settles += 1 } else { self.tally.releases += 1 }
                    self.record(&self.tally.followUpLatency, now - sent)
                }
                switch answer.status {
                case .storeUnavailable where attempt < Self.followUpAttempts && !self.closing:
                    return self.followUp(
                        n, key: k, estimate: estimate, reservation: reservation, measured: measured, attempt: attempt + 1, uncertain: true)
                case .storeUnavailable:
                    self.tally.notApplied += 1
                    self.tally.ledger.uncertainFollowUp(k, cost: cost, tokens: tokens)
                case .overloaded where attempt < Self.followUpAttempts && !self.closing:
                    self.loop.scheduleTask(in: Self.overloadedBackoff * Int64(attempt)) {
                        self.followUp(
                            n, key: k, estimate: estimate, reservation: reservation, measured: measured, attempt: attempt + 1,
                            uncertain: uncertain)
                    }
                    return
                case .overloaded:
                    // This try changed nothing; an earlier `store_unavailable` one may have applied.
                    self.tally.notApplied += 1
                    if uncertain { self.tally.ledger.uncertainFollowUp(k, cost: cost, tokens: tokens) }
                case .applied:
                    self.tally.ledger.adjust(k, cost: cost, tokens: tokens)
                case .alreadySettled where attempt > 1 && actual != nil:
                    // A retry learning that its earlier try took effect.
                    self.tally.ledger.adjust(k, cost: cost, tokens: tokens)
                case .alreadyReleased where attempt > 1 && actual == nil:
                    self.tally.ledger.adjust(k, cost: cost, tokens: tokens)
                default:
                    self.tally.notApplied += 1
                }
                self.finish(ok: true)
            }
        }
    }

    /// A request got no usable answer: its effect is unknown (the caller widens the ledger).
    private func failed() {
        if closing { tally.unanswered += 1 } else { tally.errors += 1 }
    }

    /// A flow ended; in a closed loop a healthy lane starts the next one.
    private func finish(ok: Bool) {
        inFlight.subtract(1, ordering: .relaxed)
        if ok, case .closed = load, NIODeadline.now() < end { launch(scheduled: nil) }
    }

    private func record(_ histogram: inout Histogram<UInt64>, _ elapsed: TimeAmount) {
        _ = histogram.record(UInt64(max(1, elapsed.nanoseconds)))
    }
}
