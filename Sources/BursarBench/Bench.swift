public import BursarRedis
import BursarStore
import Logging
import NIOCore

/// Seed, run, drain, audit: the whole of one run.
public enum Bench {
    /// Seeds a fresh org on `redis`, runs `configuration` (against its targets, or straight
    /// against Redis when `direct` is set), and (when `audit`) waits `auditGrace`, then up to
    /// `resolveWait` for bursard to resolve the admissions it could not deliver, and audits Redis
    /// against what the harness saw. What Redis ran and the CPU it used in the measured period are
    /// read from `redis` too (the server the targets use).
    public static func run(
        _ configuration: BenchConfiguration, redis: RedisClient, audit: Bool, auditGrace: Duration = .milliseconds(200),
        resolveWait: Duration = BenchAudit.defaultResolveWait
    ) async throws -> (report: BenchReport, world: BenchWorld, result: RunResult) {
        let world = try await BenchWorld.seed(configuration.workload, store: MetadataStore(redis: redis))
        let result = try await BenchRunner.run(configuration, world: world, redis: redis)
        var auditReport: AuditReport?
        if audit {
            try await Task.sleep(for: auditGrace)
            auditReport = try await BenchAudit.run(world: world, ledger: result.ledger, redis: redis, resolveWait: resolveWait)
        }
        return (BenchReport(result, configuration: configuration, audit: auditReport), world, result)
    }

    /// Sizes the harness's event loops (NIO's singleton group, which the lanes and the floor's
    /// Redis client run on): `loops` threads instead of one per core. Call it once, before
    /// anything in the process has used the group.
    public static func useEventLoops(_ loops: Int) {
        precondition(loops > 0)
        NIOSingletons.groupLoopCountSuggestion = loops
    }

    /// A Redis client for the harness's own seeding and auditing.
    public static func redisClient(url: String) throws -> RedisClient {
        var logger = Logger(label: "bursar-bench")
        logger.logLevel = .error
        return RedisClient(configuration: RedisClientConfiguration(target: try RedisTarget(url: url), ioTimeoutMs: 5_000), logger: logger)
    }
}
