import BursarAPI
import BursarStore
import Foundation
import HTTPTypes
import Testing

/// Personal access tokens and the operator token have a lifecycle: shown (never the token),
/// rotated, revoked, expiring, revoked with their user's last membership; console sessions end
/// with the token they were signed in with.
@Suite("Admin API: token lifecycle")
struct TokenLifecycleTests {
    @Test("GET /v1/me/token shows when the token was made and last used; rotation replaces it at once (the old one 401), optionally expiring")
    func showAndRotate() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            let old = w.member.token
            let shown = try await h.api.get("/v1/me/token", old).decode(TokenInfoResponse.self)
            #expect(shown.kind == "user" && shown.createdMs != nil && shown.expiresMs == nil)
            // The call itself was a use (to the second).
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            #expect(try #require(shown.lastUsedMs) <= now && shown.lastUsedMs! > now - 60_000, "\(shown)")

            let rotated = try await h.api.call(.post, "/v1/me/token/rotate", token: old, json: "{}")
            #expect(rotated.status == 201, "\(rotated)")
            let new = try rotated.decode(RotatedTokenResponse.self)
            #expect(new.token.hasPrefix("pat-br-") && new.token != old && new.expiresMs == nil)
            #expect(try await h.api.get("/v1/me", old).status == 401)
            #expect(try await h.api.get("/v1/me", new.token).status == 200)
            let fresh = try await h.api.get("/v1/me/token", new.token).decode(TokenInfoResponse.self)
            #expect(fresh.createdMs! >= shown.createdMs! && fresh.expiresMs == nil)

