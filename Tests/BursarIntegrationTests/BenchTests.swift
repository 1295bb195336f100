import BursarBench
import BursarRedis
import BursarStore
import BursarWire
import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// bursar-bench against a real bursard on a real redis-server: the audit is clean on a correct
/// run (closed loop, open loop, unix socket, straight to Redis), catches counters corrupted behind
/// bursard's back (spend and rate), the open loop charges a stall to every request it delayed, and
/// the harness stops on time when the target never answers.
@Suite("bursar-bench: runs, the floor, the audit, bounded stop", .serialized)
struct BenchTests {
    func config(_ targets: [BenchTarget], duration: Duration = .milliseconds(1500), keys: Int = 21) -> BenchConfiguration {
        BenchConfiguration(
            targets: targets, connections: 4, load: .closed(pipeline: 4), duration: duration,
            warmup: .milliseconds(200), drainGrace: .seconds(2),
            // 30% of keys tight (budget, RPM, TPM in turn), each affording about two requests, so
            // denials of every kind appear however slow the machine is.
            workload: Workload(
                keys: keys, projects: 3, denyPermille: 300, settlePermille: 700, tightBudget: 20_000, tightRPM: 2,
                tightTPM: 2 * Workload.reservedTokens, projectRPM: 1_000_000, projectTPM: 100_000_000, projectBudget: 1 << 45))
    }

    func tcp(_ bursard: BursardProcess) -> [BenchTarget] { [.tcp(host: "127.0.0.1", port: bursard.port)] }

    func expectClean(_ report: BenchReport, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(report.allowed > 0, sourceLocation: sourceLocation)
        #expect(report.errors == 0 && report.unanswered == 0 && report.shed == 0, "\(report.summary)", sourceLocation: sourceLocation)
        let audit = try #require(report.audit, sourceLocation: sourceLocation)
        #expect(audit.keysAudited > 0 && audit.projectsAudited == 3, sourceLocation: sourceLocation)
        #expect(audit.overAdmittedSpend == 0 && audit.overAdmittedRequests == 0 && audit.overAdmittedTokens == 0, sourceLocation: sourceLocation)
        #expect(audit.lostDebits == 0 && audit.doubleDebits == 0 && audit.countersMismatched == 0, sourceLocation: sourceLocation)
        #expect(audit.creditsMismatch == 0 && audit.unresolved == 0, sourceLocation: sourceLocation)
        #expect(audit.passed && report.succeeded, "\(report.summary)", sourceLocation: sourceLocation)
    }

