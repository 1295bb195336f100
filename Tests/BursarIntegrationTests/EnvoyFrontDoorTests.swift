import BursarEnvoy
import BursarRedis
import BursarStore
import BursarWire
import EnvoyAPI
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwiftProtobuf
import Testing

/// The gRPC front door (`--grpc`) of a real bursard, called as Envoy's ext_authz filter calls it
/// (`envoy.service.auth.v3.Authorization/Check`, HTTP/2, protobuf), against a real Redis.
@Suite("Envoy ext_authz front door", .serialized)
struct EnvoyFrontDoorTests {
    /// An ext_authz request as Envoy sends it for an OpenAI chat completion, the model and
    /// max_tokens extracted from the JSON body by json_to_metadata.
    private func request(key: String?, model: String, maxTokens: Double = 100, headers: [String: String] = [:]) -> Envoy_Service_Auth_V3_CheckRequest {
        .with { r in
            r.attributes.request.http = .with {
                $0.method = "POST"
                $0.path = "/v1/chat/completions"
                $0.headers = headers.merging(key.map { ["authorization": "Bearer \($0)"] } ?? [:]) { a, _ in a }
            }
            r.attributes.metadataContext.filterMetadata["envoy.filters.http.json_to_metadata"] = .with {
                $0.fields = ["model": .init(stringValue: model), "max_tokens": .init(numberValue: maxTokens)]
            }
        }
    }

    private func withFrontDoor(
        _ h: Harness, _ body: (Envoy_Service_Auth_V3_Authorization.Client<HTTP2ClientTransport.Posix>) async throws -> Void
    ) async throws {
        try await withServices(h) { auth, _ in try await body(auth) }
    }

    private func withServices(
        _ h: Harness,
        _ body: (Envoy_Service_Auth_V3_Authorization.Client<HTTP2ClientTransport.Posix>,
                 Envoy_Service_Ratelimit_V3_RateLimitService.Client<HTTP2ClientTransport.Posix>) async throws -> Void
    ) async throws {
        let port = try RedisServerProcess.freeLoopbackPort()
        let bursard = try await BursardProcess(redis: h.redisServer.endpoint, extraArguments: ["--grpc", "127.0.0.1:\(port)"])
        defer { bursard.stop() }
        // The data plane answers PING before the gRPC listener is bound: wait for its line.
        var polls = 0
        while !((try? String(contentsOfFile: bursard.logPath, encoding: .utf8)) ?? "").contains("gRPC front door (Envoy ext_authz and rate limit service) listening"), polls < 500 {
            polls += 1
            try await Task.sleep(for: .milliseconds(10))
        }
        try await withGRPCClient(
            transport: .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
        ) { client in
            try await body(Envoy_Service_Auth_V3_Authorization.Client(wrapping: client), Envoy_Service_Ratelimit_V3_RateLimitService.Client(wrapping: client))
        }
    }

    private func headers(_ options: [Envoy_Config_Core_V3_HeaderValueOption]) -> [String: String] {
        Dictionary(options.map { ($0.header.key, $0.header.value) }) { a, _ in a }
    }

    private func errorType(_ r: Envoy_Service_Auth_V3_CheckResponse) -> String? {
        let body = try? JSONSerialization.jsonObject(with: Data(r.deniedResponse.body.utf8)) as? [String: [String: Any]]
        return body?["error"]?["type"] as? String
    }

