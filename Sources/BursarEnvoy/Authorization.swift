public import BursarWire
import Crypto
public import EnvoyAPI
import SwiftProtobuf

/// What an Envoy external-authorization request (`envoy.service.auth.v3.Authorization/Check`)
/// means as a bursar CHECK, and how a CHECK's answer goes back to Envoy.
///
/// Envoy's ext_authz filter sends the request's headers (and, when configured, its body and the
/// dynamic metadata of earlier filters, such as what `json_to_metadata` took from the JSON body).
/// From them:
/// - **the key**: from `keyHeader`; `authorization` takes `Bearer <key>`, any other header the key
///   itself. It is hashed here (SHA-256) and never leaves this function;
/// - **the model**: from `modelHeader` if the request has it, else from the metadata namespace
///   `metadataNamespace`, key `model` (what `json_to_metadata` extracts from an OpenAI body);
/// - **the tokens to reserve**: `max_tokens` (or `max_completion_tokens`) from the same
///   metadata, else `defaultMaxOutputTokens`; input tokens from `x-bursar-input-tokens` if the
///   gateway counted them, else estimated from the body Envoy sent (a quarter of its bytes), else 0;
/// - **the cost estimate**: `x-bursar-estimated-cost` (nano-USD) if given, else priced by bursar
///   from the organization's price table (`CheckRequest.priceFromTable`).
///
/// A request that names no key or no model gets its answer here, without a CHECK: 401 and 400.
public struct EnvoyAuthorization: Sendable {
    /// The request header holding the API key.
    public var keyHeader: String
    /// The request header naming the model (checked before the metadata).
    public var modelHeader: String
    /// The dynamic-metadata namespace holding `model` and `max_tokens`.
    public var metadataNamespace: String
    /// Output tokens reserved when the request does not say how many it may use.
    public var defaultMaxOutputTokens: UInt32

    /// The header carrying the reservation to the upstream request (and from there to the rate
    /// limit filter's descriptors, which settle it when the response is done).
    public static let reservationHeader = "x-bursar-reservation"
    /// A gateway's own count of input tokens, when it has one.
    public static let inputTokensHeader = "x-bursar-input-tokens"
    /// A gateway's own cost estimate in nano-USD, when it has one.
    public static let estimatedCostHeader = "x-bursar-estimated-cost"

    /// Defaults: the key in `authorization: Bearer …`, the model in `x-bursar-model` or in
    /// `json_to_metadata`'s namespace, 4,096 output tokens when the request sets no maximum.
    public init(
        keyHeader: String = "authorization", modelHeader: String = "x-bursar-model",
        metadataNamespace: String = "envoy.filters.http.json_to_metadata", defaultMaxOutputTokens: UInt32 = 4096
    ) {
        self.keyHeader = keyHeader.lowercased()
        self.modelHeader = modelHeader.lowercased()
        self.metadataNamespace = metadataNamespace
        self.defaultMaxOutputTokens = defaultMaxOutputTokens
    }

    /// What an ext_authz request asks: a CHECK, or an answer already decided (no key, no model,
    /// a field out of range).
    public enum Decision: Sendable {
        case check(CheckRequest)
        case answered(Envoy_Service_Auth_V3_CheckResponse)
    }

    /// The CHECK an ext_authz request stands for.
    public func decision(for request: Envoy_Service_Auth_V3_CheckRequest) -> Decision {
        let http = request.attributes.request.http
        let headers = http.headers
        guard let secret = Self.secret(in: headers[keyHeader], header: keyHeader), !secret.isEmpty else {
            return .answered(Self.denied(
                status: .unauthorized, type: DenyReason.unknownKey.description,
                message: "no API key: expected it in the \(keyHeader) header"))
        }
        let metadata = request.attributes.metadataContext.filterMetadata[metadataNamespace]?.fields ?? [:]
        let modelText = headers[modelHeader].flatMap { $0.isEmpty ? nil : $0 } ?? metadata["model"]?.stringValue
        guard let modelText, !modelText.isEmpty else {
            return .answered(Self.denied(
                status: .badRequest, type: "model_missing",
                message: "no model: expected the \(modelHeader) header or \"model\" in the \(metadataNamespace) metadata"))
        }
        let model: ModelName
        do {
            model = try ModelName(modelText)
        } catch {
            return .answered(Self.denied(status: .badRequest, type: "model_invalid", message: "model \(modelText): \(error.message)"))
        }
        let maxOutput = (metadata["max_tokens"] ?? metadata["max_completion_tokens"]).flatMap(Self.count) ?? defaultMaxOutputTokens
        let input: UInt32
        if let declared = headers[Self.inputTokensHeader] {
            guard let value = UInt32(declared) else {
                return .answered(Self.denied(
                    status: .badRequest, type: "input_tokens_invalid",
                    message: "\(Self.inputTokensHeader) must be a whole number of tokens, 0 ... \(UInt32.max): \(declared)"))
            }
            input = value
        } else {
            let bytes = http.rawBody.isEmpty ? http.body.utf8.count : http.rawBody.count
            input = UInt32(clamping: (bytes + 3) / 4)
        }
        var cost = CheckRequest.priceFromTable
        if let declared = headers[Self.estimatedCostHeader] {
            guard let value = Int64(declared), value >= 0 else {
                return .answered(Self.denied(
                    status: .badRequest, type: "estimated_cost_invalid",
                    message: "\(Self.estimatedCostHeader) must be whole nano-USD, 0 or more: \(declared)"))
            }
            cost = value
        }
        let digest = KeyDigest(bytes: Array(SHA256.hash(data: Array(secret.utf8))))!
        return .check(CheckRequest(digest: digest, model: model, inputTokens: input, maxOutputTokens: maxOutput, estimatedCost: cost))
    }

