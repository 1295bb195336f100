import ArgumentParser
import BursarBench

/// `bursar-bench`: closed-loop load against bursard, latency histogram, Redis audit.
@main
struct BursarBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bursar-bench",
        abstract: "Load-test bursard (closed loop) and audit Redis against what was admitted.")

    @Option(help: "Redis URL the targets use (the harness seeds and audits there).")
    var redis: String

    @Option(help: "bursard data-plane address HOST:PORT (repeatable).")
    var target: [String]

    @Option(help: "Connections in total, spread over the targets.")
    var connections = 4

    @Option(help: "Requests in flight per connection.")
    var pipeline = 8

    @Option(help: "Measured seconds (the run always stops by itself).")
    var duration = 10.0

    @Option(help: "Seconds of load before measuring.")
    var warmup = 1.0

    @Option(help: "Seconds in-flight requests may take after the end before they count as unanswered.")
    var drainGrace = 2.0

    @Option(help: "Keys to seed.")
    var keys = 100

    @Option(help: "Projects to seed.")
    var projects = 4

    @Option(help: "Rough share of CHECKs to be denied (0…1): that share of keys gets a tight budget.")
    var denyShare = 0.1

    @Option(help: "Share of admissions settled (0…1); the rest are released.")
    var settleShare = 0.8

    @Option(help: "PID of a local target process, for CPU per decision (repeatable).")
    var targetPid: [Int32] = []

    @Flag(help: "Print JSON instead of the summary.")
    var json = false

    @Flag(help: "After the run, compare Redis counters with what the harness saw.")
    var audit = false

    func validate() throws {
        guard !target.isEmpty else { throw ValidationError("at least one --target is required") }
        guard target.allSatisfy({ BenchTarget(parsing: $0) != nil }) else { throw ValidationError("--target must be HOST:PORT") }
        guard connections > 0, pipeline > 0, keys > 0, projects > 0 else { throw ValidationError("counts must be positive") }
        guard duration > 0, warmup >= 0, drainGrace >= 0 else { throw ValidationError("durations must be positive") }
        guard (0...1).contains(denyShare), (0...1).contains(settleShare) else { throw ValidationError("shares are 0…1") }
    }

    func run() async throws {
        let workload = Workload(
            keys: keys, projects: projects, denyPermille: Int((denyShare * 1000).rounded()), settlePermille: Int((settleShare * 1000).rounded()))
        let config = BenchConfiguration(
            targets: target.compactMap(BenchTarget.init(parsing:)), connections: connections, pipeline: pipeline,
            duration: .milliseconds(Int64(duration * 1000)), warmup: .milliseconds(Int64(warmup * 1000)),
            drainGrace: .milliseconds(Int64(drainGrace * 1000)), workload: workload, targetPIDs: targetPid)
        let client = try Bench.redisClient(url: redis)
        defer { client.shutdown() }
        let (report, _, _) = try await Bench.run(config, redis: client, audit: audit)
        print(json ? try report.json() : report.summary)
        if !report.succeeded { throw ExitCode(1) }
    }
}
