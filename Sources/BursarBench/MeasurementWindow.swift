import BursarRedis
import Foundation
import NIOCore

/// What the harness reads at one edge of the measured period.
struct WindowEdge: Sendable {
    /// CPU seconds of the target processes so far (nil without them, or unreadable).
    var targetCPU: Double?
    /// CPU seconds of the harness so far.
    var harnessCPU: Double?
    /// CHECKs answered so far, warm-up included.
    var answered: Int
    /// Redis's statistics so far (nil without a Redis, or on Cluster).
    var redis: RedisCostSample?
}

/// Takes the samples at the start and the end of the measured period, and the resident memory of
/// the targets each second between, on a thread of its own.
///
/// A sampler waiting on Swift's cooperative pool runs only when one of that pool's few threads
/// is free: in a process that runs other work beside the harness (a test process runs many suites
/// at once, some of them blocking a thread while a child process starts or stops) it can wake
/// seconds late, and a window that opens after the last request has been answered measures
/// nothing. A thread of its own is late only by what the kernel's scheduler makes it wait.
enum MeasurementWindow {
    /// Samples at `start` and `end`; returns once the second sample is taken. `answered` counts
    /// the CHECKs answered so far.
    static func sample(
        from start: NIODeadline, to end: NIODeadline, targetPIDs: [Int32], redis: RedisClient?, rss: RSSSampler,
        answered: @escaping @Sendable () -> Int
    ) async -> (before: WindowEdge, after: WindowEdge) {
        await offThread {
            // The count of answers is read outside Redis's sample at both edges, so every
            // decision Redis's figures include is counted.
            func edge(opening: Bool) -> WindowEdge {
                var e = WindowEdge(targetCPU: CPUTime.seconds(of: targetPIDs), harnessCPU: CPUTime.ownSeconds(), answered: 0)
                if opening { e.answered = answered() }
                e.redis = redis.flatMap { RedisCostSample.take($0) }
                if !opening { e.answered = answered() }
                return e
            }
            sleep(until: start)
            let before = edge(opening: true)
            rss.sample(first: true)
            while NIODeadline.now() < end {
                sleep(until: min(end, .now() + .seconds(1)))
                rss.sample(first: false)
            }
            return (before, edge(opening: false))
        }
    }

    /// Blocks this thread until `deadline`.
    private static func sleep(until deadline: NIODeadline) {
        while true {
            let remaining = (deadline - .now()).nanoseconds
            guard remaining > 0 else { return }
            var ts = timespec(tv_sec: Int(remaining / 1_000_000_000), tv_nsec: Int(remaining % 1_000_000_000))
            nanosleep(&ts, nil)
        }
    }
}
