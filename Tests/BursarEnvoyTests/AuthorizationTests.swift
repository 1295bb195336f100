import BursarWire
import Crypto
import EnvoyAPI
import Foundation
import SwiftProtobuf
import Testing

@testable import BursarEnvoy

/// What an Envoy ext_authz request means as a CHECK, and each answer as Envoy's response.
@Suite struct AuthorizationTests {
    let mapping = EnvoyAuthorization()

    private func request(
        headers: [String: String], metadata: [String: Google_Protobuf_Value] = [:], body: String = ""
    ) -> Envoy_Service_Auth_V3_CheckRequest {
        .with { r in
            r.attributes.request.http = .with {
                $0.headers = headers
                $0.body = body
                $0.method = "POST"
                $0.path = "/v1/chat/completions"
            }
            if !metadata.isEmpty {
                r.attributes.metadataContext.filterMetadata["envoy.filters.http.json_to_metadata"] = .with { $0.fields = metadata }
            }
        }
    }

    private func check(_ d: EnvoyAuthorization.Decision) throws -> CheckRequest {
        guard case .check(let c) = d else {
            Issue.record("expected a CHECK, got \(d)")
            throw Unexpected()
        }
        return c
    }

    private func answer(_ d: EnvoyAuthorization.Decision) throws -> Envoy_Service_Auth_V3_CheckResponse {
        guard case .answered(let a) = d else {
            Issue.record("expected an answer without a CHECK, got \(d)")
            throw Unexpected()
        }
        return a
    }

    private struct Unexpected: Error {}

    @Test func bearerKeyAndModelFromJsonMetadata() throws {
        let c = try check(mapping.decision(for: request(
            headers: ["authorization": "Bearer sk-br-secret", "content-type": "application/json"],
            metadata: ["model": .init(stringValue: "gpt-4o-mini"), "max_tokens": .init(numberValue: 300)],
            body: String(repeating: "x", count: 401))))
        #expect(c.digest == KeyDigest(bytes: Array(SHA256.hash(data: Array("sk-br-secret".utf8))))!)
        #expect(c.model == (try ModelName("gpt-4o-mini")))
        #expect(c.maxOutputTokens == 300)
        #expect(c.inputTokens == 101, "a quarter of the body's 401 bytes, rounded up")
        #expect(c.estimatedCost == CheckRequest.priceFromTable, "no cost header: bursar prices it from the table")
    }

    @Test func headersOverrideAndDeclaredCounts() throws {
        let m = EnvoyAuthorization(keyHeader: "X-API-Key", defaultMaxOutputTokens: 64)
        let c = try check(m.decision(for: request(
            headers: ["x-api-key": " sk-br-other ", "x-bursar-model": "claude-3-5", "x-bursar-input-tokens": "1200",
                      "x-bursar-estimated-cost": "2500"],
            metadata: ["model": .init(stringValue: "ignored-when-the-header-names-one")])))
        #expect(c.digest == KeyDigest(bytes: Array(SHA256.hash(data: Array("sk-br-other".utf8))))!)
        #expect(c.model == (try ModelName("claude-3-5")))
        #expect(c.inputTokens == 1200)
        #expect(c.maxOutputTokens == 64, "no max_tokens in the request: the configured default")
        #expect(c.estimatedCost == 2500)
    }

    @Test func missingOrMalformedInputIsAnsweredWithoutACheck() throws {
        let noKey = try answer(mapping.decision(for: request(headers: ["x-bursar-model": "m"])))
        #expect(noKey.deniedResponse.status.code == .unauthorized)
        #expect(noKey.status.code == 16)
        #expect(noKey.deniedResponse.body.contains("\"type\":\"unknown_key\""))
        let notBearer = try answer(mapping.decision(for: request(headers: ["authorization": "Basic abc", "x-bursar-model": "m"])))
        #expect(notBearer.deniedResponse.status.code == .unauthorized)
        let noModel = try answer(mapping.decision(for: request(headers: ["authorization": "Bearer k"])))
        #expect(noModel.deniedResponse.status.code == .badRequest)
        #expect(noModel.deniedResponse.body.contains("model_missing"))
        let longModel = try answer(mapping.decision(for: request(headers: ["authorization": "Bearer k", "x-bursar-model": String(repeating: "m", count: 65)])))
        #expect(longModel.deniedResponse.body.contains("model_invalid"))
        let badTokens = try answer(mapping.decision(for: request(headers: ["authorization": "Bearer k", "x-bursar-model": "m", "x-bursar-input-tokens": "-1"])))
        #expect(badTokens.deniedResponse.body.contains("input_tokens_invalid"))
        let badCost = try answer(mapping.decision(for: request(headers: ["authorization": "Bearer k", "x-bursar-model": "m", "x-bursar-estimated-cost": "1.5"])))
        #expect(badCost.deniedResponse.body.contains("estimated_cost_invalid"))
    }

