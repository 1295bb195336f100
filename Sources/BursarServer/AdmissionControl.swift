public import NIOCore
import Synchronization

/// How the data plane decides how many CHECKs may wait on Redis at once (SPEC §15.2).
public struct AdmissionConfiguration: Sendable, Hashable {
    /// The latency a CHECK's Redis step (queue delay plus round trip) should stay under. Above it
    /// the limit shrinks in proportion; below it, and while the limit is what holds CHECKs back,
    /// the limit grows.
    public var latencyTarget: TimeAmount
    /// The limit a bursard starts with.
    public var initialLimit: Int
    /// The limit never goes below this.
    public var minLimit: Int
    /// The limit never goes above this.
    public var maxLimit: Int

    /// Defaults: a target of a fifth of `deadline` (10 ms of 50; at least 2 ms), starting
    /// at 1024 (high: a burst on a healthy Redis is never refused; the first window whose latency
    /// overshoots halves it), between 4 and 8192.
    public init(deadline: TimeAmount = .milliseconds(50), initialLimit: Int = 1024, minLimit: Int = 4, maxLimit: Int = 8192) {
        self.init(
            latencyTarget: max(.milliseconds(2), .nanoseconds(deadline.nanoseconds / 5)), initialLimit: initialLimit, minLimit: minLimit,
            maxLimit: maxLimit)
    }

    /// A configuration with an explicit latency target.
    public init(latencyTarget: TimeAmount, initialLimit: Int = 1024, minLimit: Int = 4, maxLimit: Int = 8192) {
        self.latencyTarget = latencyTarget
        self.minLimit = max(1, minLimit)
        self.maxLimit = max(self.minLimit, maxLimit)
        self.initialLimit = min(max(initialLimit, self.minLimit), self.maxLimit)
    }
}

/// A gradient concurrency limit (after the limiters service meshes use): the number of CHECKs
/// allowed to wait on Redis at once. It is re-computed once per window (twice the latency target,
/// at least 20 ms) from what the window's completions saw:
///
/// - gradient = target ÷ average latency, clamped to 0.5…1, and at most 0.8 if any CHECK missed
///   its deadline or was shed;
/// - new limit = limit × gradient, plus √limit when the gradient is 1 and the limit was reached
///   in the window (the limit is what held CHECKs back, and Redis kept up: probe for more).
///
/// So the limit shrinks in proportion to how far latency overshoots, and grows by about √limit
/// per window while it does not. A pure value: the engine holds it under a lock; tests drive it
/// directly.
struct GradientLimit: Sendable {
    let configuration: AdmissionConfiguration
    private(set) var limit: Double
    private(set) var inFlight = 0
    /// Slots ever taken: the CHECKs sent to Redis.
    private(set) var acquired = 0
    private var windowStart: Int64
    private var latencySum: Int64 = 0
    private var samples = 0
    private var missed = 0
    private var reached = false

    init(_ configuration: AdmissionConfiguration, nowNs: Int64) {
        self.configuration = configuration
        self.limit = Double(configuration.initialLimit)
        self.windowStart = nowNs
    }

    /// The limit as a count.
    var currentLimit: Int { Int(limit) }

    /// The window length, ns.
    var windowNs: Int64 { max(20_000_000, 2 * configuration.latencyTarget.nanoseconds) }

    /// Takes a slot unless `limit` are taken.
    mutating func tryAcquire() -> Bool {
        guard inFlight < Int(limit) else {
            reached = true
            return false
        }
        inFlight += 1
        acquired &+= 1
        if inFlight >= Int(limit) { reached = true }
        return true
    }

    /// Gives a slot back: its Redis step took `latencyNs` (queue delay and round trip), and it
    /// `missed` its deadline or was shed (`latencyNs` is then not a sample).
    mutating func release(latencyNs: Int64, missed: Bool, nowNs: Int64) {
        inFlight -= 1
        if missed {
            self.missed += 1
        } else {
            latencySum += latencyNs
            samples += 1
        }
        if nowNs - windowStart >= windowNs { update(nowNs: nowNs) }
    }

