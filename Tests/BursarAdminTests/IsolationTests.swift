import BursarAPI
import BursarRBAC
import BursarRedis
import BursarStore
import BursarWire
import Foundation
import Hummingbird
import Testing

@Suite("Organizations are isolated: nothing of one is visible to or changeable by anyone of another")
struct IsolationTests {
    /// A valid body for each templated write, so that authorization (not body validation) decides.
    static func body(_ method: String, _ template: String, user: UInt64, acceptToken: String = "") -> String? {
        switch (method, template) {
        case ("POST", "/v1/bootstrap"): return #"{"org":"x","owner_email":"boot@x.test"}"#
        case ("POST", "/v1/orgs"): return #"{"name":"x","owner_email":"new@x.test"}"#
        case ("POST", "/v1/orgs/{org}/members"): return #"{"email":"victim@x.test"}"#
        case ("POST", "/v1/invitations/accept"): return #"{"token":"\#(acceptToken)"}"#
        case ("PATCH", "/v1/orgs/{org}/members/{user}"): return #"{"role":"member"}"#
        case ("POST", "/v1/orgs/{org}/projects"): return #"{"name":"x"}"#
        case ("PATCH", "/v1/orgs/{org}/projects/{project}"): return #"{"rpm":5}"#
        case ("POST", "/v1/orgs/{org}/projects/{project}/members"): return #"{"user_id":\#(user)}"#
        case ("PATCH", "/v1/orgs/{org}/projects/{project}/members/{user}"): return #"{"role":"admin"}"#
        case ("POST", "/v1/orgs/{org}/projects/{project}/keys"): return #"{"name":"x"}"#
        case ("PATCH", "/v1/orgs/{org}/keys/{key}"): return #"{"rpm":5}"#
        case ("POST", "/v1/orgs/{org}/credits"): return #"{"amount_nusd":1}"#
        case ("POST", "/v1/orgs/{org}/byok"): return #"{"provider":"p","name":"n","secret":"secret-secret"}"#
        case ("PUT", "/v1/orgs/{org}/virtual-models/{name}"): return #"{"targets":["a"]}"#
        case ("PUT", "/v1/orgs/{org}/prices/{name}"): return #"{"input_per_million_nusd":1,"output_per_million_nusd":1}"#
        case ("POST", "/v1/orgs/{org}/prices/import"): return #"{"x":{"input_cost_per_token":1e-06,"output_cost_per_token":1e-06}}"#
        case ("POST", "/v1/orgs/{org}/mcp-servers"), ("PATCH", "/v1/orgs/{org}/mcp-servers/{id}"): return #"{"name":"n","url":"https://x.test"}"#
        case ("POST", "/v1/orgs/{org}/prompts"): return #"{"name":"n","text":"t"}"#
        case ("POST", "/v1/orgs/{org}/prompts/{name}/versions"): return #"{"text":"t"}"#
        default: return nil
        }
    }

    /// Every value under an organization's prefix except its audit log, for before/after comparison.
    static func snapshot(_ h: AdminHarness, org: UInt64) async throws -> [String: String] {
        let names = (try await h.redis.send(RedisCommand("KEYS", Keyspace.org(org) + "*")).array ?? []).compactMap(\.string)
        var result: [String: String] = [:]
        for name in names where name != Keyspace.audit(org) {
            let type = try await h.redis.send(RedisCommand("TYPE", name)).string ?? "?"
            // Expired between KEYS and TYPE: as good as absent.
            if type == "none" { continue }
            let value: RedisValue
            switch type {
            case "string": value = try await h.redis.send(RedisCommand("GET", name))
            case "hash": value = try await h.redis.send(RedisCommand("HGETALL", name))
            case "set": value = try await h.redis.send(RedisCommand("SMEMBERS", name))
            case "list": value = try await h.redis.send(RedisCommand("LRANGE", name, "0", "-1"))
            default: value = .status(type)
            }
            let text: String
            if type == "hash" || type == "set" {
                text = (value.array ?? []).map { $0.string ?? "" }.sorted().joined(separator: ",")
            } else {
                text = "\(value)"
            }
            result[name] = "\(type):\(text)"
        }
        return result
    }