    @Test func anAdmissionCarriesItsReservationUpstreamAndItsLimitsDownstream() {
        var result = CheckResult.deny(.none)
        result.allowed = true
        result.reservation = ReservationID(orgID: 7, sequence: 123_456_789)
        result.requestsLimit = 60
        result.requestsRemaining = 59
        result.requestsResetMs = 1000
        let r = mapping.response(for: result, model: try! ModelName("gpt-4o"))
        #expect(r.status.code == 0)
        guard case .okResponse(let ok) = r.httpResponse else {
            Issue.record("an admission is an OK response")
            return
        }
        #expect(ok.headers.map { [$0.header.key, $0.header.value] } == [["x-bursar-reservation", "000000000000000700000000075bcd15"]])
        #expect(ok.headers.allSatisfy { $0.appendAction == .overwriteIfExistsOrAdd }, "a client cannot smuggle its own reservation id")
        #expect(Dictionary(uniqueKeysWithValues: ok.responseHeadersToAdd.map { ($0.header.key, $0.header.value) }) == [
            "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59", "x-ratelimit-reset-requests": "1s",
            "RateLimit-Policy": "\"requests\";q=60;w=60", "RateLimit": "\"requests\";r=59;t=1",
        ])
    }

    @Test func everyDenyReasonGetsItsHttpStatusAndABodyNamingIt() throws {
        for reason in DenyReason.allCases where reason != .none {
            var result = CheckResult.deny(reason)
            result.retryAfterMs = 1500
            result.tokensLimit = 1000
            result.tokensRemaining = 0
            result.tokensResetMs = 65_500
            let r = mapping.response(for: result, model: try! ModelName("gpt-4o"))
            #expect(r.status.code != 0, "\(reason) denies")
            #expect(r.deniedResponse.status.code.rawValue == reason.httpStatus, "\(reason)")
            let body = try JSONSerialization.jsonObject(with: Data(r.deniedResponse.body.utf8)) as? [String: Any]
            let error = body?["error"] as? [String: Any]
            #expect(error?["type"] as? String == reason.description)
            #expect(error?["code"] as? String == "\(reason.httpStatus)")
            #expect((error?["message"] as? String)?.isEmpty == false)
            let headers = Dictionary(uniqueKeysWithValues: r.deniedResponse.headers.map { ($0.header.key, $0.header.value) })
            #expect(headers["content-type"] == "application/json")
            #expect(headers["Retry-After"] == "2", "1,500 ms rounds up to 2 s")
            #expect(headers["x-ratelimit-reset-tokens"] == "1m5.5s")
            #expect(headers["x-ratelimit-limit-requests"] == nil, "no request limit, no request headers")
        }
    }

    @Test func durationsInOpenAIsFormat() {
        #expect(RateLimitHeaders.duration(ms: 20) == "20ms")
        #expect(RateLimitHeaders.duration(ms: 1000) == "1s")
        #expect(RateLimitHeaders.duration(ms: 6500) == "6.5s")
        #expect(RateLimitHeaders.duration(ms: 6050) == "6.05s")
        #expect(RateLimitHeaders.duration(ms: 60_000) == "1m0s")
        #expect(RateLimitHeaders.duration(ms: 3_723_000) == "1h2m3s")
    }

    @Test func errorBodiesAreJsonWhateverTheMessage() throws {
        let body = EnvoyAuthorization.errorBody(message: "a \"quoted\"\n\u{1}\\ line", type: "t", code: 400)
        let parsed = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: [String: Any]]
        #expect(parsed?["error"]?["message"] as? String == "a \"quoted\"\n\u{1}\\ line")
    }
}
