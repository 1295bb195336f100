public import BursarWire

/// The HTTP rate-limit headers of a CHECK's answer, as the Python client's
/// `bursar.headers.rate_limit_headers` gives them (the same contract, so a gateway behind Envoy
/// and one using the client show the same headers):
/// - OpenAI style, for each limit the answer carries (a `*_limit` of 0 means none, and its
///   headers are left out): `x-ratelimit-limit-requests`, `x-ratelimit-remaining-requests`,
///   `x-ratelimit-reset-requests` and the `-tokens` equivalents;
/// - IETF `RateLimit-Policy` / `RateLimit` (draft-ietf-httpapi-ratelimit-headers): one policy per
///   limit, quota `q` per window `w` of 60 s, remaining `r` and `t` = seconds until full again;
/// - `Retry-After` (whole seconds, rounded up, SPEC §8) on a denial that carries `retry_after_ms`.
public enum RateLimitHeaders {
    public struct Header: Hashable, Sendable {
        public var name: String
        public var value: String
    }

    public static func of(_ result: CheckResult) -> [Header] {
        var headers: [Header] = []
        var policies: [String] = []
        var states: [String] = []
        for (name, limit, remaining, resetMs) in [
            ("requests", result.requestsLimit, result.requestsRemaining, result.requestsResetMs),
            ("tokens", result.tokensLimit, result.tokensRemaining, result.tokensResetMs),
        ] where limit > 0 {
            headers.append(Header(name: "x-ratelimit-limit-\(name)", value: "\(limit)"))
            headers.append(Header(name: "x-ratelimit-remaining-\(name)", value: "\(remaining)"))
            headers.append(Header(name: "x-ratelimit-reset-\(name)", value: duration(ms: Int(resetMs))))
            policies.append("\"\(name)\";q=\(limit);w=60")
            states.append("\"\(name)\";r=\(remaining);t=\(ceilSeconds(Int(resetMs)))")
        }
        if !policies.isEmpty {
            headers.append(Header(name: "RateLimit-Policy", value: policies.joined(separator: ", ")))
            headers.append(Header(name: "RateLimit", value: states.joined(separator: ", ")))
        }
        if !result.allowed && result.retryAfterMs > 0 {
            headers.append(Header(name: "Retry-After", value: "\(ceilSeconds(Int(result.retryAfterMs)))"))
        }
        return headers
    }

    /// OpenAI's reset format: `20ms`, `1s`, `6.5s`, `1m0s`, `1h2m3s`.
    public static func duration(ms: Int) -> String {
        if ms < 1000 { return "\(ms)ms" }
        let hours = ms / 3_600_000
        let minutes = ms % 3_600_000 / 60_000
        let seconds = ms % 60_000 / 1000
        let millis = ms % 1000
        var sec = "\(seconds)"
        if millis > 0 {
            var fraction = String(millis + 1000).dropFirst()  // three digits
            while fraction.last == "0" { fraction.removeLast() }
            sec += ".\(fraction)"
        }
        if hours > 0 { return "\(hours)h\(minutes)m\(sec)s" }
        if minutes > 0 { return "\(minutes)m\(sec)s" }
        return "\(sec)s"
    }

    static func ceilSeconds(_ ms: Int) -> Int { (ms + 999) / 1000 }
}