            // With an expiry: reported, and bad values refused before anything changes.
            for bad in [#"{"expires_in_days":0}"#, #"{"expires_in_days":3651}"#, #"{"expires_in_days":null}"#, #"{"expires":1}"#] {
                let r = try await h.api.call(.post, "/v1/me/token/rotate", token: new.token, json: bad)
                #expect(r.status == 400 && r.code == "invalid", "\(bad): \(r)")
            }
            #expect(try await h.api.get("/v1/me", new.token).status == 200, "a refused rotation changes nothing")
            let expiring = try await h.api.call(.post, "/v1/me/token/rotate", token: new.token, json: #"{"expires_in_days":30}"#)
                .decode(RotatedTokenResponse.self)
            let in30 = Int64(Date().timeIntervalSince1970 * 1000) + 30 * 86_400_000
            #expect(abs(try #require(expiring.expiresMs) - in30) < 60_000)
            #expect(try await h.api.get("/v1/me/token", expiring.token).decode(TokenInfoResponse.self).expiresMs == expiring.expiresMs)
        }
    }

    @Test("an expired token is 401: the store's expiry is Redis's own")
    func expiry() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
            let soon = nowMs() + 3_000
            let (token, info) = try await h.store.rotateToken(user: w.member.id, expiresAtMs: soon)
            #expect(info.expiresAtMs == soon)
            let before = try await h.api.get("/v1/me", token).status
            // (A machine too busy to ask within the 3 s cannot tell; the answer must then be 401.)
            #expect(before == 200 || nowMs() >= soon, "\(before)")
            if nowMs() < soon { try await Task.sleep(for: .milliseconds(soon - nowMs() + 100)) }
            #expect(try await h.api.get("/v1/me", token).status == 401)
            await #expect(throws: StoreError.self) { _ = try await h.store.rotateToken(user: w.member.id, expiresAtMs: soon - 1_000) }
        }
    }

    @Test("DELETE /v1/me/token revokes it at once; the operator's token can be rotated, not revoked")
    func revoke() async throws {
        try await withAdmin { h in
            let op = try await h.store.bootstrap(org: "boot", ownerEmail: "boot@example.test", ownerName: nil).operatorToken
            let w = try await h.world()
            let r = try await h.api.call(.delete, "/v1/me/token", token: w.admin.token)
            #expect(r.status == 204, "\(r)")
            #expect(try await h.api.get("/v1/me", w.admin.token).status == 401)
            #expect(try await h.api.call(.delete, "/v1/me/token", token: w.admin.token).status == 401)
            #expect(try await h.store.tokenInfo(user: w.admin.id) == nil)

            #expect(try await h.api.get("/v1/me/token", op).decode(TokenInfoResponse.self) == TokenInfoResponse(kind: "operator"))
            let refused = try await h.api.call(.delete, "/v1/me/token", token: op)
            #expect(refused.status == 403 && refused.code == "forbidden", "\(refused)")
            #expect(try await h.api.call(.post, "/v1/me/token/rotate", token: op, json: #"{"expires_in_days":5}"#).status == 400)
            let rotated = try await h.api.call(.post, "/v1/me/token/rotate", token: op, json: "{}").decode(RotatedTokenResponse.self)
            #expect(rotated.token.hasPrefix("op-br-"))
            #expect(try await h.api.get("/v1/orgs", op).status == 401)
            #expect(try await h.api.get("/v1/orgs", rotated.token).status == 200)
        }
    }

    @Test("a user removed from their last organization is 401 at once; from one of two, their token still works; invited back, they get a new token")
    func removedFromLastOrganization() async throws {
        try await withAdmin { h in
            let a = try await h.world("a")
            let b = try await h.world("b")
            // Sam is a member of A; add them to B too.
            let sam = a.spare
            let samToken = try await h.store.rotateToken(user: sam).token
            let email = try #require(try await h.store.person(sam)).email
            _ = try await h.store.addMember(org: b.org, email: email, name: nil, role: .member)
            #expect(try await h.api.call(.delete, "/v1/orgs/\(a.org)/members/\(sam)", token: a.owner.token).status == 204)
            #expect(try await h.api.get("/v1/me", samToken).status == 200, "still a member of B")
            #expect(try await h.api.call(.delete, "/v1/orgs/\(b.org)/members/\(sam)", token: b.owner.token).status == 204)
            #expect(try await h.api.get("/v1/me", samToken).status == 401, "removed from the last organization")
            // Invited back: a new token (the old one stays dead).
            let back = try await h.api.call(.post, "/v1/orgs/\(a.org)/members", token: a.owner.token, json: #"{"email":"\#(email)"}"#)
            #expect(back.status == 201, "\(back)")
            #expect(try await h.api.get("/v1/me", samToken).status == 401, "not back until they accept")
            let accepted = try await h.api.call(
                .post, "/v1/invitations/accept", token: nil, body: AcceptInvitationRequest(token: try back.decode(InviteResponse.self).acceptToken))
            #expect(accepted.status == 201, "\(accepted)")
            let token = try #require(try accepted.decode(AcceptInvitationResponse.self).token)
            #expect(try await h.api.get("/v1/me", token).status == 200)
            #expect(try await h.api.get("/v1/me", samToken).status == 401)
        }
    }

    @Test("a console session ends when the token it was signed in with is rotated or revoked, or its user leaves their last organization")
    func consoleSessionsEnd() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            for end in ["rotate", "revoke", "remove"] {
                let user = end == "remove" ? w.outsider : w.member
                let token = try await h.store.rotateToken(user: user.id).token
                var b = Browser(client: h.api.client)
                #expect(try await b.signIn(token).status == 303)
                #expect(try await b.get("/console/o/\(w.org)").page == "overview", "\(end): signed in")
                switch end {
                case "rotate": #expect(try await h.api.call(.post, "/v1/me/token/rotate", token: token, json: "{}").status == 201)
                case "revoke": #expect(try await h.api.call(.delete, "/v1/me/token", token: token).status == 204)
                default: #expect(try await h.api.call(.delete, "/v1/orgs/\(w.org)/members/\(user.id)", token: w.owner.token).status == 204)
                }
                let after = try await b.get("/console/o/\(w.org)")
                #expect(after.status == 303 && after.location?.hasPrefix("/console/sign-in") == true, "\(end): \(after.status) \(after.location ?? "")")
            }
        }
    }
}
