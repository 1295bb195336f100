import BursarWire
import Foundation
import Histogram

/// One run's figures as `--json` prints them.
public struct BenchReport: Sendable, Codable {
    /// `bursard` or `direct` (the Redis floor).
    public var mode: String
    /// The load model, in words.
    public var load: String
    /// Connections (lanes).
    public var connections: Int
    /// CHECK answers per second in the measured period.
    public var decisions_per_s: Double
    /// CHECKs answered in the measured period.
    public var decisions: Int
    /// Allowed CHECKs.
    public var allowed: Int
    /// Denied CHECKs by reason name.
    public var denied_by_reason: [String: Int]
    /// SETTLEs answered.
    public var settles: Int
    /// RELEASEs answered.
    public var releases: Int
    /// SETTLE/RELEASE answers that were not `applied`.
    public var not_applied: Int
    /// Failed requests.
    public var errors: Int
    /// Requests unanswered when the harness stopped (a hung target).
    public var unanswered: Int
    /// CHECKs (whole run) without an answer because their connection broke or no target could be
    /// reached: a gateway's `store_unavailable`; recorded as not admitted.
    public var no_answer: Int
    /// New connections lanes made after losing theirs.
    public var reconnects: Int
    /// SETTLEs and RELEASEs sent again after their connection broke.
    public var resent: Int
    /// Measured CHECKs Redis decided (allowed, or denied for reasons 1…15) per second: the
    /// useful work, as opposed to answers refused unevaluated or undecided.
    public var goodput_per_s: Double
    /// Measured CHECKs answered `overloaded` (17).
    public var overloaded: Int
    /// Their latency p50, µs (measured like `p50_us`).
    public var overloaded_p50_us: Double
    /// Their latency p99, µs.
    public var overloaded_p99_us: Double
    /// Measured CHECKs answered `store_unavailable` (16).
    public var store_unavailable: Int
    /// `store_unavailable` over every measured CHECK answer (0…1).
    public var store_unavailable_share: Double
    /// Open loop: scheduled CHECKs not sent because their lane was full.
    public var shed: Int
    /// CHECK latency percentiles, µs (open loop: from the scheduled start, coordinated omission
    /// corrected).
    public var p50_us: Double
    /// p90, µs.
    public var p90_us: Double
    /// p99, µs.
    public var p99_us: Double
    /// p99.9, µs.
    public var p999_us: Double
    /// Maximum, µs.
    public var max_us: Double
    /// SETTLE/RELEASE latency p50, µs.
    public var followup_p50_us: Double
    /// SETTLE/RELEASE latency p99, µs.
    public var followup_p99_us: Double
    /// CPU seconds the target processes used per 1,000 decisions (a CHECK and its SETTLE or
    /// RELEASE), when `--target-pid` was given.
    public var cpu_s_per_1000_decisions: Double?
    /// CPU seconds the harness itself used per 1,000 decisions, over the measured period.
    public var harness_cpu_s_per_1000_decisions: Double?
    /// Event loops (threads) the harness's lanes ran on: its connections are spread over one loop
    /// per core, or over `--loops`.
    public var harness_loops: Int
    /// Commands the targets' Redis ran per decision in the measured period: every call inside a
    /// script counted, and the script call itself (`INFO commandstats` deltas; not on Cluster).
    public var redis_commands_per_decision: Double?
    /// Of those, script calls (EVALSHA) per decision.
    public var redis_scripts_per_decision: Double?
    /// CPU seconds the targets' Redis used per 1,000 decisions (`INFO cpu` deltas; not on Cluster).
    public var redis_cpu_s_per_1000_decisions: Double?
    /// Resident memory of the target processes at the start of measuring, KiB.
    public var rss_start_kib: Int?
    /// At the end, KiB.
    public var rss_end_kib: Int?
    /// Largest sample, KiB.
    public var rss_max_kib: Int?
    /// (end − start) / start, percent.
    public var rss_growth_percent: Double?
    /// The audit, when `--audit` was given.
    public var audit: AuditReport?
    /// `passed`, `FAILED` or `inconclusive`, when `--audit` was given.
    public var audit_verdict: String?

