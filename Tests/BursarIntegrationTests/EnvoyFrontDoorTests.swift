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
        let port = try RedisServerProcess.freeLoopbackPort()
        let bursard = try await BursardProcess(redis: h.redisServer.endpoint, extraArguments: ["--grpc", "127.0.0.1:\(port)"])
        defer { bursard.stop() }
        // The data plane answers PING before the gRPC listener is bound: wait for its line.
        var polls = 0
        while !((try? String(contentsOfFile: bursard.logPath, encoding: .utf8)) ?? "").contains("gRPC front door (Envoy ext_authz) listening"), polls < 500 {
            polls += 1
            try await Task.sleep(for: .milliseconds(10))
        }
        try await withGRPCClient(
            transport: .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
        ) { client in
            try await body(Envoy_Service_Auth_V3_Authorization.Client(wrapping: client))
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
                #expect(reservation.hasPrefix("\(w.org.id)-"))
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

                // A budget applies: without a cost estimate the admission is given back and refused.
                let free = try await auth.check(request(key: w.key.secret, model: "gpt-5"))
                #expect(free.deniedResponse.status.code == .forbidden && errorType(free) == "price_unknown", "\(free)")

                // The refused admission is given back whole, its request included: on a key allowing
                // one request a minute, a request with a price is admitted once the void has run.
                let oneAMinute = try await h.store.createKey(
                    org: w.org.id, project: w.project.id, user: w.member.id, name: "one", limits: KeyLimits(budget: 1_000_000, rpm: 1))
                let refused = try await auth.check(request(key: oneAMinute.secret, model: "gpt-5"))
                #expect(errorType(refused) == "price_unknown", "\(refused)")
                var priced = refused
                for _ in 0..<100 {
                    priced = try await auth.check(request(key: oneAMinute.secret, model: "gpt-5", headers: ["x-bursar-estimated-cost": "10"]))
                    if priced.status.code == 0 { break }
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(priced.status.code == 0, "the refused request still counts: \(priced.status.message)")

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
}
