import BursarStore
import BursarWire
import Histogram
import NIOCore
import Synchronization

/// One lane of load: a connection and every request it carries. All mutable state is touched only
/// on the lane's event loop (requests are started there, every answer arrives there, and a new
/// connection is made there), so the hot path takes no lock; the runner reads it with
/// `loop.submit` once the lane is quiet.
///
/// Like a gateway, a lane outlives its connection: when it breaks (its bursard killed, or the
/// connection closed), the CHECKs in flight on it count as `noAnswer` (bursard voids what it could
/// not deliver, so the ledger records nothing for them), the lane connects to the next target, and
/// it re-sends its SETTLEs and RELEASEs there with the same reservation ids.
final class Driver: @unchecked Sendable {
    /// A lane's counts and histograms, merged by the runner at the end.
    struct Tally: Sendable {
        var decisions = 0
        var allowed = 0
        /// Denied CHECKs, indexed by the reason's raw value.
        var denied = [Int](repeating: 0, count: 256)
        var settles = 0
        var releases = 0
        var notApplied = 0
        var errors = 0
        var unanswered = 0
        var noAnswer = 0
        var reconnects = 0
        var resent = 0
        var shed = 0
        var ledger = Ledger()
        var checkLatency = RunResult.emptyHistogram()
        var overloadedLatency = RunResult.emptyHistogram()
        var followUpLatency = RunResult.emptyHistogram()
    }

    /// Makes a new connection for a lane, on the lane's loop; nil where the transport has no
    /// connection of its own to lose (the direct floor).
    typealias Connector = @Sendable (BenchTarget, any EventLoop) -> EventLoopFuture<any DecisionTransport>

    /// One CHECK and what follows it.
    struct Request {
        /// Request number (`issued · lanes + lane`), from which the workload derives everything.
        var n: UInt64
        var key: Int
        var estimate: Int64
        /// When latency starts: the scheduled start (open loop) or the send.
        var origin: NIODeadline
        var measured: Bool
        /// How many `overloaded` answers in a row this flow had before this request.
        var refusals: Int
    }

    /// The SETTLE or RELEASE of an admitted request.
    struct FollowUp {
        var request: Request
        var reservation: ReservationID
        /// 1 for the first try.
        var attempt: Int
        /// An earlier try may have applied (answered `store_unavailable`, or lost with its connection).
        var uncertain: Bool
    }

    /// What the lane gives its transport with each request, and the transport hands back with the
    /// answer: the request, and the connection's generation it was sent on.
    enum Token {
        case check(Request, generation: UInt64)
        /// A SETTLE or RELEASE, sent at `sent`.
        case followUp(FollowUp, sent: NIODeadline, generation: UInt64)
    }

    /// A transport's answer to a request: a CHECK's result, a SETTLE's or RELEASE's, or why there
    /// is none.
    enum Answer {
        case check(CheckResult)
        case reservation(ReservationResult)
        case failed(any Error)
    }

    /// A request waiting for the lane's new connection.
    private enum Parked {
        case check(Request)
        case followUp(FollowUp)
    }

    private enum Link {
        case up
        case connecting
        /// Every reconnection attempt failed: the lane sends nothing more.
        case dead
    }

    let loop: any EventLoop
    private(set) var transport: any DecisionTransport
    private let connector: Connector?
    private let targets: [BenchTarget]
    private var targetIndex: Int
    private let workload: Workload
    private let world: BenchWorld
    private let load: LoadModel
    private let lane: UInt64
    private let lanes: UInt64
    private let start: NIODeadline
    private let measureStart: NIODeadline
    private let end: NIODeadline
    /// `end` + the drain grace: retries of a SETTLE or RELEASE stop here.
    private let giveUp: NIODeadline
    private let maxInFlight: Int

