import ArgumentParser
import BursarBench

/// `bursar-bench`: load against bursard (closed or open loop) and straight against Redis (the
/// floor), latency histograms, CPU and memory of the targets, and the Redis audit.
@main
struct BursarBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bursar-bench",
        abstract: "Load-test bursard, measure the Redis floor, and audit Redis against what was admitted.",
        discussion: """
            With --target/--unix the decisions go through bursard; with --direct the same decisions go straight \
            to Redis with bursar's own scripts (the floor). Given both, both run, one after the other, each on \
            a freshly seeded organization, and the ratio is printed. Every run stops by itself: warmup + \
            duration + drain grace, plus about a second to close what never answered.
            """)

    @Option(help: "Redis URL the targets use; the harness seeds and audits there (default: the --direct URL).")
    var redis: String?

    @Option(help: "bursard data-plane address HOST:PORT (repeatable; connections are spread over all targets).")
    var target: [String] = []

    @Option(help: "bursard data-plane unix socket path (repeatable).")
    var unix: [String] = []

    @Option(help: "Also (or only) run the same decisions straight against this Redis URL: the floor.")
    var direct: String?

    @Option(help: "Connections in total, spread over the targets.")
    var connections = 4

    @Option(help: "Closed loop: CHECKs in flight per connection.")
    var pipeline = 8

    @Option(help: "Open loop: CHECKs per second in total, on a fixed schedule (latency corrected for coordinated omission).")
    var rate: Int?

    @Option(help: "Measured seconds (the run always stops by itself).")
    var duration = 10.0

    @Option(help: "Seconds of load before measuring.")
    var warmup = 1.0

    @Option(help: "Seconds in-flight requests may take after the end before they count as unanswered.")
    var drainGrace = 2.0

    @Option(help: "Event loop threads of the harness (its connections are spread over them); default: one per core. The harness shares the machine with what it measures: each thread of it competes with Redis and bursard for the cores.")
    var loops: Int?

    @Option(help: "Open loop: most requests in flight per connection before scheduled CHECKs are shed.")
    var maxInFlight = 10_000

    @Option(help: "Keys to seed.")
    var keys = 100

    @Option(help: "Projects to seed.")
    var projects = 4

    @Option(help: "Key popularity skew: 0 uniform, s > 0 zipf (key i drawn with weight 1/(i+1)^s).")
    var zipf = 0.0

    @Option(help: "Share of keys (0…1) given one tight limit (budget, RPM or TPM in turn), so about that share of CHECKs is denied.")
    var denyShare = 0.1

    @Option(help: "Share of admissions settled (0…1); the rest are released.")
    var settleShare = 0.8

    @Option(help: "RPM cap of every seeded project.")
    var projectRpm: Int64?

    @Option(help: "TPM cap of every seeded project.")
    var projectTpm: Int64?

    @Option(help: "Monthly budget of every seeded project, nano-USD.")
    var projectBudget: Int64?

    @Option(help: "PID of a local target process, for CPU per decision and RSS (repeatable).")
    var targetPid: [Int32] = []

    @Flag(help: "Print JSON instead of the summary.")
    var json = false

    @Flag(help: "After each run, compare Redis counters with what the harness saw (over-admission, lost and double debits).")
    var audit = false

    @Option(help: "Audit: most seconds to wait, after the run drains, for bursard to resolve the admissions it could not deliver (the org's undelivered set to empty); what remains makes the audit inconclusive.")
    var resolveWait = 30.0

    var resolveWaitDuration: Duration { .milliseconds(Int64(resolveWait * 1000)) }

    var targets: [BenchTarget] { target.compactMap(BenchTarget.init(parsing:)) + unix.map { .unix(path: $0) } }

    func validate() throws {
        guard !target.isEmpty || !unix.isEmpty || direct != nil else {
            throw ValidationError("give at least one --target or --unix, or --direct")
        }
        for t in target where BenchTarget(parsing: t) == nil { throw ValidationError("--target \(t): expected HOST:PORT") }
        guard redis != nil || direct != nil else { throw ValidationError("--redis is required (the Redis the targets use)") }
        guard connections > 0, pipeline > 0, keys > 0, projects > 0, maxInFlight > 0 else {
            throw ValidationError("--connections, --pipeline, --keys, --projects and --max-in-flight must be positive")
        }
        if let rate, rate <= 0 { throw ValidationError("--rate must be positive") }
        if let loops, !(1...256).contains(loops) { throw ValidationError("--loops must be 1…256, not \(loops)") }
        guard duration > 0, warmup >= 0, drainGrace >= 0, resolveWait >= 0 else {
            throw ValidationError("--duration must be positive, --warmup, --drain-grace and --resolve-wait not negative")
        }
        guard (0...1).contains(denyShare), (0...1).contains(settleShare) else { throw ValidationError("--deny-share and --settle-share are 0…1") }
        guard zipf >= 0 else { throw ValidationError("--zipf must not be negative") }
        for (name, value) in [("--project-rpm", projectRpm), ("--project-tpm", projectTpm), ("--project-budget", projectBudget)] {
            if let value, value <= 0 { throw ValidationError("\(name) must be positive") }
        }
    }

    func run() async throws {
        if let loops { Bench.useEventLoops(loops) }
        let workload = Workload(
            keys: keys, projects: projects, denyPermille: Int((denyShare * 1000).rounded()),
            settlePermille: Int((settleShare * 1000).rounded()), zipf: zipf, projectRPM: projectRpm, projectTPM: projectTpm,
            projectBudget: projectBudget)
        var config = BenchConfiguration(
            targets: targets, connections: connections, load: rate.map { .open(rate: $0) } ?? .closed(pipeline: pipeline),
            duration: .milliseconds(Int64(duration * 1000)), warmup: .milliseconds(Int64(warmup * 1000)),
            drainGrace: .milliseconds(Int64(drainGrace * 1000)), maxInFlightPerConnection: maxInFlight, workload: workload,
            targetPIDs: targetPid)
        let client = try Bench.redisClient(url: redis ?? direct!)
        defer { client.shutdown() }
        var bursard: BenchReport?
        var floor: BenchReport?
        if !config.targets.isEmpty {
            bursard = try await Bench.run(config, redis: client, audit: audit, resolveWait: resolveWaitDuration).report
        }
        if let direct {
            config.direct = direct
            config.targetPIDs = []
            floor = try await Bench.run(config, redis: client, audit: audit, resolveWait: resolveWaitDuration).report
        }
        let output = BenchOutput(bursard: bursard, direct: floor)
        print(json ? try output.json() : output.summary)
        if !output.succeeded { throw ExitCode(1) }
    }
}