    /// Envoy's answer for a CHECK's result: OK with the reservation for the upstream request and
    /// the rate-limit headers for the response, or the reason's HTTP status (SPEC §8) with a JSON
    /// body, `Retry-After` and the rate-limit headers.
    public func response(for result: CheckResult, model: ModelName) -> Envoy_Service_Auth_V3_CheckResponse {
        var response = Envoy_Service_Auth_V3_CheckResponse()
        let limits = RateLimitHeaders.of(result)
        if result.allowed {
            response.status = .with { $0.code = GRPCStatusCode.ok }
            response.okResponse = .with { ok in
                ok.headers = [Self.header(Self.reservationHeader, result.reservation.hex)]
                ok.responseHeadersToAdd = limits.map { Self.header($0.name, $0.value) }
            }
            return response
        }
        let status = Envoy_Type_V3_StatusCode(rawValue: result.reason.httpStatus) ?? .forbidden
        response = Self.denied(status: status, type: result.reason.description, message: Self.message(result, model: model))
        response.deniedResponse.headers += limits.map { Self.header($0.name, $0.value) }
        return response
    }

    // MARK: Pieces

    /// The gRPC status codes Envoy reads in `CheckResponse.status` (OK allows, anything else denies).
    enum GRPCStatusCode {
        static let ok: Int32 = 0
        static let invalidArgument: Int32 = 3
        static let permissionDenied: Int32 = 7
        static let resourceExhausted: Int32 = 8
        static let unavailable: Int32 = 14
        static let unauthenticated: Int32 = 16

        static func of(_ status: Envoy_Type_V3_StatusCode) -> Int32 {
            switch status {
            case .badRequest: return invalidArgument
            case .unauthorized: return unauthenticated
            case .tooManyRequests, .paymentRequired: return resourceExhausted
            case .serviceUnavailable: return unavailable
            default: return permissionDenied
            }
        }
    }

    /// A denial: the status for Envoy, and the HTTP answer for its caller, an OpenAI-style JSON
    /// error (`{"error": {"message", "type", "param": null, "code"}}`) whose `type` is bursar's
    /// reason.
    static func denied(status: Envoy_Type_V3_StatusCode, type: String, message: String) -> Envoy_Service_Auth_V3_CheckResponse {
        .with { r in
            r.status = .with {
                $0.code = GRPCStatusCode.of(status)
                $0.message = "\(type): \(message)"
            }
            r.deniedResponse = .with { d in
                d.status = .with { $0.code = status }
                d.headers = [header("content-type", "application/json")]
                d.body = errorBody(message: message, type: type, code: status.rawValue)
            }
        }
    }

    static func errorBody(message: String, type: String, code: Int) -> String {
        "{\"error\":{\"message\":\(jsonString(message)),\"type\":\(jsonString(type)),\"param\":null,\"code\":\"\(code)\"}}"
    }

    /// What a denial says in words.
    static func message(_ result: CheckResult, model: ModelName) -> String {
        switch result.reason {
        case .unknownKey: return "the API key is not known"
        case .keyRevoked: return "the API key was revoked"
        case .keyExpired: return "the API key has expired"
        case .creatorLostAccess: return "the API key's user no longer has access to its project"
        case .projectInactive: return "the API key's project is archived or deleted"
        case .orgSuspended: return "the organization is suspended"
        case .modelNotAllowed: return "this API key may not use model \(model)"
        case .keyRPM, .projectRPM, .keyTPM, .projectTPM:
            return "rate limit reached (\(result.reason)); retry after \(result.retryAfterMs) ms"
        case .keyBudget: return "the API key's spend limit for this period is reached"
        case .projectBudget: return "the project's monthly budget is reached"
        case .orgCredits: return "the organization's credits do not cover this request"
        case .requestTooLarge: return "the request asks for more tokens than a minute's limit allows"
        case .storeUnavailable: return "limits could not be checked in time; retry with backoff"
        case .overloaded: return "bursar is overloaded; retry after \(result.retryAfterMs) ms"
        case .keyLookupsThrottled: return "too many unknown keys from this gateway; retry after \(result.retryAfterMs) ms"
        case .priceUnknown:
            return "model \(model) has no price in the organization's price table, and a budget or metered credits apply to this key"
        case .none: return "allowed"
        }
    }

    /// A header that replaces any of the same name (so a client cannot smuggle in its own).
    static func header(_ name: String, _ value: String) -> Envoy_Config_Core_V3_HeaderValueOption {
        .with {
            $0.header = .with { h in
                h.key = name
                h.value = value
            }
            $0.appendAction = .overwriteIfExistsOrAdd
        }
    }

    /// The key in a header's value: `Bearer <key>` in `authorization`, the value itself elsewhere.
    static func secret(in value: String?, header: String) -> String? {
        guard let value else { return nil }
        let trimmed = value.trimmingSpaces
        guard header == "authorization" else { return trimmed }
        let parts = trimmed.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return String(parts[1]).trimmingSpaces
    }

    /// A token count from metadata: a whole number, 0 … 2³² − 1.
    static func count(_ value: Google_Protobuf_Value) -> UInt32? {
        switch value.kind {
        case .numberValue(let n) where n >= 0 && n <= Double(UInt32.max) && n.rounded() == n: return UInt32(n)
        case .stringValue(let s): return UInt32(s)
        default: return nil
        }
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

extension Google_Protobuf_Value {
    fileprivate var stringValue: String? {
        if case .stringValue(let s) = kind { return s }
        return nil
    }
}

extension String {
    /// Without leading and trailing spaces and tabs (a header value's optional whitespace).
    var trimmingSpaces: String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return String(s)
    }
}