    /// Gives a slot back without a sample.
    mutating func release(nowNs: Int64) {
        inFlight -= 1
        if nowNs - windowStart >= windowNs { update(nowNs: nowNs) }
    }

    private mutating func update(nowNs: Int64) {
        defer {
            windowStart = nowNs
            latencySum = 0
            samples = 0
            missed = 0
            reached = false
        }
        guard samples > 0 || missed > 0 else { return }
        var gradient = 1.0
        if samples > 0 {
            let average = Double(latencySum) / Double(samples)
            gradient = min(1, max(0.5, Double(configuration.latencyTarget.nanoseconds) / max(1, average)))
        }
        if missed > 0 { gradient = min(gradient, 0.8) }
        var next = limit * gradient
        if gradient >= 1 && reached { next += limit.squareRoot() }
        limit = min(Double(configuration.maxLimit), max(Double(configuration.minLimit), next))
    }
}

/// How long an `overloaded` answer tells its client to wait (`retry_after_ms`, SPEC §15.2).
///
/// A fixed wait (the deadline) lets the refused come back faster than anything can be served:
/// 768 flows on a capacity of 96 in flight came back 13,000 times a second to be refused again,
/// and the refusals' own CPU (reading, answering, the client's resending) ate into what was
/// served. The hint instead spaces the refused out so that they return at about a quarter of the
/// rate CHECKs are admitted. Once per window (100 ms) it looks at the CHECKs admitted (sent to
/// Redis) and refused in it: the flows now waiting number about `refused`, and they come back
/// within one hint; so the hint is multiplied by √(refused ÷ (¼ × admitted)), by 0.5…2 at a
/// time (the square root damps the lag between a change and the returns it causes). A window
/// without a refusal halves it. It stays between the deadline and 20 deadlines (at least 1 s).
/// A pure value, like `GradientLimit`.
struct RetryHint: Sendable {
    /// The rate the refused should come back at, as a share of the rate CHECKs are admitted.
    static let returnShare = 0.25
    static let windowNs: Int64 = 100_000_000
    let floorNs: Int64
    let capNs: Int64
    private(set) var hintNs: Int64
    private(set) var windowStart: Int64

    init(deadline: TimeAmount, nowNs: Int64) {
        floorNs = max(1_000_000, deadline.nanoseconds)
        capNs = max(1_000_000_000, 20 * floorNs)
        hintNs = floorNs
        windowStart = nowNs
    }

    /// Whether the window that started at `windowStart` is over at `nowNs`.
    func windowEnded(nowNs: Int64) -> Bool { nowNs - windowStart >= Self.windowNs }

    /// Ends the window: `admitted` CHECKs went to Redis and `refused` were answered `overloaded`
    /// in it.
    mutating func update(admitted: Int, refused: Int, nowNs: Int64) {
        windowStart = nowNs
        let factor: Double
        if refused <= 0 {
            factor = 0.5
        } else {
            let ratio = Double(refused) / (Self.returnShare * Double(max(1, admitted)))
            factor = min(2, max(0.5, ratio.squareRoot()))
        }
        hintNs = min(capNs, max(floorNs, Int64(Double(hintNs) * factor)))
    }
}

/// Why a CHECK was answered `overloaded` without an answer from Redis.
public enum ShedReason: Int, Sendable, CaseIterable {
    /// The connection's or the server's fixed in-flight bound (SPEC §15.1).
    case bound = 0
    /// The adaptive limit on CHECKs waiting on Redis was reached.
    case limit = 1
    /// Waited past the queue-delay target in a standing queue (CoDel).
    case queueDelay = 2
    /// Its deadline could no longer cover the expected round trip.
    case deadline = 3

    /// The metric label.
    public var label: String {
        switch self {
        case .bound: "bound"
        case .limit: "limit"
        case .queueDelay: "queue_delay"
        case .deadline: "deadline"
        }
    }
}