    @Test("allowed: OK, the reservation for the upstream request, the rate-limit headers; its tokens are reserved in Redis")
    func allowed() async throws {
        try await withHarness { h in
            let w = try await h.world(limits: KeyLimits(rpm: 100, tpm: 10_000))
            try await withFrontDoor(h) { auth in
                let first = ContinuousClock.now
                let r = try await auth.check(request(key: w.key.secret, model: "gpt-5", maxTokens: 250, headers: ["x-bursar-input-tokens": "50"]))
                #expect(r.status.code == 0, "\(r)")
                guard case .okResponse(let ok) = r.httpResponse else {
                    Issue.record("not an OK response: \(r)")
                    return
                }
                let reservation = try #require(headers(ok.headers)["x-bursar-reservation"])
                // The reservation's sealed id, 32 hex digits (SPEC §5), naming one of the key's organization.
                let id = try #require(ReservationID(hex: reservation), "\(reservation)")
                #expect(try await reservationSeal(h.redis).open(id)?.orgID == w.org.id)
                let down = headers(ok.responseHeadersToAdd)
                #expect(down["x-ratelimit-limit-requests"] == "100" && down["x-ratelimit-remaining-requests"] == "99", "\(down)")
                #expect(down["x-ratelimit-limit-tokens"] == "10000" && down["x-ratelimit-remaining-tokens"] == "9700", "\(down)")
                // The second request sees the first one's 300 tokens in the bucket, less what drained
                // since the first was sent (10,000 a minute on Redis's clock).
                let again = try await auth.check(request(key: w.key.secret, model: "gpt-5", maxTokens: 250, headers: ["x-bursar-input-tokens": "50"]))
                let drained = Int(((ContinuousClock.now - first) / .seconds(1)) * 10_000 / 60) + 2
                guard case .okResponse(let ok2) = again.httpResponse else {
                    Issue.record("not an OK response: \(again)")
                    return
                }
                let remaining = try #require(Int(headers(ok2.responseHeadersToAdd)["x-ratelimit-remaining-tokens"] ?? ""))
                #expect((9400...9400 + drained).contains(remaining), "\(remaining), at most \(drained) drained")
            }
        }
    }

    @Test("denied: unknown and revoked keys 401, a model not allowed 403, a rate limit 429 with Retry-After, a budget 402")
    func denied() async throws {
        try await withHarness { h in
            let w = try await h.world(limits: KeyLimits(budget: 5_000, rpm: 2, models: ["gpt-5"]))
            let other = try await h.store.createKey(org: w.org.id, project: w.project.id, user: w.member.id, name: "revoked", limits: KeyLimits())
            try await withFrontDoor(h) { auth in
                let unknown = try await auth.check(request(key: "sk-br-nobody", model: "gpt-5"))
                #expect(unknown.deniedResponse.status.code == .unauthorized && errorType(unknown) == "unknown_key", "\(unknown)")
                #expect(unknown.status.code == 16)
                let missing = try await auth.check(request(key: nil, model: "gpt-5"))
                #expect(missing.deniedResponse.status.code == .unauthorized, "\(missing)")

                try await h.store.revokeKey(org: w.org.id, other.key.id)
                let revoked = try await auth.check(request(key: other.secret, model: "gpt-5", headers: ["x-bursar-estimated-cost": "1"]))
                #expect(revoked.deniedResponse.status.code == .unauthorized && errorType(revoked) == "key_revoked", "\(revoked)")

                let model = try await auth.check(request(key: w.key.secret, model: "gpt-4o", headers: ["x-bursar-estimated-cost": "1"]))
                #expect(model.deniedResponse.status.code == .forbidden && errorType(model) == "model_not_allowed", "\(model)")

                // A budget applies and the price table has no price for the model: refused, naming it.
                let free = try await auth.check(request(key: w.key.secret, model: "gpt-5"))
                #expect(free.deniedResponse.status.code == .forbidden && errorType(free) == "price_unknown", "\(free)")
                #expect(free.deniedResponse.body.contains("gpt-5"), "\(free.deniedResponse.body)")

                // Nothing counted: on a key allowing one request a minute, the next request is admitted.
                let oneAMinute = try await h.store.createKey(
                    org: w.org.id, project: w.project.id, user: w.member.id, name: "one", limits: KeyLimits(budget: 1_000_000, rpm: 1))
                let refused = try await auth.check(request(key: oneAMinute.secret, model: "gpt-5"))
                #expect(errorType(refused) == "price_unknown", "\(refused)")
                // Once the model has a price, the same request is priced by bursar and admitted.
                try await h.store.setPrices(org: w.org.id, [ModelPrice(model: "gpt-5", input: 1_000_000, output: 2_000_000, cachedInput: 0)])
                let priced = try await auth.check(request(key: oneAMinute.secret, model: "gpt-5", maxTokens: 100))
                #expect(priced.status.code == 0, "the refused request did not count: \(priced.status.message)")
                try await h.store.deletePrice(org: w.org.id, model: "gpt-5")

                let budget = try await auth.check(request(key: w.key.secret, model: "gpt-5", headers: ["x-bursar-estimated-cost": "6000"]))
                #expect(budget.deniedResponse.status.code == .paymentRequired && errorType(budget) == "key_budget", "\(budget)")

                // A rate limit: a key without a budget (the org is not metered), so no price is needed.
                let limitedKey = try await h.store.createKey(org: w.org.id, project: w.project.id, user: w.member.id, name: "rpm", limits: KeyLimits(rpm: 2))
                for _ in 0..<2 {
                    let ok = try await auth.check(request(key: limitedKey.secret, model: "gpt-5"))
                    #expect(ok.status.code == 0, "\(ok.status.message)")
                }
                let limited = try await auth.check(request(key: limitedKey.secret, model: "gpt-5"))
                #expect(limited.deniedResponse.status.code == .tooManyRequests && errorType(limited) == "key_rpm", "\(limited)")
                let retry = try #require(headers(limited.deniedResponse.headers)["Retry-After"])
                #expect((Int(retry) ?? 0) >= 1, "Retry-After \(retry)")
            }
        }
    }

