public import BursarWire
public import Histogram
import BursarClient
import Foundation
import Synchronization

/// The measured outcome of one closed-loop run.
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
    /// Requests that failed (connection error, ERROR frame, unexpected answer) before the end.
    public var errors = 0
    /// Requests still unanswered when the harness gave up waiting (a hung or stalled target).
    public var unanswered = 0
    /// Latency of every measured request, send → answer, nanoseconds.
    public var latencyNs: Histogram<UInt64>
    /// What the harness saw admitted, settled and released (warmup included), for the audit.
    public var ledger = Ledger()
    /// CPU seconds (user + system) the `targetPIDs` used during the measured period, when known.
    public var targetCPUSeconds: Double?

    init(measuredSeconds: Double) {
        self.measuredSeconds = measuredSeconds
        self.latencyNs = RunResult.emptyHistogram()
    }

    static func emptyHistogram() -> Histogram<UInt64> {
        Histogram(highestTrackableValue: 120_000_000_000, numberOfSignificantValueDigits: .three)
    }
}

/// The closed-loop load generator.
public enum BenchRunner {
    /// A worker's counts; merged at the end, so the hot loop takes no lock but the histogram's.
    struct Tally: Sendable {
        var decisions = 0
        var allowed = 0
        var denied: [DenyReason: Int] = [:]
        var settles = 0
        var releases = 0
        var notApplied = 0
        var errors = 0
        var unanswered = 0
        var ledger = Ledger()
    }

    /// Shared between the workers and the clock.
    final class Shared: Sendable {
        /// Set when the harness closes its connections; errors after that are unanswered requests.
        let closing = Atomic<Bool>(false)
        /// Workers still running.
        let active = Atomic<Int>(0)
        /// Tallies of the workers that have finished.
        let finished = Mutex<[Tally]>([])
        /// One histogram per connection, shared by its pipeline workers.
        let histograms: [LatencyRecorder]

        init(connections: Int) {
            histograms = (0..<connections).map { _ in LatencyRecorder() }
        }
    }

    /// A histogram behind a lock.
    final class LatencyRecorder: Sendable {
        let histogram = Mutex(RunResult.emptyHistogram())

        func record(_ ns: Int64) {
            histogram.withLock { _ = $0.record(UInt64(max(1, ns))) }
        }
    }

    /// Runs `configuration` against `world` (already seeded) and returns what it measured. Always
    /// returns by `warmup + duration + drainGrace` (plus connection set-up): requests still
    /// unanswered then are abandoned by closing the connections and counted in `unanswered`.
    public static func run(_ configuration: BenchConfiguration, world: BenchWorld) async throws -> RunResult {
        precondition(!configuration.targets.isEmpty && configuration.connections > 0 && configuration.pipeline > 0)
        var connections: [BursarConnection] = []
        do {
            for i in 0..<configuration.connections {
                let t = configuration.targets[i % configuration.targets.count]
                connections.append(try await BursarConnection.connect(host: t.host, port: t.port))
            }
        } catch {
            for c in connections { await c.close() }
            throw error
        }
        let conns = connections
        let shared = Shared(connections: conns.count)
        let workers = connections.count * configuration.pipeline
        let start = ContinuousClock.now
        let measureStart = start + configuration.warmup
        let end = measureStart + configuration.duration
        shared.active.store(workers, ordering: .relaxed)

        // Workers are unstructured tasks that hand in their tally when done, so a request whose
        // answer never comes can delay the harness only until the give-up point below.
        for w in 0..<workers {
            let c = w % conns.count
            Task {
                let tally = await worker(
                    index: w, of: workers, connection: conns[c], histogram: shared.histograms[c], shared: shared,
                    workload: configuration.workload, world: world, measureStart: measureStart, end: end)
                shared.finished.withLock { $0.append(tally) }
                shared.active.subtract(1, ordering: .relaxed)
            }
        }

        try? await Task.sleep(until: measureStart)
        let cpuBefore = CPUTime.seconds(of: configuration.targetPIDs)
        try? await Task.sleep(until: end)
        let cpuAfter = CPUTime.seconds(of: configuration.targetPIDs)
        // Let in-flight requests finish (their SETTLEs keep the audit exact), but never longer than the grace.
        let giveUp = end + configuration.drainGrace
        while shared.active.load(ordering: .relaxed) > 0, ContinuousClock.now < giveUp {
            try? await Task.sleep(for: .milliseconds(10))
        }
        // Workers check `closing` before each send; the pause lets a send that passed the check
        // reach its channel before the close, so the close fails it instead of leaving it pending.
        shared.closing.store(true, ordering: .relaxed)
        try? await Task.sleep(for: .milliseconds(50))
        for c in conns { await c.close() }
        // Closing fails every pending answer; a worker still running after that is stuck on a
        // request the close did not reach, and is counted as unanswered without its tally.
        let abandon = ContinuousClock.now + .seconds(1)
        while shared.active.load(ordering: .relaxed) > 0, ContinuousClock.now < abandon {
            try? await Task.sleep(for: .milliseconds(10))
        }
        let tallies = shared.finished.withLock { $0 }
        let stuck = workers - tallies.count

        var result = RunResult(measuredSeconds: Double(configuration.duration.components.seconds)
            + Double(configuration.duration.components.attoseconds) / 1e18)
        result.unanswered = stuck
        result.ledger.unresolved = stuck
        for r in tallies {
            result.decisions += r.decisions
            result.allowed += r.allowed
            for (k, v) in r.denied { result.denied[k, default: 0] += v }
            result.settles += r.settles
            result.releases += r.releases
            result.notApplied += r.notApplied
            result.errors += r.errors
            result.unanswered += r.unanswered
            result.ledger.merge(r.ledger)
        }
        for h in shared.histograms { h.histogram.withLock { result.latencyNs.add($0) } }
        if let before = cpuBefore, let after = cpuAfter { result.targetCPUSeconds = after - before }
        return result
    }