    @Test("a closed-loop run against one bursard denies on every kind of tight limit and audits clean")
    func cleanAudit() async throws {
        try await withHarness { h in
            let bursard = try await BursardProcess(redis: h.redisServer.endpoint)
            defer { bursard.stop() }
            var c = config(tcp(bursard))
            c.targetPIDs = [try #require(bursard.child.pid)]
            let (report, _, result) = try await Bench.run(c, redis: h.redis, audit: true)
            try expectClean(report)
            for reason in [DenyReason.keyBudget, .keyRPM, .keyTPM] {
                #expect((result.denied[reason] ?? 0) > 0, "tight keys must be denied by \(reason): \(report.denied_by_reason)")
            }
            #expect(report.settles > 0 && report.releases > 0)
            #expect(report.p50_us > 0 && report.p50_us <= report.p99_us && report.p99_us <= report.max_us)
            #expect(report.followup_p50_us > 0)
            #expect(try #require(report.cpu_s_per_1000_decisions) > 0)
            #expect(try #require(report.rss_start_kib) > 1_000)
            // What Redis ran for it, from INFO deltas: every decision runs its CHECK step (a
            // third end with no SETTLE or RELEASE, being denied), each several calls; steps of
            // the one organization that reach Redis together share a script call (SPEC §13.11).
            let scripts = try #require(report.redis_scripts_per_decision)
            let commands = try #require(report.redis_commands_per_decision)
            #expect(scripts > 0 && scripts <= 3, "\(report.summary)")
            #expect(commands >= 4 && commands >= scripts * 2 && commands <= 60, "\(report.summary)")
            #expect(try #require(report.redis_cpu_s_per_1000_decisions) > 0)
            #expect(report.summary.contains("commands per decision"))
            let json = try report.json()
            for field in [
                "decisions_per_s", "allowed", "denied_by_reason", "errors", "p50_us", "p90_us", "p99_us", "p999_us", "max_us",
                "unanswered", "cpu_s_per_1000_decisions", "over_admitted_requests", "over_admitted_tokens", "over_admitted_spend",
                "lost_debits", "double_debits", "redis_commands_per_decision", "redis_scripts_per_decision", "redis_cpu_s_per_1000_decisions",
            ] {
                #expect(json.contains("\"\(field)\""), "JSON lacks \(field)")
            }
        }
    }

    @Test("the edges of the measured period are sampled on time while every thread of Swift's cooperative pool is held: target CPU, Redis's commands and memory are all measured")
    func windowSampledWhilePoolHeld() async throws {
        try await withHarness { h in
            let bursard = try await BursardProcess(redis: h.redisServer.endpoint)
            defer { bursard.stop() }
            var c = config(tcp(bursard), duration: .milliseconds(300))
            c.warmup = .milliseconds(600)
            c.targetPIDs = [try #require(bursard.child.pid)]
            let world = try await BenchWorld.seed(c.workload, store: MetadataStore(redis: h.redis))
            // Once load reaches Redis (the run is in its warmup), every thread of the cooperative
            // pool is held for 1.2 s, as a test waiting for a child process to stop holds one: the
            // measured period (0.6 s after the run's start, for 0.3 s) falls inside the hold. A
            // canary task asks to wake 0.6 s into the hold, about when the period starts.
            let hold = Task {
                try await waitForScripts(h, atLeast: 20)
                let release = ContinuousClock.now + .milliseconds(1200)
                let canary = Task {
                    let asked = ContinuousClock.now + .milliseconds(600)
                    try await Task.sleep(until: asked)
                    return ContinuousClock.now - asked
                }
                let holders = (0..<(4 * ProcessInfo.processInfo.activeProcessorCount)).map { _ in
                    Task { while ContinuousClock.now < release { usleep(5_000) } }
                }
                for holder in holders { await holder.value }
                return try await canary.value
            }
            let result = try await BenchRunner.run(c, world: world, redis: h.redis)
            let canaryLate = try await hold.value
            #expect(canaryLate >= .milliseconds(400), "the pool was not held, so this run shows nothing: the canary woke \(canaryLate) late")
            let report = BenchReport(result, configuration: c, audit: try await BenchAudit.run(world: world, ledger: result.ledger, redis: h.redis))
            try expectClean(report)
            // The samples bracket the measured period: about as many CHECKs were answered between
            // them as in it. A sampler waiting on the pool wakes after the run and sees none.
            let sampled = try #require(result.sampledDecisions)
            #expect(sampled * 2 > result.decisions && sampled < result.decisions * 2, "\(sampled) answered between the samples, \(result.decisions) in the period")
            #expect(try #require(report.cpu_s_per_1000_decisions) > 0, "\(report.summary)")
            #expect(try #require(report.harness_cpu_s_per_1000_decisions) > 0, "\(report.summary)")
            #expect(try #require(report.redis_commands_per_decision) >= 4, "\(report.summary)")
            #expect(try #require(report.redis_cpu_s_per_1000_decisions) > 0, "\(report.summary)")
            #expect(try #require(report.rss_start_kib) > 1_000)
        }
    }

    @Test("the same decisions straight against Redis (the floor) and an open loop over a unix socket both audit clean")
    func floorAndOpenLoop() async throws {
        try await withHarness { h in
            var direct = config([], keys: 30)
            direct.direct = h.redisServer.endpoint.description
            let (floor, _, floorResult) = try await Bench.run(direct, redis: h.redis, audit: true)
            #expect(floor.mode == "direct")
            try expectClean(floor)
            #expect((floorResult.denied[.keyRPM] ?? 0) > 0, "the floor runs bursar's own scripts: \(floor.denied_by_reason)")
            #expect(try #require(floor.redis_scripts_per_decision) > 0, "\(floor.summary)")

            let socket = NSTemporaryDirectory() + "bench-\(UUID().uuidString.prefix(8)).sock"
            let bursard = try await BursardProcess(redis: h.redisServer.endpoint, extraArguments: ["--unix", socket])
            defer { bursard.stop() }
            var open = config([.unix(path: socket)], duration: .seconds(2), keys: 30)
            open.load = .open(rate: 200)
            let (report, _, _) = try await Bench.run(open, redis: h.redis, audit: true)
            try expectClean(report)
            // 200/s for 2 s on a fixed schedule: every scheduled CHECK is sent and answered.
            #expect(report.decisions == 400, "\(report.summary)")
            let output = BenchOutput(bursard: report, direct: floor)
            #expect(output.ratio_to_direct == report.decisions_per_s / floor.decisions_per_s)
        }
    }

    @Test("open loop: a stalled target is charged to every CHECK scheduled during the stall (coordinated omission corrected)")
    func openLoopChargesStalls() async throws {
        try await withHarness { h in
            let bursard = try await BursardProcess(redis: h.redisServer.endpoint)
            defer { bursard.stop() }
            let pid = try #require(bursard.child.pid)
            var c = config(tcp(bursard), duration: .seconds(2))
            c.load = .open(rate: 200)
            c.warmup = .zero
            let world = try await BenchWorld.seed(c.workload, store: MetadataStore(redis: h.redis))
            // Stop bursard for 600 ms once the run is under way (100 CHECKs decided, half a second
            // at 200/s; counted at Redis, not timed from before the run, whose setup a loaded
            // machine can stretch past any fixed delay): about 120 CHECKs fall into the stall.
            let stall = Task {
                try await waitForScripts(h, atLeast: 100)
                kill(pid, SIGSTOP)
                try await Task.sleep(for: .milliseconds(600))
                kill(pid, SIGCONT)
            }
            let result = try await BenchRunner.run(c, world: world)
            try await stall.value
            let report = BenchReport(result, configuration: c, audit: try await BenchAudit.run(world: world, ledger: result.ledger, redis: h.redis))
            try expectClean(report)
            // Measured from the scheduled start, the CHECK due when the stall began waited it out,
            // and the ~30% scheduled during it waited part of it: the p90 shows the stall. A closed
            // loop (or an open loop timing from the actual send) would report the waits as one
            // slow request per lane.
            #expect(report.max_us >= 550_000, "\(report.summary)")
            #expect(report.p90_us >= 100_000, "\(report.summary)")
        }
    }

    @Test("Redis paused mid-run: decisions answer store_unavailable, and unknown outcomes stay within the audit's ranges")
    func redisPausedMidRun() async throws {
        try await withHarness { h in
            let bursard = try await BursardProcess(redis: h.redisServer.endpoint)
            defer { bursard.stop() }
            let c = config(tcp(bursard), duration: .seconds(3))
            let world = try await BenchWorld.seed(c.workload, store: MetadataStore(redis: h.redis))
            // 1.2 s of a frozen Redis: bursard's 50 ms deadline answers store_unavailable, and
            // SETTLEs caught in the pause have an unknown outcome (they may run when Redis resumes).
            // The pause falls inside the measured part of the run: after load has reached Redis
            // (the run's start can lag on a loaded machine) and past the 200 ms warmup. It outlasts
            // the harness's longest backoff after `overloaded` answers (16 × the 50 ms
            // retry_after_ms, plus a quarter): on a machine so loaded that bursard was refusing
            // load, every flow still sends a CHECK into the pause.
            let pause = Task {
                try await waitForScripts(h, atLeast: 100)
                try await Task.sleep(for: .milliseconds(500))
                h.redisServer.signal(SIGSTOP)
                try await Task.sleep(for: .milliseconds(1200))
                h.redisServer.signal(SIGCONT)
            }
            let result = try await BenchRunner.run(c, world: world)
            try await pause.value
            try await Task.sleep(for: .milliseconds(200))
            let audit = try await BenchAudit.run(world: world, ledger: result.ledger, redis: h.redis)
            #expect((result.denied[.storeUnavailable] ?? 0) > 0, "the pause must show as store_unavailable: \(result.denied), decisions \(result.decisions)")
            #expect(result.errors == 0 && result.unanswered == 0)
            #expect(audit.unattributed == 0)
            #expect(audit.lostDebits == 0 && audit.doubleDebits == 0 && audit.creditsMismatch == 0, "\(audit.summary)")
            #expect(audit.overAdmittedSpend == 0 && audit.overAdmittedRequests == 0 && audit.overAdmittedTokens == 0)
            #expect(audit.verdict == (audit.unresolved == 0 ? "passed" : "inconclusive"), "\(audit.summary)")
        }
    }

    @Test("the audit reports spend counters corrupted behind bursard's back as a double and a lost debit")
    func plantedSpendError() async throws {
        try await withHarness { h in
            let bursard = try await BursardProcess(redis: h.redisServer.endpoint)
            defer { bursard.stop() }
            let c = config(tcp(bursard))
            let (report, world, result) = try await Bench.run(c, redis: h.redis, audit: true)
            #expect(try #require(report.audit).passed, "\(report.summary)")
            let counters = try #require(report.audit?.spendCounters.sorted { $0.key < $1.key })
            try #require(counters.count >= 2)
            // One key charged 12,345 nano-USD more than bursard decided, another 777 less.
            _ = try await h.redis.send(RedisCommand("INCRBY", counters[0].value, "12345"))
            _ = try await h.redis.send(RedisCommand("DECRBY", counters[1].value, "777"))
            let audit = try await BenchAudit.run(world: world, ledger: result.ledger, redis: h.redis)
            #expect(audit.doubleDebits == 12_345)
            #expect(audit.lostDebits == 777)
            #expect(audit.countersMismatched == 2)
            #expect(!audit.passed && audit.verdict == "FAILED")
            #expect(!BenchReport(result, configuration: c, audit: audit).succeeded)
        }
    }

    @Test("the audit reports over-admission when rate buckets are emptied behind bursard's back during the run")
    func plantedRateError() async throws {
        try await withHarness { h in
            let bursard = try await BursardProcess(redis: h.redisServer.endpoint)
            defer { bursard.stop() }
            let c = config(tcp(bursard), duration: .seconds(2))
            let world = try await BenchWorld.seed(c.workload, store: MetadataStore(redis: h.redis))
            // Every 50 ms, wipe the buckets of the RPM- and TPM-tight keys: each wipe lets bursard
            // admit another burst, beyond what the limits allow over the run.
            let buckets = world.keys.enumerated().compactMap { k, key -> String? in
                switch c.workload.tightness(ofKey: k) {
                case .rpm, .tpm: Keyspace.buckets(world.orgID, scope: "k", id: key.id)
                default: nil
                }
            }
            try #require(buckets.count >= 4)
            let wiper = Task {
                while !Task.isCancelled {
                    var del = RedisCommand("DEL")
                    for b in buckets { del.append(b) }
                    _ = try? await h.redis.send(del)
                    try? await Task.sleep(for: .milliseconds(50))
                }
            }
            let result = try await BenchRunner.run(c, world: world)
            wiper.cancel()
            let audit = try await BenchAudit.run(world: world, ledger: result.ledger, redis: h.redis)
            #expect(audit.overAdmittedRequests > 0, "\(audit.summary)")
            #expect(audit.overAdmittedTokens > 0, "\(audit.summary)")
            // Spend was not touched: those counters still agree.
            #expect(audit.lostDebits == 0 && audit.doubleDebits == 0 && audit.creditsMismatch == 0)
            #expect(audit.verdict == "FAILED")
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
            var c = config([.tcp(host: "127.0.0.1", port: port)], duration: .seconds(1))
            c.drainGrace = .milliseconds(300)
            let world = try await BenchWorld.seed(c.workload, store: MetadataStore(redis: h.redis))
            let started = ContinuousClock.now
            let result = try await BenchRunner.run(c, world: world)
            let elapsed = ContinuousClock.now - started
            let report = BenchReport(result, configuration: c, audit: try await BenchAudit.run(world: world, ledger: result.ledger, redis: h.redis))
            // warmup 0.2 s + duration 1 s + grace 0.3 s, plus slack for a loaded machine.
            #expect(elapsed < .seconds(4), "the harness took \(elapsed)")
            #expect(report.unanswered == c.connections * 4, "every lane's 4 CHECKs are unanswered")
            #expect(report.decisions == 0 && report.allowed == 0)
            #expect(!report.succeeded)
            #expect(report.summary.contains("HANG"))
            #expect(report.audit?.verdict == "inconclusive")
        }
    }
}

extension BenchTests {
    @Test("a lane whose bursard is SIGKILLed reconnects to the other target and finishes its SETTLEs and RELEASEs there")
    func laneSurvivesKilledTarget() async throws {
        try await withHarness { h in
            // A short instance lease, so the survivor sweeps what the killed one left within the test.
            let doomed = try await BursardProcess(redis: h.redisServer.endpoint, extraArguments: ["--instance-lease-ms", "1000"])
            let survivor = try await BursardProcess(redis: h.redisServer.endpoint, extraArguments: ["--instance-lease-ms", "1000"])
            defer { doomed.stop(); survivor.stop() }
            let pid = try #require(doomed.child.pid)
            // Lanes 0 and 2 start on the doomed instance, 1 and 3 on the survivor; eight flows
            // each, so the kill catches both CHECKs and follow-ups in flight.
            var c = config([.tcp(host: "127.0.0.1", port: doomed.port), .tcp(host: "127.0.0.1", port: survivor.port)], duration: .seconds(2))
            c.load = .closed(pipeline: 8)
            c.warmup = .zero
            let world = try await BenchWorld.seed(c.workload, store: MetadataStore(redis: h.redis))
            // Mid-load: once CHECKs flow (the run has connected every lane), and a little later.
            let killer = Task {
                try await waitForScripts(h, atLeast: 100)
                try await Task.sleep(for: .milliseconds(300))
                kill(pid, SIGKILL)
            }
            let result = try await BenchRunner.run(c, world: world)
            try await killer.value
            let audit = try await BenchAudit.run(world: world, ledger: result.ledger, redis: h.redis)
            let report = BenchReport(result, configuration: c, audit: audit)
            // The CHECKs in flight on the dead connections got no answer: not errors, not admitted.
            #expect(result.noAnswer > 0 && result.noAnswer <= 2 * 8, "\(report.summary)")
            #expect(result.errors == 0 && result.unanswered == 0, "\(report.summary)")
            // Both doomed lanes moved to the survivor (the next target) at the first attempt …
            #expect(result.reconnects == 2, "\(report.summary)")
            // … re-sent the SETTLEs and RELEASEs the kill interrupted there, and every one got a
            // definitive answer: nothing is left uncertain.
            #expect(result.resent > 0, "\(report.summary)")
            #expect(result.ledger.unresolved == 0 && result.ledger.unattributed == 0, "\(report.summary)")
            #expect(report.decisions > 100 && report.allowed > 0, "\(report.summary)")
            #expect(audit.unresolved == 0 && audit.unattributed == 0)
            #expect(audit.lostDebits == 0 && audit.creditsMismatch >= 0, "\(audit.summary)")
            #expect(audit.overAdmittedSpend == 0 && audit.overAdmittedRequests == 0 && audit.overAdmittedTokens == 0, "\(audit.summary)")
            // Whatever Redis holds beyond the ledger is at most what the CHECKs without an answer
            // could have reserved (on a key and a project counter each): the re-sent SETTLEs and
            // RELEASEs are all accounted for.
            let unanswered = Int64(result.noAnswer) * (Workload.minEstimate + Workload.estimateSpread)
            #expect(audit.creditsMismatch <= unanswered && audit.doubleDebits <= 2 * unanswered, "\(audit.summary)")
            // The survivor swept what the killed instance left undelivered (SPEC §13.7), so the
            // ledger (which records nothing for a CHECK without an answer) matches Redis exactly.
            #expect(audit.doubleDebits == 0 && audit.creditsMismatch == 0 && audit.passed, "\(audit.summary)")
        }
    }

    @Test("against tiny in-flight bounds: overloaded answers are counted with their own latency, and goodput counts only what Redis decided")
    func overloadedFigures() async throws {
        try await withHarness { h in
            let bursard = try await BursardProcess(
                redis: h.redisServer.endpoint, extraArguments: ["--max-in-flight", "4", "--max-in-flight-per-connection", "2"])
            defer { bursard.stop() }
            var c = config(tcp(bursard))
            c.load = .closed(pipeline: 4)
            let (report, _, result) = try await Bench.run(c, redis: h.redis, audit: true)
            #expect(report.overloaded > 0 && report.overloaded == result.denied[.overloaded], "\(report.summary)")
            #expect(report.overloaded_p50_us > 0 && report.overloaded_p50_us <= report.overloaded_p99_us, "\(report.summary)")
            #expect(report.overloaded_p99_us <= report.max_us)
            // Goodput: allowed plus denied for reasons 1…15, per measured second; never above
            // the rate of all answers, which includes the overloaded ones.
            let decided = result.allowed + result.denied.filter { (1...15).contains($0.key.rawValue) }.values.reduce(0, +)
            #expect(result.goodput == decided && decided > 0)
            #expect(report.goodput_per_s == Double(decided) / result.measuredSeconds)
            #expect(report.goodput_per_s < report.decisions_per_s, "\(report.summary)")
            #expect(report.store_unavailable == (result.denied[.storeUnavailable] ?? 0))
            #expect(report.store_unavailable_share == Double(report.store_unavailable) / Double(report.decisions))
            #expect(report.errors == 0 && report.unanswered == 0 && report.no_answer == 0, "\(report.summary)")
            let audit = try #require(report.audit)
            #expect(audit.passed && audit.unresolvedAdmissions == 0, "\(report.summary)")
            let json = try report.json()
            for field in [
                "goodput_per_s", "overloaded", "overloaded_p50_us", "overloaded_p99_us", "store_unavailable", "store_unavailable_share",
                "no_answer", "reconnects", "resent", "unresolved_admissions", "resolve_waited_ms",
            ] {
                #expect(json.contains("\"\(field)\""), "JSON lacks \(field)")
            }
            #expect(report.summary.contains("goodput/s") && report.summary.contains("no answer"))
        }
    }

    @Test("closed loop: a flow answered overloaded waits retry_after_ms, doubling while it keeps being refused; the open loop keeps its schedule")
    func honoursRetryAfter() async throws {
        try await withHarness { h in
            let server = try await OverloadedServer.start(retryAfterMs: 200)
            defer { server.close() }
            var c = config([.tcp(host: "127.0.0.1", port: server.port)], duration: .seconds(1))
            c.connections = 1
            c.load = .closed(pipeline: 4)
            c.warmup = .zero
            c.drainGrace = .milliseconds(300)
            let world = try await BenchWorld.seed(c.workload, store: MetadataStore(redis: h.redis))
            let closed = try await BenchRunner.run(c, world: world)
            let sent = server.checks
            // Each of the 4 flows sends at 0, then after 200–250 ms, then 400–500 ms more (backoff),
            // then not before 800 ms more: three in the 1 s run. Waiting a flat 200 ms would send
            // up to six each, and a lane ignoring retry_after_ms thousands.
            #expect(sent >= 4 && sent <= 4 * 3, "CHECKs sent: \(sent)")
            #expect(closed.decisions == closed.denied[.overloaded] && closed.goodput == 0)
            #expect(closed.errors == 0 && closed.unanswered == 0 && closed.noAnswer == 0)

            // The open loop sends on its schedule whatever the answers: 100/s for 1 s.
            server.resetChecks()
            c.load = .open(rate: 100)
            let open = try await BenchRunner.run(c, world: world)
            #expect(server.checks == 100 && open.decisions == 100, "\(open.decisions)")
            #expect(open.denied[.overloaded] == 100)
        }
    }
}

/// A data-plane listener that answers every CHECK `overloaded` with a fixed `retry_after_ms`, and
/// counts them.
final class OverloadedServer: Sendable {
    let channel: any Channel
    private let counter: Counter
    var port: Int { channel.localAddress?.port ?? 0 }
    /// CHECKs answered since the start or the last `resetChecks()`.
    var checks: Int { counter.value.load(ordering: .relaxed) }

    private init(channel: any Channel, counter: Counter) {
        self.channel = channel
        self.counter = counter
    }

    func resetChecks() { counter.value.store(0, ordering: .relaxed) }

    static func start(retryAfterMs: UInt32) async throws -> OverloadedServer {
        let counter = Counter()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(FrameDecoder(direction: .toServer)), MessageToByteHandler(FrameEncoder()),
                        Responder(retryAfterMs: retryAfterMs, counter: counter),
                    ])
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return OverloadedServer(channel: channel, counter: counter)
    }

