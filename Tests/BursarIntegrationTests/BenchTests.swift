import BursarBench
import BursarRedis
import BursarStore
import BursarWire
import Foundation
import NIOCore
import NIOPosix
import Testing

/// bursar-bench against a real bursard on a real redis-server: the audit is clean on a correct
/// run, catches a counter corrupted behind bursard's back, and the harness stops on time when
/// the target never answers.
@Suite("bursar-bench: closed-loop run, audit, bounded stop", .serialized)
struct BenchTests {
    func config(_ port: Int, duration: Duration = .milliseconds(1500), keys: Int = 20) -> BenchConfiguration {
        BenchConfiguration(
            targets: [BenchTarget(host: "127.0.0.1", port: port)], connections: 4, pipeline: 4, duration: duration,
            warmup: .milliseconds(200), drainGrace: .seconds(2),
                        // Tight keys afford about two requests, so denials appear however slow the machine is.
            workload: Workload(keys: keys, projects: 3, denyPermille: 300, settlePermille: 700, tightBudget: 20_000))
    }

    /// Runs a short audited bench against a fresh bursard on the harness's Redis.
    func auditedRun(_ h: Harness) async throws -> (report: BenchReport, world: BenchWorld, result: RunResult) {
        let bursard = try await BursardProcess(redis: h.redisServer.endpoint)
        defer { bursard.stop() }
        return try await Bench.run(config(bursard.port), redis: h.redis, audit: true)
    }

    @Test("a short run against one bursard admits and denies, and audits clean")
    func cleanAudit() async throws {
        try await withHarness { h in
            let (report, _, result) = try await auditedRun(h)
            #expect(report.allowed > 0)
            #expect((result.denied[.keyBudget] ?? 0) > 0, "tight keys must run out of budget: \(report.denied_by_reason)")
            #expect(report.errors == 0 && report.unanswered == 0)
            #expect(report.settles > 0 && report.releases > 0)
            #expect(report.p50_us > 0 && report.p50_us <= report.p99_us && report.p99_us <= report.max_us)
            let audit = try #require(report.audit)
            #expect(audit.keysAudited > 0)
            #expect(audit.overAdmission == 0)
            #expect(audit.lostDebits == 0 && audit.doubleDebits == 0 && audit.creditsMismatch == 0)
            #expect(audit.unresolved == 0)
            #expect(audit.passed && report.succeeded, "\(report.summary)")
            let json = try report.json()
            for field in ["decisions_per_s", "allowed", "denied_by_reason", "errors", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "unanswered"] {
                #expect(json.contains("\"\(field)\""), "JSON lacks \(field)")
            }
        }
    }

    @Test("the audit reports a counter corrupted behind bursard's back as a double and a lost debit")
    func plantedError() async throws {
        try await withHarness { h in
            let (report, world, result) = try await auditedRun(h)
            #expect(try #require(report.audit).passed, "\(report.summary)")
            let counters = try #require(report.audit?.spendCounters.sorted { $0.key < $1.key })
            try #require(counters.count >= 2)
            // One key charged 12,345 nano-USD more than bursard decided, another 777 less.
            _ = try await h.redis.send(RedisCommand("INCRBY", counters[0].value, "12345"))
            _ = try await h.redis.send(RedisCommand("DECRBY", counters[1].value, "777"))
            let audit = try await BenchAudit.run(world: world, ledger: result.ledger, redis: h.redis)
            #expect(audit.doubleDebits == 12_345)
            #expect(audit.lostDebits == 777)
            #expect(audit.keysMismatched == 2)
            #expect(!audit.passed && audit.verdict == "FAILED")
            #expect(!BenchReport(result, audit: audit).succeeded)
        }
    }

    @Test("a target that accepts connections but never answers: the run stops at its duration and reports the hang")
    func hungTarget() async throws {
        try await withHarness { h in
            // A listener that accepts and reads but never writes.
            let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .childChannelInitializer { $0.eventLoop.makeSucceededVoidFuture() }
                .bind(host: "127.0.0.1", port: 0).get()
            defer { silent.close(promise: nil) }
            let port = try #require(silent.localAddress?.port)
            var c = config(port, duration: .seconds(1))
            c.drainGrace = .milliseconds(300)
            let world = try await BenchWorld.seed(c.workload, store: MetadataStore(redis: h.redis))
            let started = ContinuousClock.now
            let result = try await BenchRunner.run(c, world: world)
            let elapsed = ContinuousClock.now - started
            let report = BenchReport(result, audit: try await BenchAudit.run(world: world, ledger: result.ledger, redis: h.redis))
            // warmup 0.2 s + duration 1 s + grace 0.3 s, plus slack for a loaded machine.
            #expect(elapsed < .seconds(4), "the harness took \(elapsed)")
            #expect(report.unanswered == c.connections * c.pipeline, "every worker's one CHECK is unanswered")
            #expect(report.decisions == 0 && report.allowed == 0)
            #expect(!report.succeeded)
            #expect(report.summary.contains("HANG"))
            #expect(report.audit?.verdict == "inconclusive")
        }
    }
}