    /// Requests (CHECK and its follow-up) started and not yet finished; readable from any thread.
    let inFlight = Atomic<Int>(0)
    /// CHECKs answered so far, warm-up included: what the harness counts between its two samples
    /// of Redis's statistics, so Redis's cost is divided by the decisions it was measured over.
    let answered = Atomic<Int>(0)
    /// Whether every request the load schedules before `end` has been started (or shed): the
    /// open loop's last tick may run late on a loaded machine, after the requests before it have
    /// all been answered, and the runner waits for it before closing. A closed loop has no schedule.
    let scheduleDone = Atomic<Bool>(false)
    private var tally = Tally()
    private var issued: UInt64 = 0
    private var closing = false
    private var lastAnswer: NIODeadline
    private var link = Link.up
    /// Bumped whenever the connection is lost, so that the other requests failing with it do not
    /// start another reconnection.
    private var generation: UInt64 = 0
    private var parked: [Parked] = []
    private var flushScheduled = false

    /// Most connection attempts after a connection is lost, one target after another.
    static let reconnectAttempts = 8
    /// Pause before reconnection attempt `n` (n ≥ 2): this times n − 1.
    static let reconnectBackoff: TimeAmount = .milliseconds(25)

    init(
        transport: any DecisionTransport, connector: Connector?, targetIndex: Int, lane: Int, of lanes: Int,
        configuration: BenchConfiguration, world: BenchWorld, start: NIODeadline, measureStart: NIODeadline, end: NIODeadline
    ) {
        self.loop = transport.eventLoop
        self.transport = transport
        self.connector = connector
        self.targets = configuration.targets
        self.targetIndex = targetIndex
        self.workload = configuration.workload
        self.world = world
        self.load = configuration.load
        self.lane = UInt64(lane)
        self.lanes = UInt64(lanes)
        self.start = start
        self.measureStart = measureStart
        self.end = end
        self.giveUp = end + TimeAmount(configuration.drainGrace)
        self.maxInFlight = configuration.maxInFlightPerConnection
        self.lastAnswer = start
    }

    /// Starts the lane: `pipeline` flows (closed loop) or the schedule's first tick (open loop).
    func begin() {
        loop.preconditionInEventLoop()
        transport.attach(self)
        switch load {
        case .closed(let pipeline):
            scheduleDone.store(true, ordering: .relaxed)
            for _ in 0..<pipeline { launch(scheduled: nil) }
        case .open(let rate):
            // Lanes are staggered so the sum of their schedules is evenly spaced.
            let interval = Int64(lanes) * 1_000_000_000 / Int64(max(1, rate))
            tick(0, interval: interval, first: start + .nanoseconds(interval * Int64(lane) / Int64(lanes)))
        }
    }

