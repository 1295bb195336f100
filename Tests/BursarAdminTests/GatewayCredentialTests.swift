import BursarAPI
import BursarRedis
import BursarStore
import Foundation
import HTTPTypes
import Testing

/// Gateway credentials through the admin API (SPEC §6.5): the operator issues, lists and revokes
/// them; nobody else can; the secret is shown once and stored only as a digest.
@Suite("Admin API: gateway credentials")
struct GatewayCredentialTests {
    @Test("the operator issues (secret once, digest stored), lists (no secrets) and revokes; each organization's log says so")
    func lifecycle() async throws {
        try await withAdmin { h in
            let op = try await h.store.bootstrap(org: "boot", ownerEmail: "boot@example.test", ownerName: nil).operatorToken
            let a = try await h.world()
            let b = try await h.world()
            let made = try await h.api.call(.post, "/v1/gateway-credentials", token: op, json: #"{"name":"gw-eu","organizations":[\#(a.org),\#(b.org),\#(a.org)]}"#)
            #expect(made.status == 201, "\(made)")
            let c = try made.decode(GatewayCredentialBody.self)
            let secret = try #require(c.secret)
            #expect(secret.hasPrefix("bgw_") && c.organizations == [a.org, b.org].sorted() && c.id.hasPrefix("gw_") && c.id.count == 19)
            // Only the digest reaches Redis.
            let stored = try await h.store.redis.send(RedisCommand("HGETALL", Keyspace.gatewayCredentials)).array ?? []
            #expect(!stored.compactMap(\.string).contains { $0.contains(secret) })
            #expect(stored.first?.string == MetadataStore.digest(ofSecret: secret).hex)

            let listed = try await h.api.get("/v1/gateway-credentials", op).decode(GatewayCredentialList.self)
            #expect(listed.credentials.map(\.id) == [c.id] && listed.credentials.allSatisfy { $0.secret == nil })
            #expect(!String(decoding: try await h.api.get("/v1/gateway-credentials", op).body, as: UTF8.self).contains(secret))

            for w in [a, b] {
                let log = try await h.api.get("/v1/orgs/\(w.org)/audit?action=gateway_credential.create", w.owner.token).decode(AuditResponse.self)
                #expect(log.entries.map(\.target) == ["gateway_credential:\(c.id)"] && log.entries.first?.actor == "operator")
            }

            #expect(try await h.api.call(.delete, "/v1/gateway-credentials/\(c.id)", token: op).status == 204)
            #expect(try await h.api.get("/v1/gateway-credentials", op).decode(GatewayCredentialList.self).credentials.isEmpty)
            let again = try await h.api.call(.delete, "/v1/gateway-credentials/\(c.id)", token: op)
            #expect(again.status == 404 && again.code == "not_found", "\(again)")
            let log = try await h.api.get("/v1/orgs/\(a.org)/audit?action=gateway_credential.revoke", a.owner.token).decode(AuditResponse.self)
            #expect(log.entries.count == 1)
        }
    }

    @Test("bad input: no organization, an unknown one, a bad name, a bad id; anyone but the operator is refused and nothing is made")
    func refusals() async throws {
        try await withAdmin { h in
            let op = try await h.store.bootstrap(org: "boot", ownerEmail: "boot@example.test", ownerName: nil).operatorToken
            let w = try await h.world()
            for (body, code, status) in [
                (#"{"name":"gw","organizations":[]}"#, "invalid", 400),
                (#"{"name":"gw","organizations":[999999]}"#, "not_found", 404),
                (#"{"name":"  ","organizations":[\#(w.org)]}"#, "invalid", 400),
                (#"{"name":"gw"}"#, "invalid", 400),
                (#"{"name":"gw","organizations":[\#(w.org)],"scope":"all"}"#, "invalid", 400),
            ] {
                let r = try await h.api.call(.post, "/v1/gateway-credentials", token: op, json: body)
                #expect(r.status == status && r.code == code, "\(body): \(r)")
            }
            for bad in ["gw_1", "gw_0123456789ABCDEF", "1", "gw_0123456789abcdeg"] {
                let r = try await h.api.call(.delete, "/v1/gateway-credentials/\(bad)", token: op)
                #expect(r.status == 400 && r.code == "invalid", "\(bad): \(r)")
            }
            for token in [w.owner.token, w.admin.token, w.member.token] {
                let r = try await h.api.call(.post, "/v1/gateway-credentials", token: token, json: #"{"name":"gw","organizations":[\#(w.org)]}"#)
                #expect(r.status == 403 && r.code == "forbidden", "\(r)")
                #expect(try await h.api.get("/v1/gateway-credentials", token).status == 403)
            }
            #expect(try await h.store.gatewayCredentials().isEmpty)
        }
    }
}