    // MARK: The rate limit service

    /// The request-phase call of Envoy's rate limit filter (deploy/envoy/envoy.yaml).
    private func phase(key: String?, model: String, maxTokens: String = "100", bodyBytes: String? = nil) -> Envoy_Service_Ratelimit_V3_RateLimitRequest {
        .with { r in
            r.domain = "bursar"
            if key == nil {
                r.descriptors = [.with { $0.entries = [.with { $0.key = "missing"; $0.value = "api_key" }] }]
                return
            }
            var entries: [(String, String)] = [("api_key", "Bearer \(key!)"), ("model", model), ("max_tokens", maxTokens), ("request_id", UUID().uuidString)]
            if let bodyBytes { entries.append(("body_bytes", bodyBytes)) }
            r.descriptors = [.with { d in d.entries = entries.map { e in .with { $0.key = e.0; $0.value = e.1 } } }]
        }
    }

    /// The stream-done call: input and output tokens as hits_addend, and the done marker.
    private func done(reservation: String?, input: UInt64?, output: UInt64?, cached: UInt64? = nil) -> Envoy_Service_Ratelimit_V3_RateLimitRequest {
        .with { r in
            r.domain = "bursar"
            func descriptor(_ usage: String, _ hits: UInt64?) -> Envoy_Extensions_Common_Ratelimit_V3_RateLimitDescriptor {
                .with { d in
                    var entries = [("usage", usage), ("request_id", "r-1")]
                    if let reservation { entries.append(("reservation", reservation)) }
                    d.entries = entries.map { e in .with { $0.key = e.0; $0.value = e.1 } }
                    if let hits { d.hitsAddend = .with { $0.value = hits } }
                }
            }
            r.descriptors = (input.map { [descriptor("input_tokens", $0)] } ?? []) + (output.map { [descriptor("output_tokens", $0)] } ?? [])
                + (cached.map { [descriptor("cached_input_tokens", $0)] } ?? []) + [descriptor("done", nil)]
        }
    }

