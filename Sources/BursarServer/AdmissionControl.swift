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

    /// Defaults: a target of two fifths of `deadline` (20 ms of 50; at least 2 ms), starting
    /// at 1024 (high: a burst on a healthy Redis is never refused; the first window whose latency
    /// overshoots halves it), between 4 and 8192.
    public init(deadline: TimeAmount = .milliseconds(50), initialLimit: Int = 1024, minLimit: Int = 4, maxLimit: Int = 8192) {
        self.init(
            latencyTarget: max(.milliseconds(2), .nanoseconds(deadline.nanoseconds * 2 / 5)), initialLimit: initialLimit, minLimit: minLimit,
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

/// The engine's admission control: the gradient limit behind a lock, and what it shed.
public final class AdmissionControl: Sendable {
    private let state: Mutex<GradientLimit>
    /// CHECKs answered `overloaded`, by `ShedReason.rawValue`.
    public let shed: [Counter] = ShedReason.allCases.map { _ in Counter() }

    init(_ configuration: AdmissionConfiguration) {
        state = Mutex(GradientLimit(configuration, nowNs: NIODeadline.now().uptimeNanoseconds.asInt64))
    }

    /// The configuration.
    public var configuration: AdmissionConfiguration { state.withLock { $0.configuration } }
    /// The current limit.
    public var limit: Int { state.withLock { $0.currentLimit } }
    /// CHECKs waiting on Redis now.
    public var inFlight: Int { state.withLock { $0.inFlight } }

    func tryAcquire() -> Bool { state.withLock { $0.tryAcquire() } }

    func release(latency: TimeAmount, missed: Bool, now: NIODeadline) {
        state.withLock { $0.release(latencyNs: latency.nanoseconds, missed: missed, nowNs: now.uptimeNanoseconds.asInt64) }
    }

    /// Gives a slot back without a sample (its step said nothing about Redis's load).
    func release(now: NIODeadline) {
        state.withLock { $0.release(nowNs: now.uptimeNanoseconds.asInt64) }
    }
}

extension UInt64 {
    fileprivate var asInt64: Int64 { Int64(clamping: self) }
}