    @Test("every endpoint, called by every standing of one organization on every resource of another, answers not found and changes nothing")
    func everyEndpoint() async throws {
        try await withAdmin { h in
            let a = try await h.world("a")
            let b = try await h.world("b")
            // Resources of A that have names or ids of their own.
            let byok = try await h.store.addProviderKey(org: a.org, provider: "openai", name: "prod", secret: "sk-secret-of-a")
            let mcp = try await h.store.addMCPServer(org: a.org, name: "search", url: "https://mcp.a.test")
            try await h.store.setVirtualModel(org: a.org, name: "fast", targets: ["m"])
            try await h.store.addPromptVersion(org: a.org, name: "greeting", text: "hi", by: a.owner.id, create: true)
            // A pending invitation of A's: B's people can neither see, withdraw nor accept it.
            let invitation = try await h.store.createInvitation(org: a.org, email: "invitee-\(a.org)@x.test", name: nil, role: .member, by: nil)
            let before = try await Self.snapshot(h, org: a.org)

            // A gateway credential serving A: operator business, out of reach of B's people.
            let (gateway, _) = try await h.store.createGatewayCredential(name: "gw-a", organizations: [a.org])
            var called = 0
            for (method, template) in AdminHarness.document.operations {
                for standing in Standing.allCases {
                    // The caller's own token (rotate, revoke) names no organization: nothing of A
                    // can be reached through it, and using it would end B's tokens mid-test
                    // (TokenLifecycleTests covers it).
                    if template.hasPrefix("/v1/me/token"), method != "GET" {
                        called += 1
                        continue
                    }
                    let path = template
                        .replacingOccurrences(of: "{org}", with: "\(a.org)").replacingOccurrences(of: "{project}", with: "\(a.p)")
                        .replacingOccurrences(of: "{key}", with: "\(a.tessKey)").replacingOccurrences(of: "{user}", with: "\(a.member.id)")
                        .replacingOccurrences(of: "{id}", with: template.contains("byok") ? "\(byok.id)" : template.contains("invitations") ? "\(invitation.0.id)" : "\(mcp.id)")
                        .replacingOccurrences(of: "{name}", with: template.contains("virtual") ? "fast" : "greeting")
                        .replacingOccurrences(of: "{credential}", with: gateway.id)
                    let r = try await h.api.call(
                        HTTPRequest.Method(rawValue: method)!, path, token: b.token(standing),
                        json: Self.body(method, template, user: a.spare, acceptToken: invitation.token))
                    called += 1
                    let context = "\(method) \(path) as org B's \(standing.rawValue): \(r)"
                    switch (method, template) {
                    case ("GET", "/v1/me"), ("GET", "/v1/orgs"), ("GET", "/v1/me/token"):
                        #expect(r.status == 200, "\(context)")
                        #expect(!String(decoding: r.body, as: UTF8.self).contains("\"id\":\(a.org),"), "\(context) lists org A")
                    case ("POST", "/v1/orgs"), (_, "/v1/gateway-credentials"), (_, "/v1/gateway-credentials/{credential}"):
                        #expect(r.status == 403, "\(context)")
                    case ("POST", "/v1/console-links"):
                        // A sign-in link for the caller themselves: nothing of org A is involved.
                        #expect(r.status == 201, "\(context)")
                    case ("POST", "/v1/bootstrap"):
                        #expect(r.status == 409, "\(context)")
                    default:
                        #expect(r.status == 404 && r.code == "not_found", "\(context)")
                    }
                }
            }
            #expect(called == AdminHarness.document.operations.count * Standing.allCases.count)
            #expect(try await Self.snapshot(h, org: a.org) == before, "org A changed")
            #expect(try await h.store.gatewayCredentials().map(\.id) == [gateway.id], "the gateway credential serving A changed")
            #expect(try await h.store.invitations(org: a.org).map(\.id) == [invitation.0.id], "A's pending invitation changed")
            // B's resources are untouched too, apart from what B legitimately did in B: nothing here.
            #expect(try await h.store.providerKeys(org: b.org).isEmpty)
        }
    }

