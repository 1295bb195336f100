import BursarWire
import Foundation

/// The run's figures as `--json` prints them.
public struct BenchReport: Sendable, Codable {
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
    /// Latency percentiles of all measured requests (CHECK, SETTLE, RELEASE), µs.
    public var p50_us: Double
    /// p90, µs.
    public var p90_us: Double
    /// p99, µs.
    public var p99_us: Double
    /// p99.9, µs.
    public var p999_us: Double
    /// Maximum, µs.
    public var max_us: Double
    /// CPU seconds the target processes used per 1,000 decisions, when `--target-pid` was given.
    public var cpu_s_per_1000_decisions: Double?
    /// The audit, when `--audit` was given.
    public var audit: AuditReport?
    /// `passed`, `FAILED` or `inconclusive`, when `--audit` was given.
    public var audit_verdict: String?

    /// The report of `result`, with `audit` if one was run.
    public init(_ result: RunResult, audit: AuditReport?) {
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
        let h = result.latencyNs
        func us(_ p: Double) -> Double { h.totalCount == 0 ? 0 : Double(h.valueAtPercentile(p)) / 1000 }
        p50_us = us(50)
        p90_us = us(90)
        p99_us = us(99)
        p999_us = us(99.9)
        max_us = h.totalCount == 0 ? 0 : Double(h.max) / 1000
        if let cpu = result.targetCPUSeconds, result.decisions > 0 {
            cpu_s_per_1000_decisions = cpu / Double(result.decisions) * 1000
        }
        self.audit = audit
        self.audit_verdict = audit?.verdict
    }

    /// True when the run was clean: no errors, nothing unanswered, and the audit (if any) passed.
    public var succeeded: Bool { errors == 0 && unanswered == 0 && (audit?.passed ?? true) }

    /// Pretty JSON with sorted keys.
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// The human summary.
    public var summary: String {
        func f(_ x: Double) -> String { String(format: "%.1f", x) }
        var lines = [
            "decisions/s: \(f(decisions_per_s))  (decisions \(decisions), allowed \(allowed), denied \(decisions - allowed))",
            "denied by reason: " + (denied_by_reason.isEmpty ? "none" : denied_by_reason.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")),
            "settles \(settles), releases \(releases), not applied \(not_applied), errors \(errors), unanswered \(unanswered)",
            "latency µs: p50 \(f(p50_us))  p90 \(f(p90_us))  p99 \(f(p99_us))  p99.9 \(f(p999_us))  max \(f(max_us))",
        ]
        if let cpu = cpu_s_per_1000_decisions { lines.append("target CPU: \(String(format: "%.4f", cpu)) s per 1000 decisions") }
        if unanswered > 0 { lines.append("HANG: \(unanswered) request(s) got no answer before the harness stopped") }
        if let a = audit {
            lines.append(
                "audit: \(a.verdict)  (keys \(a.keysAudited), over-admission \(a.overAdmission), lost \(a.lostDebits), "
                    + "double \(a.doubleDebits), keys mismatched \(a.keysMismatched), credits mismatch \(a.creditsMismatch), "
                    + "unresolved \(a.unresolved))")
        }
        return lines.joined(separator: "\n")
    }
}