/// The engine's admission control: the gradient limit and the retry hint behind a lock, and
/// what it shed.
public final class AdmissionControl: Sendable {
    private struct State {
        var limit: GradientLimit
        var hint: RetryHint
        /// `acquired` and the refusals (all `shed`) when the hint's window started.
        var acquiredAtWindow = 0
        var refusedAtWindow = 0
    }

    private let state: Mutex<State>
    /// CHECKs answered `overloaded`, by `ShedReason.rawValue`.
    public let shed: [Counter] = ShedReason.allCases.map { _ in Counter() }
    /// The retry hint, published for `retryAfter` (ns).
    private let hintNs: Atomic<Int64>
    /// Spreads the refused over [hint, 1.5 × hint) so that they do not all come back at once.
    private let spread = Atomic<UInt64>(0)

    init(_ configuration: AdmissionConfiguration, deadline: TimeAmount) {
        let now = NIODeadline.now().uptimeNanoseconds.asInt64
        let hint = RetryHint(deadline: deadline, nowNs: now)
        state = Mutex(State(limit: GradientLimit(configuration, nowNs: now), hint: hint))
        hintNs = Atomic(hint.hintNs)
    }

    /// The configuration.
    public var configuration: AdmissionConfiguration { state.withLock { $0.limit.configuration } }
    /// The current limit.
    public var limit: Int { state.withLock { $0.limit.currentLimit } }
    /// CHECKs waiting on Redis now.
    public var inFlight: Int { state.withLock { $0.limit.inFlight } }
    /// The current retry hint (what an `overloaded` answer tells its client to wait, at least).
    public var retryHint: TimeAmount { .nanoseconds(hintNs.load(ordering: .relaxed)) }

    func tryAcquire() -> Bool { state.withLock { $0.limit.tryAcquire() } }

    func release(latency: TimeAmount, missed: Bool, now: NIODeadline) {
        let nowNs = now.uptimeNanoseconds.asInt64
        state.withLock { s in
            s.limit.release(latencyNs: latency.nanoseconds, missed: missed, nowNs: nowNs)
            updateHint(&s, nowNs: nowNs)
        }
    }

    /// Gives a slot back without a sample (its step said nothing about Redis's load).
    func release(now: NIODeadline) {
        let nowNs = now.uptimeNanoseconds.asInt64
        state.withLock { s in
            s.limit.release(nowNs: nowNs)
            updateHint(&s, nowNs: nowNs)
        }
    }

    /// Ends the hint's window if it is over (the engine's maintenance calls it, so the hint
    /// moves even while no CHECK completes).
    func tick(now: NIODeadline) {
        let nowNs = now.uptimeNanoseconds.asInt64
        state.withLock { updateHint(&$0, nowNs: nowNs) }
    }

    /// Counts one `overloaded` answer under `reason` and returns its `retry_after_ms`: the hint,
    /// spread over [1, 1.5) times it by a low-discrepancy sequence (no lock, no random-number
    /// syscall).
    func refused(_ reason: ShedReason) -> UInt32 {
        shed[reason.rawValue].increment()
        let k = spread.add(1, ordering: .relaxed).newValue
        let fraction = Double((k &* 0x9E37_79B9_7F4A_7C15) >> 11) / Double(1 << 53)
        let ns = Double(hintNs.load(ordering: .relaxed)) * (1 + fraction / 2)
        return UInt32(clamping: max(1, Int64(ns) / 1_000_000))
    }

    private func updateHint(_ s: inout State, nowNs: Int64) {
        guard s.hint.windowEnded(nowNs: nowNs) else { return }
        let acquired = s.limit.acquired
        let refused = shed.reduce(0) { $0 + $1.count }
        s.hint.update(admitted: acquired &- s.acquiredAtWindow, refused: refused &- s.refusedAtWindow, nowNs: nowNs)
        s.acquiredAtWindow = acquired
        s.refusedAtWindow = refused
        hintNs.store(s.hint.hintNs, ordering: .relaxed)
    }
}

extension UInt64 {
    fileprivate var asInt64: Int64 { Int64(clamping: self) }
}
