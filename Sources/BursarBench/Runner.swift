public import BursarWire
public import Histogram
public import BursarRedis
import Foundation
import NIOCore
import NIOPosix

/// The measured outcome of one run.
public struct RunResult: Sendable {
    /// Seconds measured (the configured duration, after warmup).
    public var measuredSeconds: Double
    /// CHECKs answered in the measured period.
    public var decisions = 0
    /// Of those, allowed.
    public var allowed = 0
    /// Of those, denied, by reason.
    public var denied: [DenyReason: Int] = [:]
    /// SETTLEs answered in the measured period.
    public var settles = 0
    /// RELEASEs answered in the measured period.
    public var releases = 0
    /// SETTLE/RELEASE answers whose status was not `applied`.
    public var notApplied = 0
    /// Requests that failed (an ERROR frame, an unexpected answer, a Redis error of the direct
    /// floor; a SETTLE or RELEASE that no target could be reached for) before the end.
    public var errors = 0
    /// Requests still unanswered when the harness gave up waiting (a hung or stalled target).
    public var unanswered = 0
    /// CHECKs (whole run) that got no answer because their connection broke (the target was
    /// killed or closed it), or that could not be sent because no target could be reached. A
    /// gateway treats them like `store_unavailable`; bursard voids such an attempt, so the
    /// ledger records nothing for them.
    public var noAnswer = 0
    /// New connections lanes made after losing theirs.
    public var reconnects = 0
    /// SETTLEs and RELEASEs sent again, with the same reservation id, after their connection broke.
    public var resent = 0
    /// Open loop: scheduled CHECKs not sent because the lane already had its most in flight.
    public var shed = 0
    /// Latency of every measured CHECK, nanoseconds: from its send (closed loop) or from its
    /// scheduled start (open loop, so coordinated omission is corrected).
    public var latencyNs: Histogram<UInt64>
    /// Latency of the measured CHECKs answered `overloaded`, measured like `latencyNs`.
    public var overloadedLatencyNs: Histogram<UInt64>
    /// Latency of the SETTLEs and RELEASEs that followed measured CHECKs, send → answer.
    public var followUpLatencyNs: Histogram<UInt64>
    /// What the harness saw admitted, settled and released (warmup included), for the audit.
    public var ledger = Ledger()
    /// CPU seconds (user + system) the `targetPIDs` used during the measured period, when known.
    public var targetCPUSeconds: Double?
    /// Resident memory of the `targetPIDs` (summed), when known.
    public var targetRSS: RSSSamples?
    /// CPU seconds (user + system) the harness itself used during the measured period.
    public var harnessCPUSeconds: Double?
    /// Event loops the lanes ran on (threads of the harness that carry the load).
    public var harnessLoops = 0
    /// Commands the Redis the targets use ran during the measured period (`INFO commandstats`:
    /// every call inside a script besides the script call), when the harness could read them.
    public var redisCommands: Int?
    /// Of those, script calls (EVALSHA and its kin).
    public var redisScripts: Int?
    /// CPU seconds that Redis used during the measured period (`INFO cpu`), when known.
    public var redisCPUSeconds: Double?
    /// CHECKs answered between the two samples taken at the edges of the measured period: what
    /// the CPU and Redis figures are per (the measured period's `decisions` when unknown).
    public var sampledDecisions: Int?

    /// Measured CHECKs Redis decided: allowed, or denied for reasons 1…15 (a limit or the key's
    /// standing), as opposed to refused unevaluated (`overloaded`, `key_lookups_throttled`) or
    /// undecided (`store_unavailable`).
    public var goodput: Int {
        allowed + denied.reduce(0) { (1...15).contains($1.key.rawValue) ? $0 + $1.value : $0 }
    }

    init(measuredSeconds: Double) {
        self.measuredSeconds = measuredSeconds
        self.latencyNs = RunResult.emptyHistogram()
        self.overloadedLatencyNs = RunResult.emptyHistogram()
        self.followUpLatencyNs = RunResult.emptyHistogram()
    }

    static func emptyHistogram() -> Histogram<UInt64> {
        Histogram(highestTrackableValue: 120_000_000_000, numberOfSignificantValueDigits: .three)
    }

    mutating func add(_ t: Driver.Tally) {
        decisions += t.decisions
        allowed += t.allowed
        for (raw, v) in t.denied.enumerated() where v > 0 {
            if let reason = DenyReason(rawValue: UInt8(raw)) { denied[reason, default: 0] += v }
        }
        settles += t.settles
        releases += t.releases
        notApplied += t.notApplied
        errors += t.errors
        unanswered += t.unanswered
        noAnswer += t.noAnswer
        reconnects += t.reconnects
        resent += t.resent
        shed += t.shed
        ledger.merge(t.ledger)
        latencyNs.add(t.checkLatency)
        overloadedLatencyNs.add(t.overloadedLatency)
        followUpLatencyNs.add(t.followUpLatency)
    }
}

