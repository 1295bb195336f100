import BursarAPI
import BursarRBAC
import BursarRedis
import BursarStore
import BursarWire
import Foundation
import Hummingbird
import Testing

@Suite("Keys outlive nothing they should not: what the API changes, the next CHECK sees")
struct KeyGovernanceTests {
    /// A key the Project Member creates for themselves through the API.
    func memberKey(_ h: AdminHarness, _ w: World, _ json: String = #"{"name":"mine"}"#) async throws -> KeySecretResponse {
        let r = try await h.api.call(.post, "/v1/orgs/\(w.org)/projects/\(w.p)/keys", token: w.member.token, json: json)
        #expect(r.status == 201, "\(r)")
        return try r.decode(KeySecretResponse.self)
    }

    @Test("creator removed from the project: their key is denied on the next CHECK")
    func creatorRemoved() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            let k = try await memberKey(h, w)
            #expect(try await h.check(k.secret).allowed)
            let r = try await h.api.call(.delete, "/v1/orgs/\(w.org)/projects/\(w.p)/members/\(w.member.id)", token: w.admin.token)
            #expect(r.status == 204)
            #expect(try await h.check(k.secret).reason == .creatorLostAccess)
        }
    }

    @Test("creator removed from the organization: their key is denied on the next CHECK")
    func creatorLeftOrg() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            let k = try await memberKey(h, w)
            #expect(try await h.api.call(.delete, "/v1/orgs/\(w.org)/members/\(w.member.id)", token: w.owner.token).status == 204)
            #expect(try await h.check(k.secret).reason == .creatorLostAccess)
            // Their memberships are gone with them.
            #expect(try await h.store.membership(org: w.org, project: w.p, user: w.member.id) == nil)
        }
    }

    @Test("creator's grant narrowed after the key was made: CHECK applies the narrower limit")
    func grantNarrowed() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            let k = try await memberKey(h, w, #"{"name":"mine","rpm":60,"models":["m","gpt-5.5"]}"#)
            // Twenty requests in the key's RPM bucket: at 60 per minute they drain in 20 s, and the
            // bucket's key is written to expire then (and a second more).
            for _ in 0..<20 { #expect(try await h.check(k.secret).allowed) }
            let bucket = Keyspace.buckets(w.org, scope: "k", id: k.key.id)
            let before = try await h.redis.send(RedisCommand("PTTL", bucket)).int ?? -3
            #expect(before > 0 && before <= 21_000, "\(before)")
            let r = try await h.api.call(
                .patch, "/v1/orgs/\(w.org)/projects/\(w.p)/members/\(w.member.id)", token: w.admin.token,
                json: #"{"grant":{"rpm":1,"models":["gpt-5.5"]}}"#)
            #expect(r.status == 200, "\(r)")
            // The narrowing keeps the bucket for the new rate: what it holds drains at 1 per minute,
            // so its key now lives for minutes, not the seconds left at the old rate (it would
            // vanish then, and the narrower limit start from empty).
            let after = try await h.redis.send(RedisCommand("PTTL", bucket)).int ?? -3
            #expect(after > 60_000, "the bucket expires in \(after) ms at 1 per minute (before the narrowing: \(before) ms)")
            // Model m is no longer granted; gpt-5.5 is, but only 1 per minute, and the bucket holds
            // about 20 requests, which no machine's slowness drains at 1 per minute.
            #expect(try await h.check(k.secret, model: "m").reason == .modelNotAllowed)
            let narrowed = try await h.check(k.secret, model: "gpt-5.5")
            #expect(narrowed.reason == .keyRPM, "\(narrowed)")
            // The key's own stored limits are untouched.
            #expect(try await h.store.key(org: w.org, k.key.id)?.limits.rpm == 60)
        }
    }

    @Test("a project cap lowered after the key was made: CHECK applies the tighter project value")
    func projectCapLowered() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            let k = try await memberKey(h, w, #"{"name":"mine","tpm":100000}"#)
            #expect(try await h.check(k.secret, tokens: 100).allowed)
            #expect(try await h.api.call(.patch, "/v1/orgs/\(w.org)/projects/\(w.p)", token: w.admin.token, json: #"{"tpm":1000}"#).status == 200)
            #expect(try await h.check(k.secret, tokens: 5_000).reason == .requestTooLarge)
            #expect(try await h.check(k.secret, tokens: 800).allowed)
            #expect(try await h.check(k.secret, tokens: 800).reason == .projectTPM)
        }
    }

    @Test("limits beyond a project cap or a grant are refused with the cap named", arguments: [
        (#"{"name":"k","tpm":120001}"#, "project.tpm"),
        (#"{"name":"k","rpm":601}"#, "project.rpm"),
        (#"{"name":"k","max_spend_nusd":2000000000001}"#, "project.monthly_budget"),
        (#"{"name":"k","models":["gpt-4o"]}"#, "project.models"),
        (#"{"name":"k","max_spend_nusd":200000000001}"#, "grant.max_key_spend"),
        (#"{"name":"k","tpm":20001}"#, "grant.tpm"),
        (#"{"name":"k","models":["claude-opus-4.8"]}"#, "grant.models"),
    ])
    func beyondCaps(_ body: String, _ cap: String) async throws {
        try await withAdmin { h in
            let w = try await h.world()
            // The member's grant: $200 per key, 20k TPM, and two of the project's models.
            try await h.store.setMembership(Membership(
                orgID: w.org, projectID: w.p, userID: w.member.id, role: .member,
                grant: Grant(models: ["gpt-5.5", "m"], maxKeySpend: 200_000_000_000, rpm: 60, tpm: 20_000)))
            let before = try await h.store.keys(org: w.org, project: w.p).count
            let r = try await h.api.call(.post, "/v1/orgs/\(w.org)/projects/\(w.p)/keys", token: w.member.token, json: body)
            #expect(r.status == 422 && r.code == "exceeds_cap", "\(r)")
            #expect((try? r.decode(ErrorBody.self))?.error.cap == cap, "\(r)")
            #expect(try await h.store.keys(org: w.org, project: w.p).count == before)
            // The same limits through an update are refused the same way.
            let k = try await memberKey(h, w)
            var update = body.replacingOccurrences(of: #""name":"k","#, with: "")
            if update == body { update = "{}" }
            let u = try await h.api.call(.patch, "/v1/orgs/\(w.org)/keys/\(k.key.id)", token: w.member.token, json: update)
            #expect(u.status == 422 && (try? u.decode(ErrorBody.self))?.error.cap == cap, "\(u)")
        }
    }

    @Test("revoked through the API: the next CHECK is denied; rotated: the old secret stops, the new one works")
    func revokeAndRotate() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            let k = try await memberKey(h, w)
            let rotated = try await h.api.call(.post, "/v1/orgs/\(w.org)/keys/\(k.key.id)/rotate", token: w.member.token).decode(KeySecretResponse.self)
            #expect(rotated.secret != k.secret && rotated.key.display == "sk-br-…" + rotated.secret.suffix(4))
            #expect(try await h.check(k.secret).reason == .unknownKey)
            #expect(try await h.check(rotated.secret).allowed)
            let revoked = try await h.api.call(.post, "/v1/orgs/\(w.org)/keys/\(k.key.id)/revoke", token: w.owner.token).decode(KeyBody.self)
            #expect(revoked.status == "revoked")
            #expect(try await h.check(rotated.secret).reason == .keyRevoked)
        }
    }

    @Test("expiry: 'in N days' counts from Redis's clock; moving it into the past through the API denies the next CHECK")
    func expiry() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            let k = try await memberKey(h, w, #"{"name":"mine","expires_in_days":30,"content_logging_disabled":true}"#)
            let now = try await h.store.redisTimeMs()
            let expires = try #require(k.key.expiresAtMs)
            #expect(expires <= now + 30 * 86_400_000 && expires > now + 30 * 86_400_000 - 60_000)
            let allowed = try await h.check(k.secret)
            #expect(allowed.allowed && allowed.contentLoggingDisabled)
            let past = try await h.api.call(.patch, "/v1/orgs/\(w.org)/keys/\(k.key.id)", token: w.member.token, json: #"{"expires_at_ms":1000}"#)
            #expect(past.status == 409 && past.code == "conflict", "an expiry already past is refused by the clock, not the schema")
            try await h.store.updateKeyLimits(org: w.org, k.key.id, KeyLimits(expiresAtMs: now - 1))
            #expect(try await h.check(k.secret).reason == .keyExpired)
            let cleared = try await h.api.call(.patch, "/v1/orgs/\(w.org)/keys/\(k.key.id)", token: w.member.token, json: #"{"expires_at_ms":null}"#)
            #expect((try cleared.decode(KeyBody.self)).expiresAtMs == nil)
            #expect(try await h.check(k.secret).allowed)
        }
    }

    @Test("virtual models: an alias in a project's list admits its real models at CHECK, and keys may name the alias")
    func virtualModels() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            let o = "/v1/orgs/\(w.org)"
            #expect(try await h.api.call(.put, "\(o)/virtual-models/fast", token: w.owner.token, json: #"{"targets":["gpt-mini","haiku"]}"#).status == 200)
            #expect(try await h.api.call(.patch, "\(o)/projects/\(w.p)", token: w.owner.token, json: #"{"models":["fast","m"]}"#).status == 200)
            let k = try await memberKey(h, w, #"{"name":"mine","models":["fast"]}"#)
            #expect(try await h.check(k.secret, model: "haiku").allowed)
            #expect(try await h.check(k.secret, model: "fast").allowed)
            #expect(try await h.check(k.secret, model: "m").reason == .modelNotAllowed)
            // Remapping the alias reaches CHECK at once.
            #expect(try await h.api.call(.put, "\(o)/virtual-models/fast", token: w.owner.token, json: #"{"targets":["gpt-mini"]}"#).status == 200)
            #expect(try await h.check(k.secret, model: "haiku").reason == .modelNotAllowed)
            #expect(try await h.check(k.secret, model: "gpt-mini").allowed)
            // A real model outside the project's expansion is refused at creation, naming the cap.
            let bad = try await h.api.call(.post, "\(o)/projects/\(w.p)/keys", token: w.member.token, json: #"{"name":"x","models":["haiku"]}"#)
            #expect(bad.code == "exceeds_cap")
        }
    }

    @Test("deleting a project denies its keys project_inactive (SPEC §8); suspending the organization denies every key")
    func deleteAndSuspend() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            let k = try await memberKey(h, w)
            try await h.store.setOrganizationStatus(w.org, .suspended)
            #expect(try await h.check(k.secret).reason == .orgSuspended)
            try await h.store.setOrganizationStatus(w.org, .active)
            #expect(try await h.api.call(.delete, "/v1/orgs/\(w.org)/projects/\(w.p)", token: w.owner.token).status == 204)
            let r = try await h.check(k.secret)
            #expect(!r.allowed && r.reason == .projectInactive, "\(r.reason)")
            // Nobody revoked the key: its project is gone.
            #expect(try await h.store.key(org: w.org, k.key.id)?.status == .active)
        }
    }
}