    /// Stops starting requests and returns the connection for the runner to close; answers still
    /// due arrive, and fail as unanswered when it closes. Requests still waiting for a new
    /// connection are abandoned.
    func close() -> any DecisionTransport {
        loop.preconditionInEventLoop()
        closing = true
        abandonParked()
        return transport
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

    // MARK: Load

    private func tick(_ i: Int64, interval: Int64, first: NIODeadline) {
        let scheduled = first + .nanoseconds(i * interval)
        guard !closing, scheduled < end else { return scheduleDone.store(true, ordering: .relaxed) }
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
    private func launch(scheduled: NIODeadline?, refusals: Int = 0) {
        guard !closing else { return }
        let n = issued &* lanes &+ lane
        issued &+= 1
        let origin = scheduled ?? .now()
        inFlight.add(1, ordering: .relaxed)
        send(Request(n: n, key: workload.keyIndex(n), estimate: workload.estimate(n), origin: origin, measured: origin >= measureStart && origin < end, refusals: refusals))
    }

    private func send(_ r: Request) {
        guard case .up = link else { return park(.check(r)) }
        let request = workload.check(r.n, digest: world.keys[r.key].digest, model: world.model)
        guard transport.check(request, identity: world.identity(ofKey: r.key), token: .check(r, generation: generation)) else {
            return answered(r, .failure(LaneConnectionLost()), generation: generation)
        }
        scheduleFlush()
    }

    /// An answer from the transport, on the lane's loop.
    func answered(_ token: Token, _ answer: Answer) {
        switch (token, answer) {
        case (.check(let r, let generation), .check(let result)): answered(r, .success(result), generation: generation)
        case (.check(let r, let generation), .failed(let error)): answered(r, .failure(error), generation: generation)
        case (.followUp(let f, let sent, let generation), .reservation(let result)): answered(f, sent: sent, .success(result), generation: generation)
        case (.followUp(let f, let sent, let generation), .failed(let error)): answered(f, sent: sent, .failure(error), generation: generation)
        case (.check(let r, let generation), .reservation):
            answered(r, .failure(UnexpectedAnswerKind()), generation: generation)
        case (.followUp(let f, let sent, let generation), .check):
            answered(f, sent: sent, .failure(UnexpectedAnswerKind()), generation: generation)
        }
    }

    private func answered(_ r: Request, _ result: Result<CheckResult, any Error>, generation: UInt64) {
        let now = NIODeadline.now()
        lastAnswer = now
        switch result {
        case .failure where closing:
            // Abandoned by the harness at the end (a hung target): it may yet be admitted.
            tally.unanswered += 1
            tally.ledger.uncertainCheck(r.key, estimate: r.estimate)
            finish(next: false)
        case .failure(let error) where transport.isConnectionLoss(error):
            // No answer: like `store_unavailable` to a gateway, and bursard voids the attempt if
            // it was admitted, so the ledger records nothing. The flow carries on once the lane
            // has a new connection.
            tally.noAnswer += 1
            connectionLost(generation)
            finish(next: true)
        case .failure:
            tally.errors += 1
            tally.ledger.uncertainCheck(r.key, estimate: r.estimate)
            finish(next: false)
        case .success(let answer):
            answered.add(1, ordering: .relaxed)
            if r.measured {
                tally.decisions += 1
                record(&tally.checkLatency, now - r.origin)
                if answer.allowed {
                    tally.allowed += 1
                } else {
                    tally.denied[Int(answer.reason.rawValue)] += 1
                    if answer.reason == .overloaded { record(&tally.overloadedLatency, now - r.origin) }
                }
            }
            guard answer.allowed else {
                // A well-behaved gateway sends nothing more for this flow before `retry_after_ms`.
                if answer.reason == .overloaded, case .closed = load {
                    return finish(next: true, after: pause(answer.retryAfterMs, r.n, refusals: r.refusals), refusals: r.refusals + 1)
                }
                return finish(next: true)
            }
            tally.ledger.admit(r.key, estimate: r.estimate, tokens: Workload.reservedTokens, reservation: answer.reservation)
            // Admitted too late to settle or release: Redis keeps the estimate (until the
            // reservation expires, long after the audit), exactly as the ledger does.
            guard !closing else { return finish(next: true) }
            send(FollowUp(request: r, reservation: answer.reservation, attempt: 1, uncertain: false))
        }
    }

    /// How long a flow refused `overloaded` waits (SPEC §8: after `retry_after_ms`, with
    /// backoff): `retry_after_ms`, doubled for each refusal in a row before this one (at most 16
    /// times), plus up to a quarter more spread by request, so flows refused together do not all
    /// come back together. A flow admitted or denied by a limit starts again from `retry_after_ms`.
    private func pause(_ retryAfterMs: UInt32, _ n: UInt64, refusals: Int) -> TimeAmount {
        let ms = Int64(max(1, retryAfterMs)) << Int64(min(refusals, 4))
        return .milliseconds(ms + Int64((n &* 0x9E37_79B9_7F4A_7C15) >> 40) % (ms / 4 + 1))
    }

    // MARK: SETTLE and RELEASE

    /// Pause before retry `attempt` (≥ 2) of a SETTLE or RELEASE: 10 ms, doubling, at most 250 ms.
    static func followUpBackoff(attempt: Int) -> TimeAmount {
        .milliseconds(min(250, 10 << min(attempt - 2, 5)))
    }

    /// SETTLEs or RELEASEs an admission. A try answered `store_unavailable` (outcome unknown),
    /// `overloaded` (nothing changed) or lost with its connection is retried with the same
    /// reservation id (idempotent), with backoff, until a definitive answer or the end of the
    /// drain grace; a retry answering `already_settled`/`already_released` after an uncertain
    /// try means that try took effect.
    private func send(_ f: FollowUp) {
        guard case .up = link else { return park(.followUp(f)) }
        let sent = NIODeadline.now()
        let token = Token.followUp(f, sent: sent, generation: generation)
        let written = workload.actual(f.request.n, estimate: f.request.estimate).map { transport.settle(workload.settle(f.reservation, actual: $0), token: token) }
            ?? transport.release(f.reservation, token: token)
        guard written else { return answered(f, sent: sent, .failure(LaneConnectionLost()), generation: generation) }
        scheduleFlush()
    }

    /// Whether `f` is a SETTLE (with its actual cost) or a RELEASE, and what it moves the key's
    /// counters by if it applies (both ≤ 0).
    private func movement(_ f: FollowUp) -> (actual: Int64?, cost: Int64, tokens: Int64) {
        let actual = workload.actual(f.request.n, estimate: f.request.estimate)
        return (actual, actual.map { $0 - f.request.estimate } ?? -f.request.estimate, actual == nil ? -Workload.reservedTokens : Workload.settleTokenDelta)
    }

    private func answered(_ f: FollowUp, sent: NIODeadline, _ result: Result<ReservationResult, any Error>, generation: UInt64) {
        let now = NIODeadline.now()
        lastAnswer = now
        let k = f.request.key
        let (actual, cost, tokens) = movement(f)
        switch result {
        case .failure(let error) where !closing && transport.isConnectionLoss(error):
            // It may have applied before the connection went: send it again on the next one.
            tally.resent += 1
            connectionLost(generation)
            send(FollowUp(request: f.request, reservation: f.reservation, attempt: f.attempt + 1, uncertain: true))
        case .failure:
            if closing { tally.unanswered += 1 } else { tally.errors += 1 }
            tally.ledger.uncertainFollowUp(k, cost: cost, tokens: tokens)
            finish(next: false)
        case .success(let answer):
            if f.request.measured {
                if actual != nil { tally.settles += 1 } else { tally.releases += 1 }
                record(&tally.followUpLatency, now - sent)
            }
            switch answer.status {
            case .storeUnavailable, .overloaded:
                let retry = FollowUp(
                    request: f.request, reservation: f.reservation, attempt: f.attempt + 1,
                    uncertain: f.uncertain || answer.status == .storeUnavailable)
                let wait = Self.followUpBackoff(attempt: retry.attempt)
                if !closing, now + wait < giveUp {
                    loop.scheduleTask(in: wait) { self.closing ? self.abandon(retry) : self.send(retry) }
                    return
                }
                abandon(retry)
                return
            case .applied:
                tally.ledger.adjust(k, cost: cost, tokens: tokens)
            case .alreadySettled where f.uncertain && actual != nil, .alreadyReleased where f.uncertain && actual == nil:
                // A retry learning that an earlier try took effect.
                tally.ledger.adjust(k, cost: cost, tokens: tokens)
            default:
                tally.notApplied += 1
            }
            finish(next: true)
        }
    }

    /// A SETTLE or RELEASE out of time (or of a lane closing) without a definitive answer: it
    /// changed nothing unless an earlier try may have applied.
    private func abandon(_ f: FollowUp) {
        tally.notApplied += 1
        if f.uncertain {
            let (_, cost, tokens) = movement(f)
            tally.ledger.uncertainFollowUp(f.request.key, cost: cost, tokens: tokens)
        }
        finish(next: true)
    }

    // MARK: The connection

    /// The connection of `generation` failed: unless that was seen already, connect again.
    private func connectionLost(_ generation: UInt64) {
        guard generation == self.generation, case .up = link, connector != nil else { return }
        self.generation &+= 1
        link = .connecting
        let old = transport
        Task { await old.close() }
        reconnect(attempt: 1)
    }

    /// Tries the next target in the list (round robin from the lane's last one); on success
    /// sends what waited, after the last failed attempt gives up on the lane.
    private func reconnect(attempt: Int) {
        guard let connector, !closing else { return }
        let index = (targetIndex + attempt) % targets.count
        connector(targets[index], loop).whenComplete { result in
            switch result {
            case .success(let transport) where self.closing:
                Task { await transport.close() }
            case .success(let transport):
                transport.attach(self)
                self.transport = transport
                self.targetIndex = index
                self.link = .up
                self.tally.reconnects += 1
                let waiting = self.parked
                self.parked = []
                for p in waiting {
                    switch p {
                    case .check(let r): self.send(r)
                    case .followUp(let f): self.send(f)
                    }
                }
            case .failure where attempt < Self.reconnectAttempts && !self.closing:
                self.loop.scheduleTask(in: Self.reconnectBackoff * Int64(attempt)) { self.reconnect(attempt: attempt + 1) }
            case .failure:
                self.link = .dead
                self.abandonParked()
            }
        }
    }

    /// Holds a request until the lane has a connection again; fails it at once on a dead lane.
    private func park(_ p: Parked) {
        if case .connecting = link, !closing { return parked.append(p) }
        drop(p)
    }

    private func abandonParked() {
        let waiting = parked
        parked = []
        for p in waiting { drop(p) }
    }

    /// Ends a request that can no longer be sent (the lane is dead, or the run is closing). A
    /// CHECK was never sent, or got no answer on its lost connection: nothing in the ledger. A
    /// SETTLE or RELEASE may have applied on the lost connection: its range is widened.
    private func drop(_ p: Parked) {
        switch p {
        case .check:
            if closing { tally.unanswered += 1 } else { tally.noAnswer += 1 }
        case .followUp(let f):
            if closing { tally.unanswered += 1 } else { tally.errors += 1 }
            if f.uncertain {
                let (_, cost, tokens) = movement(f)
                tally.ledger.uncertainFollowUp(f.request.key, cost: cost, tokens: tokens)
            }
        }
        finish(next: false)
    }

    /// Requests written in one event-loop pass (say, the follow-ups and new CHECKs of every answer
    /// one read delivered) go out in one write.
    private func scheduleFlush() {
        guard !flushScheduled else { return }
        flushScheduled = true
        loop.execute {
            self.flushScheduled = false
            self.transport.flush()
        }
    }

    // MARK: Flows

    /// A flow ended; in a closed loop, when `next`, the next one starts (after `after`, if given)
    /// unless the run is over.
    private func finish(next: Bool, after: TimeAmount? = nil, refusals: Int = 0) {
        inFlight.subtract(1, ordering: .relaxed)
        guard next, case .closed = load, NIODeadline.now() < end else { return }
        guard let after else { return launch(scheduled: nil) }
        loop.scheduleTask(in: after) {
            if NIODeadline.now() < self.end { self.launch(scheduled: nil, refusals: refusals) }
        }
    }

    private func record(_ histogram: inout Histogram<UInt64>, _ elapsed: TimeAmount) {
        _ = histogram.record(UInt64(max(1, elapsed.nanoseconds)))
    }
}

/// A transport handed a lane an answer of the other kind (a CHECK's for a SETTLE): a fault of the
/// harness, counted in `errors`.
struct UnexpectedAnswerKind: Error, CustomStringConvertible {
    var description: String { "an answer of another kind than its request" }
}