    /// The report of `result`, with `audit` if one was run.
    public init(_ result: RunResult, configuration: BenchConfiguration, audit: AuditReport?) {
        mode = configuration.direct == nil ? "bursard" : "direct"
        load = configuration.load.description
        connections = configuration.connections
        harness_loops = result.harnessLoops
        let seconds = max(result.measuredSeconds, 1e-9)
        decisions_per_s = Double(result.decisions) / seconds
        decisions = result.decisions
        allowed = result.allowed
        denied_by_reason = Dictionary(uniqueKeysWithValues: result.denied.map { ($0.key.description, $0.value) })
        settles = result.settles
        releases = result.releases
        not_applied = result.notApplied
        errors = result.errors
        unanswered = result.unanswered
        no_answer = result.noAnswer
        reconnects = result.reconnects
        resent = result.resent
        shed = result.shed
        goodput_per_s = Double(result.goodput) / seconds
        overloaded = result.denied[.overloaded] ?? 0
        store_unavailable = result.denied[.storeUnavailable] ?? 0
        store_unavailable_share = result.decisions == 0 ? 0 : Double(store_unavailable) / Double(result.decisions)
        let h = result.latencyNs
        func us(_ p: Double, _ h: Histogram<UInt64>) -> Double { h.totalCount == 0 ? 0 : Double(h.valueAtPercentile(p)) / 1000 }
        p50_us = us(50, h)
        p90_us = us(90, h)
        p99_us = us(99, h)
        p999_us = us(99.9, h)
        max_us = h.totalCount == 0 ? 0 : Double(h.max) / 1000
        followup_p50_us = us(50, result.followUpLatencyNs)
        followup_p99_us = us(99, result.followUpLatencyNs)
        overloaded_p50_us = us(50, result.overloadedLatencyNs)
        overloaded_p99_us = us(99, result.overloadedLatencyNs)
        let sampled = result.sampledDecisions ?? result.decisions
        if sampled > 0 {
            cpu_s_per_1000_decisions = result.targetCPUSeconds.map { $0 / Double(sampled) * 1000 }
            harness_cpu_s_per_1000_decisions = result.harnessCPUSeconds.map { $0 / Double(sampled) * 1000 }
            redis_commands_per_decision = result.redisCommands.map { Double($0) / Double(sampled) }
            redis_scripts_per_decision = result.redisScripts.map { Double($0) / Double(sampled) }
            redis_cpu_s_per_1000_decisions = result.redisCPUSeconds.map { $0 / Double(sampled) * 1000 }
        }
        if let rss = result.targetRSS {
            rss_start_kib = rss.startKiB
            rss_end_kib = rss.endKiB
            rss_max_kib = rss.maxKiB
            rss_growth_percent = rss.growthPercent
        }
        self.audit = audit
        self.audit_verdict = audit?.verdict
    }

    /// True when the run was clean: no errors, nothing unanswered or shed, and the audit (if any) passed.
    public var succeeded: Bool { errors == 0 && unanswered == 0 && shed == 0 && (audit?.passed ?? true) }

    /// Pretty JSON with sorted keys.
    public func json() throws -> String { try prettyJSON(self) }

    /// The human summary.
    public var summary: String {
        func f(_ x: Double) -> String { String(format: "%.1f", x) }
        var lines = [
            "[\(mode)] \(load), \(connections) connection(s)",
            "decisions/s: \(f(decisions_per_s))  (decisions \(decisions), allowed \(allowed), denied \(decisions - allowed))",
            "denied by reason: " + (denied_by_reason.isEmpty ? "none" : denied_by_reason.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")),
            "goodput/s: \(f(goodput_per_s))  (allowed or denied by a limit); overloaded \(overloaded) (latency µs p50 "
                + "\(f(overloaded_p50_us)), p99 \(f(overloaded_p99_us))); store_unavailable \(store_unavailable) "
                + "(\(String(format: "%.2f", store_unavailable_share * 100))% of answers)",
            "settles \(settles), releases \(releases), not applied \(not_applied), errors \(errors), unanswered \(unanswered), shed \(shed)",
            "no answer \(no_answer), reconnects \(reconnects), SETTLE/RELEASE re-sent \(resent)",
            "CHECK latency µs: p50 \(f(p50_us))  p90 \(f(p90_us))  p99 \(f(p99_us))  p99.9 \(f(p999_us))  max \(f(max_us))",
            "SETTLE/RELEASE latency µs: p50 \(f(followup_p50_us))  p99 \(f(followup_p99_us))",
        ]
        if let cpu = cpu_s_per_1000_decisions { lines.append("target CPU: \(f(cpu * 1000)) µs per decision") }
        if let cpu = harness_cpu_s_per_1000_decisions { lines.append("harness CPU: \(f(cpu * 1000)) µs per decision (\(harness_loops) event loops)") }
        if let cpu = redis_cpu_s_per_1000_decisions {
            let commands = redis_commands_per_decision.map { "\(f($0)) commands per decision (\(f(redis_scripts_per_decision ?? 0)) of them script calls), " } ?? ""
            lines.append("Redis: \(commands)\(f(cpu * 1000)) µs CPU per decision")
        }
        if let start = rss_start_kib, let end = rss_end_kib, let peak = rss_max_kib, let growth = rss_growth_percent {
            lines.append("target RSS KiB: start \(start), end \(end), max \(peak) (\(String(format: "%+.1f", growth))%)")
        }
        if unanswered > 0 { lines.append("HANG: \(unanswered) request(s) got no answer before the harness stopped") }
        if let a = audit { lines.append(a.summary) }
        return lines.joined(separator: "\n")
    }
}

/// What one `bursar-bench` invocation prints: the bursard run, the direct floor, or both.
public struct BenchOutput: Sendable, Codable {
    /// The run against bursard.
    public var bursard: BenchReport?
    /// The same decisions straight against Redis.
    public var direct: BenchReport?
    /// bursard's decisions/s over the floor's, when both ran.
    public var ratio_to_direct: Double?

    /// The output of the runs made.
    public init(bursard: BenchReport?, direct: BenchReport?) {
        self.bursard = bursard
        self.direct = direct
        if let b = bursard, let d = direct, d.decisions_per_s > 0 { ratio_to_direct = b.decisions_per_s / d.decisions_per_s }
    }

    /// Every run clean.
    public var succeeded: Bool { (bursard?.succeeded ?? true) && (direct?.succeeded ?? true) }

    /// Pretty JSON with sorted keys.
    public func json() throws -> String { try prettyJSON(self) }

    /// The human summary.
    public var summary: String {
        var parts = [bursard?.summary, direct?.summary].compactMap { $0 }
        if let r = ratio_to_direct { parts.append(String(format: "bursard / direct floor: %.2f", r)) }
        return parts.joined(separator: "\n\n")
    }
}

private func prettyJSON(_ value: some Encodable) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}