/// The load generator: one `Driver` per connection, closed or open loop.
public enum BenchRunner {
    /// Runs `configuration` against `world` (already seeded) and returns what it measured. Always
    /// returns by `warmup + duration + drainGrace` plus about a second (and connection set-up):
    /// requests still unanswered then are abandoned by closing the connections and counted in
    /// `unanswered`.
    ///
    /// Lanes are spread over the event loops of `MultiThreadedEventLoopGroup.singleton` (one per
    /// core) by the connections' round robin, and each lane's work runs on its loop alone.
    ///
    /// With `redis` (the server the targets use), what Redis ran and the CPU it used over the
    /// measured period are read from its INFO at the period's start and end (not on Cluster).
    public static func run(_ configuration: BenchConfiguration, world: BenchWorld, redis: RedisClient? = nil) async throws -> RunResult {
        precondition(configuration.connections > 0)
        precondition(configuration.direct != nil || !configuration.targets.isEmpty)
        var transports: [any DecisionTransport] = []
        var connector: Driver.Connector?
        var directClient: RedisClient?
        defer { directClient?.shutdown() }
        if let url = configuration.direct {
            let (client, limiter) = try DirectTransport.client(url: url)
            directClient = client
            for _ in 0..<configuration.connections {
                transports.append(DirectTransport(redis: client, limiter: limiter, eventLoop: MultiThreadedEventLoopGroup.singleton.next()))
            }
        } else {
            do {
                let group = MultiThreadedEventLoopGroup.singleton
                for i in 0..<configuration.connections {
                    let target = configuration.targets[i % configuration.targets.count]
                    transports.append(try await BursardTransport.connect(target, on: group.next()).get())
                }
                connector = { BursardTransport.connect($0, on: $1) }
            } catch {
                for t in transports { await t.close() }
                throw error
            }
        }

        let start = NIODeadline.now()
        let measureStart = start + TimeAmount(configuration.warmup)
        let end = measureStart + TimeAmount(configuration.duration)
        let drivers = transports.enumerated().map { i, t in
            Driver(
                transport: t, connector: connector, targetIndex: i % max(1, configuration.targets.count), lane: i, of: transports.count,
                configuration: configuration, world: world, start: start, measureStart: measureStart, end: end)
        }
        for d in drivers { d.loop.execute { d.begin() } }
        func inFlight() -> Int { drivers.reduce(0) { $0 + $1.inFlight.load(ordering: .relaxed) } }
        func draining() -> Bool { inFlight() > 0 || drivers.contains { !$0.scheduleDone.load(ordering: .relaxed) } }

        let rss = RSSSampler(pids: configuration.targetPIDs)
        // Every per-decision cost is divided by the CHECKs answered between the two samples, not
        // by the measured period's count: a sample can still come a little late on a loaded
        // machine, and the period's count would then be set against a different stretch of work.
        let window = await MeasurementWindow.sample(
            from: measureStart, to: end, targetPIDs: configuration.targetPIDs, redis: redis, rss: rss,
            answered: { drivers.reduce(0) { $0 + $1.answered.load(ordering: .relaxed) } })
        // Let the schedule's last requests start and in-flight ones finish (their SETTLEs keep the
        // audit exact), but never longer than the grace.
        let giveUp = end + TimeAmount(configuration.drainGrace)
        while draining(), NIODeadline.now() < giveUp {
            try? await Task.sleep(for: .milliseconds(10))
        }
        // Closing fails every answer still due; one the close cannot reach is counted as
        // unanswered when the lane reports.
        for d in drivers {
            if let transport = try? await d.loop.submit({ d.close() }).get() { await transport.close() }
        }
        let abandon = NIODeadline.now() + .seconds(1)
        while inFlight() > 0, NIODeadline.now() < abandon {
            try? await Task.sleep(for: .milliseconds(10))
        }

        var result = RunResult(measuredSeconds: Double(TimeAmount(configuration.duration).nanoseconds) / 1e9)
        for d in drivers { result.add(try await d.loop.submit { d.result() }.get()) }
        let (before, after) = window
        result.sampledDecisions = after.answered - before.answered
        if let b = before.targetCPU, let a = after.targetCPU { result.targetCPUSeconds = a - b }
        if let b = before.harnessCPU, let a = after.harnessCPU { result.harnessCPUSeconds = a - b }
        result.harnessLoops = Set(drivers.map { ObjectIdentifier($0.loop) }).count
        if let b = before.redis, let a = after.redis {
            (result.redisCommands, result.redisScripts, result.redisCPUSeconds) = a.since(b)
        }
        result.targetRSS = rss.samples
        return result
    }
}