    private static func worker(
        index: Int, of workers: Int, connection: BursarConnection, histogram: LatencyRecorder, shared: Shared,
        workload: Workload, world: BenchWorld, measureStart: ContinuousClock.Instant, end: ContinuousClock.Instant
    ) async -> Tally {
        var tally = Tally()
        var n = UInt64(index)
        let stride = UInt64(workers)

        /// Counts a failed request; returns so the worker stops (its connection is unusable).
        func failed() {
            tally.ledger.unresolved += 1
            if shared.closing.load(ordering: .relaxed) { tally.unanswered += 1 } else { tally.errors += 1 }
        }
        func record(_ sent: ContinuousClock.Instant, measured: Bool) {
            guard measured else { return }
            let ns = (ContinuousClock.now - sent).nanoseconds
            histogram.record(ns)
        }

        while ContinuousClock.now < end {
            n &+= stride
            let k = workload.keyIndex(n)
            let estimate = workload.estimate(n)
            if shared.closing.load(ordering: .relaxed) { break }
            let sent = ContinuousClock.now
            let measured = sent >= measureStart
            let answer: CheckResult
            do {
                answer = try await connection.check(workload.check(n, digest: world.keys[k].digest, model: world.model))
            } catch {
                failed()
                break
            }
            record(sent, measured: measured)
            if measured {
                tally.decisions += 1
                if answer.allowed { tally.allowed += 1 } else { tally.denied[answer.reason, default: 0] += 1 }
            }
            guard answer.allowed else { continue }
            tally.ledger.admit(k, estimate: estimate, reservation: answer.reservation)

            if shared.closing.load(ordering: .relaxed) {
                // Admitted, but too late to settle or release: Redis keeps the estimate (until the
                // reservation expires, long after the audit), exactly as the ledger does.
                break
            }
            let followSent = ContinuousClock.now
            let followMeasured = followSent >= measureStart
            do {
                let status: ReservationResult
                let delta: Int64
                if let actual = workload.actual(n, estimate: estimate) {
                    status = try await connection.settle(SettleRequest(reservation: answer.reservation, inputTokens: 80, outputTokens: 150, cost: actual))
                    delta = actual - estimate
                    if followMeasured { tally.settles += 1 }
                } else {
                    status = try await connection.release(answer.reservation)
                    delta = -estimate
                    if followMeasured { tally.releases += 1 }
                }
                record(followSent, measured: followMeasured)
                if status.status == .applied {
                    tally.ledger.adjust(k, by: delta)
                } else {
                    tally.notApplied += 1
                }
            } catch {
                failed()
                break
            }
        }
        return tally
    }
}

extension Duration {
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}

/// CPU time of local processes, from /proc/PID/stat.
enum CPUTime {
    /// Sum of utime + stime of `pids` in seconds; nil when `pids` is empty or one is unreadable.
    static func seconds(of pids: [Int32]) -> Double? {
        guard !pids.isEmpty else { return nil }
        let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        var total = 0.0
        for pid in pids {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let paren = stat.lastIndex(of: ")") else { return nil }
            // Fields after the command name start at field 3 (state); utime and stime are fields 14 and 15.
            let fields = stat[stat.index(after: paren)...].split(separator: " ")
            guard fields.count > 12, let u = Double(fields[11]), let s = Double(fields[12]) else { return nil }
            total += (u + s) / ticksPerSecond
        }
        return total
    }
}
