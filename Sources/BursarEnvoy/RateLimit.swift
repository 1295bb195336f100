public import BursarWire
import Crypto
public import EnvoyAPI
import Foundation
import SwiftProtobuf

/// What an Envoy rate limit service request (`envoy.service.ratelimit.v3.RateLimitService/
/// ShouldRateLimit`) means to bursar, and how bursar's answer goes back (SPEC §19).
///
/// Envoy's rate limit filter calls twice per HTTP request when configured as in
/// `deploy/envoy/envoy.yaml`:
/// - **the request phase**: a descriptor with `api_key` (the `authorization` header, `Bearer <key>`,
///   or the key itself), `model`, optionally `max_tokens`, `input_tokens`, `body_bytes` (the
///   request's `content-length`) and `request_id` → a CHECK priced from the organization's price
///   table. Allowed: OK, the reservation set on the upstream request as `x-bursar-reservation`
///   (replacing any the client sent), the rate-limit headers on the response. Denied: OVER_LIMIT
///   (Envoy answers 429) with a status per descriptor, `Retry-After`, the rate-limit headers and a
///   JSON body naming the reason. A descriptor `missing=api_key` (Envoy's `header_value_match` on
///   an absent key header) is refused `unknown_key`, so a request without a key never passes
///   unchecked;
/// - **stream done** (`apply_on_stream_done`): descriptors with `usage` = `input_tokens`,
///   `output_tokens` or `cached_input_tokens`, each with its `hits_addend` (the tokens Envoy read
///   from the response), and `usage=done`, all naming the `reservation` (the request header the
///   request phase, or ext_authz, set) → a SETTLE of that reservation, priced at the prices its
///   CHECK used: exactly once, since a SETTLE of a settled reservation changes nothing. When no
///   usage arrives (only `done`: the upstream sent none, or the client went away), the
///   reservation is left to expire holding its estimate: an over-count, never an over-admission.
public struct EnvoyRateLimit: Sendable {
    /// The descriptor domain bursar answers (Envoy's `domain`).
    public var domain: String
    /// Output tokens reserved when the request names no `max_tokens`.
    public var defaultMaxOutputTokens: UInt32

    public init(domain: String = "bursar", defaultMaxOutputTokens: UInt32 = 4096) {
        self.domain = domain
        self.defaultMaxOutputTokens = defaultMaxOutputTokens
    }

    /// What a call asks.
    public enum Decision: Sendable {
        /// The request phase: decide this CHECK.
        case check(CheckRequest)
        /// Stream done: settle this reservation with the usage Envoy measured.
        case settle(SettleRequest)
        /// Answered without the store: OK (nothing of bursar's), or a refusal.
        case answered(Envoy_Service_Ratelimit_V3_RateLimitResponse)
        /// A request bursar does not serve (another domain): a gRPC error naming it.
        case invalid(String)
    }

    public func decision(for request: Envoy_Service_Ratelimit_V3_RateLimitRequest) -> Decision {
        guard request.domain == domain else {
            return .invalid("domain \"\(request.domain)\" is not bursar's (\"\(domain)\"): check the rate limit filter's domain")
        }
        var usage: [String: UInt32] = [:]
        var reservation: String?
        var sawUsage = false
        var check: [String: String]?
        for descriptor in request.descriptors {
            var entries: [String: String] = [:]
            for e in descriptor.entries { entries[e.key] = e.value }
            if entries["missing"] == "api_key" {
                return .answered(Self.refusal(.unknownKey, message: "no API key: expected it in the authorization header"))
            }
            if let kind = entries["usage"] {
                sawUsage = true
                if let r = entries["reservation"], !r.isEmpty { reservation = r }
                if descriptor.hasHitsAddend { usage[kind] = UInt32(clamping: descriptor.hitsAddend.value) }
            } else if entries["api_key"] != nil {
                check = entries
            }
        }
        if sawUsage {
            guard let text = reservation else { return .answered(Self.ok()) }
            guard let id = Self.reservation(text) else {
                return .invalid("reservation \"\(text)\" is not a reservation id (32 hex digits)")
            }
            guard usage["input_tokens"] != nil || usage["output_tokens"] != nil else { return .answered(Self.ok()) }
            // Cached input tokens are the part of the input the upstream read from its cache
            // (OpenAI's usage.prompt_tokens_details.cached_tokens): priced at the cached price.
            var settle = SettleRequest(
                reservation: id, inputTokens: usage["input_tokens"] ?? 0, outputTokens: usage["output_tokens"] ?? 0, cost: CheckRequest.priceFromTable)
            settle.cachedInputTokens = usage["cached_input_tokens"] ?? 0
            return .settle(settle)
        }
        guard let entries = check else { return .answered(Self.ok()) }
        guard let secret = EnvoyAuthorization.secret(in: entries["api_key"], header: "authorization")
            ?? entries["api_key"]?.trimmingSpaces, !secret.isEmpty, !secret.contains(" ")
        else {
            return .answered(Self.refusal(.unknownKey, message: "no API key: expected Bearer <key>"))
        }
        guard let modelText = entries["model"], !modelText.isEmpty, modelText != "unknown" else {
            return .answered(Self.refusal(nil, type: "model_missing", message: "no model: expected \"model\" in the JSON body"))
        }
        let model: ModelName
        do {
            model = try ModelName(modelText)
        } catch {
            return .answered(Self.refusal(nil, type: "model_invalid", message: "model \(modelText): \(error.message)"))
        }
        let maxOutput = entries["max_tokens"].flatMap { UInt32($0) } ?? defaultMaxOutputTokens
        let input: UInt32
        if let declared = entries["input_tokens"].flatMap({ UInt32($0) }) {
            input = declared
        } else if let bytes = entries["body_bytes"].flatMap({ UInt64($0) }) {
            input = UInt32(clamping: (bytes + 3) / 4)
        } else {
            input = 0
        }
        let digest = KeyDigest(bytes: Array(SHA256.hash(data: Array(secret.utf8))))!
        return .check(CheckRequest(digest: digest, model: model, inputTokens: input, maxOutputTokens: maxOutput, estimatedCost: CheckRequest.priceFromTable))
    }