    @Test("ids tell nothing: A's project, key and MCP ids count only A's; B creating three of each in between shows nowhere in A")
    func idsTellNothing() async throws {
        try await withAdmin { h in
            let a = try await h.world("a")
            let b = try await h.world("b")
            func project(_ org: UInt64, _ token: String, _ name: String) async throws -> UInt64 {
                try await h.api.call(.post, "/v1/orgs/\(org)/projects", token: token, json: #"{"name":"\#(name)"}"#).decode(ProjectBody.self).id
            }
            func key(_ org: UInt64, _ p: UInt64, _ token: String) async throws -> UInt64 {
                try await h.api.call(.post, "/v1/orgs/\(org)/projects/\(p)/keys", token: token, json: #"{"name":"k"}"#).decode(KeySecretResponse.self).key.id
            }
            func mcp(_ org: UInt64, _ token: String) async throws -> UInt64 {
                try await h.api.call(.post, "/v1/orgs/\(org)/mcp-servers", token: token, json: #"{"name":"s","url":"https://mcp.example.test"}"#)
                    .decode(McpServerBody.self).id
            }
            let p1 = try await project(a.org, a.owner.token, "a-1")
            let k1 = try await key(a.org, a.p, a.owner.token)
            let m1 = try await mcp(a.org, a.owner.token)
            for i in 0..<3 {
                _ = try await project(b.org, b.owner.token, "b-\(i)")
                _ = try await key(b.org, b.p, b.owner.token)
                _ = try await mcp(b.org, b.owner.token)
            }
            let p2 = try await project(a.org, a.owner.token, "a-2")
            let k2 = try await key(a.org, a.p, a.owner.token)
            let m2 = try await mcp(a.org, a.owner.token)
            #expect(p2 == p1 + 1 && k2 == k1 + 1 && m2 == m1 + 1, "A's ids moved by B's creations: \([p1, p2, k1, k2, m1, m2])")
            // People span organizations: their ids are random, not counted.
            let people = try await h.store.users(org: a.org).map(\.id) + h.store.users(org: b.org).map(\.id)
            let sorted = Set(people).sorted()
            #expect(zip(sorted, sorted.dropFirst()).allSatisfy { $1 - $0 > 1 }, "person ids look counted: \(sorted)")
        }
    }

    @Test("upgrade: an organization's counter starts above every id the installation-wide counter of an earlier release issued")
    func idsAfterUpgrade() async throws {
        try await withAdmin { h in
            // An earlier release counted MCP servers installation-wide and had reached 1,000.
            _ = try await h.store.redis.send(RedisCommand("SET", Keyspace.sequence("mcp"), "1000"))
            let a = try await h.world("a")
            let first = try await h.store.addMCPServer(org: a.org, name: "s", url: "https://mcp.example.test")
            let second = try await h.store.addMCPServer(org: a.org, name: "t", url: "https://mcp.example.test")
            #expect(first.id == 1_001 && second.id == 1_002)
            #expect(try await h.store.redis.send(RedisCommand("GET", Keyspace.sequence("mcp"))).int == 1_000, "the old counter is left as it was")
        }
    }

    @Test("CHECKs, settles and releases of one organization touch no counter of another")
    func checksStayHome() async throws {
        try await withAdmin { h in
            let a = try await h.world("a")
            let b = try await h.world("b")
            let ka = try await h.api.call(.post, "/v1/orgs/\(a.org)/projects/\(a.p)/keys", token: a.member.token, json: #"{"name":"k","rpm":100,"tpm":10000,"max_spend_nusd":1000000}"#).decode(KeySecretResponse.self)
            let kb = try await h.api.call(.post, "/v1/orgs/\(b.org)/projects/\(b.p)/keys", token: b.member.token, json: #"{"name":"k","rpm":100,"tpm":10000,"max_spend_nusd":1000000}"#).decode(KeySecretResponse.self)
            #expect(try await h.check(ka.secret).allowed)
            let before = try await Self.snapshot(h, org: a.org)
            let c = try await h.connect()
            for i in 0..<20 {
                let r = try await c.check(CheckRequest(digest: KeyDigest(secret: kb.secret), model: try ModelName("m"), inputTokens: 50, maxOutputTokens: 0, estimatedCost: 1_000))
                #expect(r.allowed && r.orgID == b.org)
                if i % 2 == 0 {
                    _ = try await c.settle(SettleRequest(reservation: r.reservation, inputTokens: 40, outputTokens: 5, cost: 900))
                } else {
                    _ = try await c.release(r.reservation)
                }
            }
            await c.close()
            // Nothing of A appeared or changed. A's rate buckets may have drained empty and expired
            // meanwhile (Redis's clock runs on); a bucket B had written would carry a new value.
            let after = try await Self.snapshot(h, org: a.org)
            for (name, value) in after { #expect(before[name] == value, "a CHECK of org B changed \(name)") }
            for name in before.keys where after[name] == nil { #expect(name.contains(":b:"), "\(name) of org A vanished") }
            #expect(before.keys.contains { $0.contains(":s:k:") }, "org A's spend counters were not in the snapshot")
        }
    }
}