    @Test("rate limit service: the request phase reserves at the table's prices, stream done settles that reservation exactly once")
    func rateLimitService() async throws {
        try await withHarness { h in
            let w = try await h.world(limits: KeyLimits(budget: 1_000_000_000, period: .monthly, rpm: 100, tpm: 100_000))
            // $2 per million input tokens, $8 per million output tokens.
            try await h.store.setPrices(org: w.org.id, [ModelPrice(model: "gpt-5", input: 2_000_000_000, output: 8_000_000_000, cachedInput: 0)])
            try await withServices(h) { _, rls in
                let r = try await rls.shouldRateLimit(phase(key: w.key.secret, model: "gpt-5", maxTokens: "500", bodyBytes: "4000"))
                #expect(r.overallCode == .ok, "\(r)")
                let reservation = try #require(r.requestHeadersToAdd.first { $0.key == "x-bursar-reservation" }?.value)
                #expect(r.responseHeadersToAdd.contains { $0.key == "x-ratelimit-remaining-requests" && $0.value == "99" })
                #expect(r.statuses.first?.code == .ok)
                #expect(r.statuses.first?.currentLimit.unit == .minute)
                // 1,000 input tokens (4,000 bytes / 4) at $2/M + 500 output at $8/M = $0.006.
                let usage = UsageReader(redis: h.redis)
                #expect(try await usage.key(org: w.org.id, w.key.key.id)?.spend.spent == 6_000_000)

                let settled = try await rls.shouldRateLimit(done(reservation: reservation, input: 900, output: 120))
                #expect(settled.overallCode == .ok)
                // 900 × $2/M + 120 × $8/M = $0.00276.
                #expect(try await usage.key(org: w.org.id, w.key.key.id)?.spend.spent == 2_760_000)
                _ = try await rls.shouldRateLimit(done(reservation: reservation, input: 900, output: 120))
                #expect(try await usage.key(org: w.org.id, w.key.key.id)?.spend.spent == 2_760_000, "a repeated stream-done call changes nothing")

                // No usage seen (only the done marker): the reservation keeps its estimate.
                let second = try await rls.shouldRateLimit(phase(key: w.key.secret, model: "gpt-5", maxTokens: "500", bodyBytes: "4000"))
                let id2 = try #require(second.requestHeadersToAdd.first { $0.key == "x-bursar-reservation" }?.value)
                #expect(try await rls.shouldRateLimit(done(reservation: id2, input: nil, output: nil)).overallCode == .ok)
                #expect(try await usage.key(org: w.org.id, w.key.key.id)?.spend.spent == 2_760_000 + 6_000_000)

                // Cached input is the part of the input read from the upstream's cache: 400 of 900
                // at $0.50/M, 500 at $2/M, 120 output at $8/M = $0.00216.
                try await h.store.setPrices(org: w.org.id, [ModelPrice(model: "gpt-5", input: 2_000_000_000, output: 8_000_000_000, cachedInput: 500_000_000)])
                let third = try await rls.shouldRateLimit(phase(key: w.key.secret, model: "gpt-5", maxTokens: "500", bodyBytes: "4000"))
                let id3 = try #require(third.requestHeadersToAdd.first { $0.key == "x-bursar-reservation" }?.value)
                _ = try await rls.shouldRateLimit(done(reservation: id3, input: 900, output: 120, cached: 400))
                #expect(try await usage.key(org: w.org.id, w.key.key.id)?.spend.spent == 2_760_000 + 6_000_000 + 2_160_000)
            }
        }
    }

    @Test("rate limit service: refusals are OVER_LIMIT with the reason's JSON body, a status per descriptor and Retry-After")
    func rateLimitRefusals() async throws {
        try await withHarness { h in
            let w = try await h.world(limits: KeyLimits(budget: 1_000_000_000, period: .monthly, rpm: 1))
            try await h.store.setPrices(org: w.org.id, [ModelPrice(model: "gpt-5", input: 1, output: 1, cachedInput: 0)])
            try await withServices(h) { _, rls in
                func reason(_ r: Envoy_Service_Ratelimit_V3_RateLimitResponse) -> String? {
                    r.responseHeadersToAdd.first { $0.key == "x-bursar-deny-reason" }?.value
                }
                let missing = try await rls.shouldRateLimit(phase(key: nil, model: "gpt-5"))
                #expect(missing.overallCode == .overLimit && reason(missing) == "unknown_key")
                let unknown = try await rls.shouldRateLimit(phase(key: "sk-br-nobody", model: "gpt-5"))
                #expect(unknown.overallCode == .overLimit && reason(unknown) == "unknown_key")
                let body = try JSONSerialization.jsonObject(with: unknown.rawBody) as? [String: [String: Any]]
                #expect(body?["error"]?["type"] as? String == "unknown_key" && body?["error"]?["code"] as? String == "401")
                let unpriced = try await rls.shouldRateLimit(phase(key: w.key.secret, model: "gpt-6"))
                #expect(reason(unpriced) == "price_unknown" && String(decoding: unpriced.rawBody, as: UTF8.self).contains("gpt-6"))
                #expect(try await rls.shouldRateLimit(phase(key: w.key.secret, model: "gpt-5")).overallCode == .ok)
                let limited = try await rls.shouldRateLimit(phase(key: w.key.secret, model: "gpt-5"))
                #expect(limited.overallCode == .overLimit && reason(limited) == "key_rpm")
                let status = try #require(limited.statuses.first)
                #expect(status.code == .overLimit && status.currentLimit.requestsPerUnit == 1 && status.limitRemaining == 0)
                #expect(status.durationUntilReset.seconds >= 1)
                #expect(limited.responseHeadersToAdd.contains { $0.key == "Retry-After" })
                await #expect(throws: RPCError.self) {
                    _ = try await rls.shouldRateLimit(.with { $0.domain = "other" })
                }
            }
        }
    }
}
