import BursarRedis
import Foundation
import NIOCore
import NIOPosix

/// What the Redis the targets use did, read from `INFO commandstats` and `INFO cpu` at the start
/// and the end of the measured period: the commands it ran (every call inside a script counted
/// besides the script call itself, as Redis counts them) and the CPU it used.
struct RedisCostSample: Sendable {
    /// Calls by command name (`evalsha`, `hmget`, `config|resetstat`, …).
    var calls: [String: Int]
    /// `used_cpu_user` + `used_cpu_sys`, seconds (every thread of the server).
    var cpuSeconds: Double

    /// Commands the harness itself sends to take a sample; not counted.
    static let ownCommands: Set<String> = ["info"]
    /// Script invocations (each also counted with the calls it made).
    static let scriptCommands: Set<String> = ["evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro"]

    /// Takes a sample from `redis`; nil on Redis Cluster (each node keeps its own statistics, and
    /// the harness cannot know which nodes the targets used) or when the server cannot be read.
    ///
    /// It blocks the calling thread (at most about two seconds), which must not be an event loop:
    /// the measurement window takes its samples on a thread of its own.
    static func take(_ redis: RedisClient) -> RedisCostSample? {
        if case .cluster = redis.configuration.target { return nil }
        let promise = MultiThreadedEventLoopGroup.singleton.any().makePromise(of: [RedisValue].self)
        redis.send([RedisCommand("INFO", "commandstats"), RedisCommand("INFO", "cpu")], deadline: .now() + .seconds(2), promise: promise)
        guard let replies = try? promise.futureResult.wait(),
              replies.count == 2, let commandstats = replies[0].string, let cpu = replies[1].string
        else { return nil }
        return parse(commandstats: commandstats, cpu: cpu)
    }

    /// Parses the two INFO sections; nil when the CPU lines are missing.
    static func parse(commandstats: String, cpu: String) -> RedisCostSample? {
        var calls: [String: Int] = [:]
        for line in commandstats.split(whereSeparator: \.isNewline) {
            // cmdstat_hmget:calls=214127,usec=679988,usec_per_call=3.18,…
            guard line.hasPrefix("cmdstat_"), let colon = line.firstIndex(of: ":") else { continue }
            let name = String(line[line.index(line.startIndex, offsetBy: 8)..<colon])
            for field in line[line.index(after: colon)...].split(separator: ",") where field.hasPrefix("calls=") {
                calls[name] = Int(field.dropFirst(6))
            }
        }
        var user: Double?
        var system: Double?
        for line in cpu.split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            if parts[0] == "used_cpu_user" { user = Double(parts[1].trimmingCharacters(in: .whitespaces)) }
            if parts[0] == "used_cpu_sys" { system = Double(parts[1].trimmingCharacters(in: .whitespaces)) }
        }
        guard let user, let system else { return nil }
        return RedisCostSample(calls: calls, cpuSeconds: user + system)
    }

    /// What ran between `earlier` and this sample: (commands, script calls, CPU seconds). A
    /// statistics reset in between (`CONFIG RESETSTAT`) shows as a command count going down:
    /// then only the CPU is known.
    func since(_ earlier: RedisCostSample) -> (commands: Int?, scripts: Int?, cpuSeconds: Double) {
        var commands = 0
        var scripts = 0
        var consistent = true
        for (name, count) in calls where !Self.ownCommands.contains(name) {
            let delta = count - (earlier.calls[name] ?? 0)
            if delta < 0 { consistent = false }
            commands += delta
            if Self.scriptCommands.contains(name) { scripts += delta }
        }
        return (consistent ? commands : nil, consistent ? scripts : nil, cpuSeconds - earlier.cpuSeconds)
    }
}