    func close() { channel.close(promise: nil) }

    final class Counter: Sendable {
        let value = Atomic<Int>(0)
    }

    final class Responder: ChannelInboundHandler {
        typealias InboundIn = Frame
        typealias OutboundOut = Frame
        let retryAfterMs: UInt32
        let counter: Counter

        init(retryAfterMs: UInt32, counter: Counter) {
            self.retryAfterMs = retryAfterMs
            self.counter = counter
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = unwrapInboundIn(data)
            guard case .check = frame.body else { return }
            counter.value.add(1, ordering: .relaxed)
            var result = CheckResult.deny(.overloaded)
            result.retryAfterMs = retryAfterMs
            context.writeAndFlush(wrapOutboundOut(Frame(requestID: frame.requestID, body: .checkResult(result))), promise: nil)
        }
    }
}

/// The harness's deterministic workload, without any process.
@Suite("bursar-bench: the workload")
struct WorkloadTests {
    @Test("uniform keys are spread evenly; zipf keys follow 1/(i+1)^s")
    func keyDistribution() {
        let draws = 200_000
        var uniform = [Int](repeating: 0, count: 10)
        let u = Workload(keys: 10)
        for n in 0..<UInt64(draws) { uniform[u.keyIndex(n)] += 1 }
        for count in uniform { #expect(abs(count - draws / 10) < draws / 100, "uniform: \(uniform)") }

        var skewed = [Int](repeating: 0, count: 100)
        let z = Workload(keys: 100, zipf: 1.0)
        for n in 0..<UInt64(draws) { skewed[z.keyIndex(n)] += 1 }
        // With s = 1, key 0 is drawn twice as often as key 1 and ten times as often as key 9.
        let ratio1 = Double(skewed[0]) / Double(skewed[1])
        let ratio9 = Double(skewed[0]) / Double(skewed[9])
        #expect(ratio1 > 1.85 && ratio1 < 2.15, "\(skewed.prefix(10))")
        #expect(ratio9 > 9 && ratio9 < 11, "\(skewed.prefix(10))")
        #expect(skewed.allSatisfy { $0 > 0 }, "every key is drawn")
    }

    @Test("tight keys come first and take turns on budget, RPM and TPM; actuals never exceed estimates")
    func tightKeysAndCosts() {
        let w = Workload(keys: 10, denyPermille: 500)
        #expect(w.tightKeys == 5)
        #expect((0..<10).map { w.tightness(ofKey: $0) } == [.budget, .rpm, .tpm, .budget, .rpm, nil, nil, nil, nil, nil])
        for n in 0..<UInt64(10_000) {
            let e = w.estimate(n)
            #expect(e >= Workload.minEstimate && e < Workload.minEstimate + Workload.estimateSpread)
            if let a = w.actual(n, estimate: e) { #expect(a >= 0 && a <= e) }
        }
        #expect(Workload.settleTokenDelta < 0)
    }

    @Test("the rate bound is the bucket contract R + R·t/60, in integers")
    func rateBound() {
        #expect(BenchAudit.rateBound(60, spanMs: 0) == 60)
        #expect(BenchAudit.rateBound(60, spanMs: 1_000) == 61)
        #expect(BenchAudit.rateBound(60, spanMs: 1_999) == 61)
        #expect(BenchAudit.rateBound(100_000_000, spanMs: 86_400_000) == 100_000_000 + 100_000_000 * 1_440)
    }
}

extension BenchTests {
    /// The built `bursar-bench`, beside the `bursard` the tests run.
    static func benchBinary() throws -> String {
        let path = URL(fileURLWithPath: try BursardProcess.binary()).deletingLastPathComponent().appendingPathComponent("bursar-bench").path
        try #require(FileManager.default.isExecutableFile(atPath: path), "bursar-bench not built beside bursard (\(path)); run `swift build` first")
        return path
    }

    /// Runs `bursar-bench` with `arguments` to its end; its exit code and what it printed
    /// (stdout and stderr together).
    static func runBench(_ arguments: [String]) async throws -> (code: Int32?, output: String) {
        let log = NSTemporaryDirectory() + "bench-cli-\(UUID().uuidString.prefix(8)).log"
        defer { try? FileManager.default.removeItem(atPath: log) }
        let child = try ChildProcess([try benchBinary()] + arguments, logPath: log)
        let exited = await TestBursard.waitForExit(child, within: .seconds(30))
        #expect(exited, "bursar-bench \(arguments) still running after 30 s")
        child.terminate()
        return (child.exitCode, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }

    @Test("bursar-bench --loops: the harness runs its connections on that many event loops and reports it; a count out of range is refused naming the flag")
    func harnessLoops() async throws {
        try await withHarness { h in
            let bursard = try await BursardProcess(redis: h.redisServer.endpoint)
            defer { bursard.stop() }
            let common = [
                "--redis", h.redisServer.endpoint.description, "--target", "127.0.0.1:\(bursard.port)", "--connections", "4",
                "--pipeline", "2", "--duration", "0.5", "--warmup", "0", "--keys", "4", "--projects", "1", "--deny-share", "0",
                "--audit", "--json",
            ]
            // Four connections over one loop, then over three: the report counts the loops the
            // lanes ran on (one per core without the flag).
            for loops in [1, 3] {
                let (code, output) = try await Self.runBench(common + ["--loops", "\(loops)"])
                #expect(code == 0, "\(output)")
                let json = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], "\(output)")
                let report = try #require(json["bursard"] as? [String: Any])
                #expect(report["harness_loops"] as? Int == loops, "\(output)")
                #expect((report["decisions"] as? Int ?? 0) > 0 && report["audit_verdict"] as? String == "passed", "\(output)")
            }
            for bad in ["0", "257"] {
                let (code, output) = try await Self.runBench(common + ["--loops", bad])
                #expect(code == 64, "\(output)")
                #expect(output.contains("--loops must be 1…256, not \(bad)"), "\(output)")
            }
        }
    }
}