    /// The answer to the request phase.
    public func response(for result: CheckResult, model: ModelName) -> Envoy_Service_Ratelimit_V3_RateLimitResponse {
        var response = Envoy_Service_Ratelimit_V3_RateLimitResponse()
        response.statuses = [Self.status(result)]
        let headers = RateLimitHeaders.of(result).map { Self.header($0.name, $0.value) }
        if result.allowed {
            response.overallCode = .ok
            response.requestHeadersToAdd = [Self.header(EnvoyAuthorization.reservationHeader, result.reservation.hex)]
            response.responseHeadersToAdd = headers
            return response
        }
        var refused = Self.refusal(result.reason, message: EnvoyAuthorization.message(result, model: model))
        refused.statuses = response.statuses
        refused.responseHeadersToAdd += headers
        return refused
    }

    // MARK: Pieces

    static func ok() -> Envoy_Service_Ratelimit_V3_RateLimitResponse {
        .with { $0.overallCode = .ok }
    }

    /// OVER_LIMIT (Envoy answers 429, the filter's status for a refusal) with an OpenAI-style JSON
    /// body naming the reason and the HTTP status SPEC §8 gives it (`code`), and the reason in
    /// `x-bursar-deny-reason`.
    static func refusal(_ reason: DenyReason?, type: String? = nil, message: String) -> Envoy_Service_Ratelimit_V3_RateLimitResponse {
        let name = type ?? reason?.description ?? "invalid"
        let status = reason?.httpStatus ?? 400
        return .with {
            $0.overallCode = .overLimit
            $0.rawBody = Data(EnvoyAuthorization.errorBody(message: message, type: name, code: status).utf8)
            $0.responseHeadersToAdd = [header("content-type", "application/json"), header("x-bursar-deny-reason", name)]
        }
    }

    /// The descriptor's status: the tighter of the limits the answer carries (tokens before
    /// requests when both are set and tokens are the scarcer), per minute.
    static func status(_ result: CheckResult) -> Envoy_Service_Ratelimit_V3_RateLimitResponse.DescriptorStatus {
        .with { s in
            s.code = result.allowed ? .ok : .overLimit
            let tokensTighter = result.tokensLimit > 0
                && (result.requestsLimit == 0 || Double(result.tokensRemaining) / Double(result.tokensLimit)
                    < Double(result.requestsRemaining) / Double(result.requestsLimit))
            let (limit, remaining, resetMs, name): (UInt32, UInt32, UInt32, String) =
                tokensTighter ? (result.tokensLimit, result.tokensRemaining, result.tokensResetMs, "tokens")
                              : (result.requestsLimit, result.requestsRemaining, result.requestsResetMs, "requests")
            if limit > 0 {
                s.currentLimit = .with {
                    $0.name = name
                    $0.requestsPerUnit = limit
                    $0.unit = .minute
                }
                s.limitRemaining = result.allowed ? remaining : 0
            }
            let untilMs = result.allowed ? resetMs : max(result.retryAfterMs, resetMs)
            s.durationUntilReset = .with {
                $0.seconds = Int64(untilMs / 1000)
                $0.nanos = Int32(untilMs % 1000) * 1_000_000
            }
        }
    }

    static func header(_ name: String, _ value: String) -> Envoy_Config_Core_V3_HeaderValue {
        .with {
            $0.key = name
            $0.value = value
        }
    }

    /// The reservation id in 32 hex digits, as `x-bursar-reservation` carries it (SPEC §5); never
    /// the all-zero id.
    static func reservation(_ text: String) -> ReservationID? {
        guard let id = ReservationID(hex: text), id != .none else { return nil }
        return id
    }
}
