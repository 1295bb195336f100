import BursarAPI
import BursarRedis
import BursarStore
import Foundation
import HTTPTypes
import Testing

/// Invitations that reveal nothing (issue 20): inviting an address answers the same whether or
/// not anyone has it, nobody joins until they accept, and an organization's names stay its own.
@Suite("Admin API: invitations")
struct InvitationTests {
    /// An answer or audit entry with what necessarily differs between two invitations (ids,
    /// times, tokens, the address itself) replaced by placeholders.
    func normalized(_ text: String, email: String) -> String {
        var t = text.replacingOccurrences(of: email, with: "<email>")
        for pattern in [#"inv-br-[A-Za-z0-9_-]+"#, #"\d{10,}"#, #""id":\d+"#] {
            t = t.replacingOccurrences(of: pattern, with: "<x>", options: .regularExpression)
        }
        return t
    }

    @Test("inviting B's user from A answers and audits exactly as inviting an unknown address; they join A only by accepting, signed in")
    func revealsNothing() async throws {
        try await withAdmin { h in
            let a = try await h.world("a")
            let b = try await h.world("b")
            // B's person, whom B invited as "Bee of B" (B's name for them, not theirs).
            let bee = "bee-\(b.org)@example.test"
            let toB = try await h.api.call(.post, "/v1/orgs/\(b.org)/members", token: b.owner.token, json: #"{"email":"\#(bee)","name":"Bee of B"}"#)
            let beeJoined = try await h.api.call(.post, "/v1/invitations/accept", token: nil, body: AcceptInvitationRequest(token: try toB.decode(InviteResponse.self).acceptToken))
            let beeToken = try #require(try beeJoined.decode(AcceptInvitationResponse.self).token)
            let nobody = "nobody-\(a.org)@example.test"
            let membersBefore = try await h.api.get("/v1/orgs/\(a.org)/members", a.owner.token).body

            let known = try await h.api.call(.post, "/v1/orgs/\(a.org)/members", token: a.owner.token, json: #"{"email":"\#(bee)","role":"member"}"#)
            let unknown = try await h.api.call(.post, "/v1/orgs/\(a.org)/members", token: a.owner.token, json: #"{"email":"\#(nobody)","role":"member"}"#)
            #expect(known.status == 201 && unknown.status == 201)
            let knownText = String(decoding: known.body, as: UTF8.self), unknownText = String(decoding: unknown.body, as: UTF8.self)
            #expect(normalized(knownText, email: bee) == normalized(unknownText, email: nobody), "\(knownText)\n\(unknownText)")
            #expect(!knownText.contains("Bee of B") && !knownText.contains("pat-br-"), "\(knownText)")
            // The audit records likewise.
            let log = try await h.api.get("/v1/orgs/\(a.org)/audit?action=member.invite", a.owner.token).decode(AuditResponse.self).entries
            #expect(log.count == 2)
            let entries = try log.map { String(decoding: try APIJSON.encoder().encode($0), as: UTF8.self) }
            let byEmail = Dictionary(uniqueKeysWithValues: zip([bee, nobody], entries.reversed()))
            #expect(normalized(byEmail[bee]!, email: bee) == normalized(byEmail[nobody]!, email: nobody), "\(entries)")
            // Nobody joined: A's members are as they were; Bee is in B only.
            #expect(try await h.api.get("/v1/orgs/\(a.org)/members", a.owner.token).body == membersBefore)
            let beeID = try #require(try await h.store.person(email: bee)).id
            #expect(try await h.store.orgRole(org: a.org, beeID) == nil)
            let pending = try await h.api.get("/v1/orgs/\(a.org)/invitations", a.owner.token).decode(InvitationListResponse.self).invitations
            #expect(Set(pending.map(\.email)) == [bee, nobody])

            // Bee's acceptance token without Bee's token: refused, nothing joins.
            let beeInvite = try known.decode(InviteResponse.self).acceptToken
            let anonymous = try await h.api.call(.post, "/v1/invitations/accept", token: nil, body: AcceptInvitationRequest(token: beeInvite))
            #expect(anonymous.status == 401 && anonymous.code == "unauthenticated", "\(anonymous)")
            // Someone else's token: as if there were no such invitation.
            let wrong = try await h.api.call(.post, "/v1/invitations/accept", token: a.member.token, body: AcceptInvitationRequest(token: beeInvite))
            #expect(wrong.status == 404 && wrong.code == "not_found", "\(wrong)")
            #expect(try await h.store.orgRole(org: a.org, beeID) == nil)
            // Bee, signed in: joins A, with the name A gave (none: Bee's own), never B's.
            let joined = try await h.api.call(.post, "/v1/invitations/accept", token: beeToken, body: AcceptInvitationRequest(token: beeInvite))
            #expect(joined.status == 201, "\(joined)")
            let answer = try joined.decode(AcceptInvitationResponse.self)
            #expect(answer.organization.id == a.org && answer.member.role == "member" && answer.token == nil)
            let inA = try await h.api.get("/v1/orgs/\(a.org)/members", a.owner.token).decode(MemberListResponse.self).members.first { $0.userId == beeID }
            #expect(inA?.name == bee, "A sees Bee's own name (the address), not B's: \(String(describing: inA))")
            let inB = try await h.api.get("/v1/orgs/\(b.org)/members", b.owner.token).decode(MemberListResponse.self).members.first { $0.userId == beeID }
            #expect(inB?.name == "Bee of B")
            // Used once.
            let again = try await h.api.call(.post, "/v1/invitations/accept", token: beeToken, body: AcceptInvitationRequest(token: beeInvite))
            #expect(again.status == 404, "\(again)")
            let accepted = try await h.api.get("/v1/orgs/\(a.org)/audit?action=invitation.accept", a.owner.token).decode(AuditResponse.self).entries
            #expect(accepted.map(\.actor) == ["user:\(beeID)"])
        }
    }

    @Test("someone new accepts with the token alone and gets their own token; A's name for them is A's; withdrawn and replaced invitations stop working")
    func newPerson() async throws {
        try await withAdmin { h in
            let a = try await h.world("a")
            let email = "newbie-\(a.org)@example.test"
            let first = try await h.api.call(.post, "/v1/orgs/\(a.org)/members", token: a.owner.token, json: #"{"email":"\#(email)","name":"Newbie","role":"owner"}"#)
                .decode(InviteResponse.self)
            #expect(first.invitation.name == "Newbie" && first.invitation.role == "owner" && first.acceptToken.hasPrefix("inv-br-"))
            // Invited again: the first token stops working.
            let second = try await h.api.call(.post, "/v1/orgs/\(a.org)/members", token: a.owner.token, json: #"{"email":"\#(email)","name":"Newbie","role":"owner"}"#)
                .decode(InviteResponse.self)
            let stale = try await h.api.call(.post, "/v1/invitations/accept", token: nil, body: AcceptInvitationRequest(token: first.acceptToken))
            #expect(stale.status == 404, "\(stale)")
            #expect(try await h.api.get("/v1/orgs/\(a.org)/invitations", a.owner.token).decode(InvitationListResponse.self).invitations.map(\.id) == [second.invitation.id])

            let joined = try await h.api.call(.post, "/v1/invitations/accept", token: nil, body: AcceptInvitationRequest(token: second.acceptToken))
            #expect(joined.status == 201, "\(joined)")
            let answer = try joined.decode(AcceptInvitationResponse.self)
            let token = try #require(answer.token)
            #expect(answer.member.name == "Newbie" && answer.member.role == "owner")
            #expect(try await h.api.get("/v1/me", token).decode(MeResponse.self).organizations.map(\.id) == [a.org])
            #expect(try await h.api.get("/v1/orgs/\(a.org)/invitations", a.owner.token).decode(InvitationListResponse.self).invitations.isEmpty)

            // Withdrawn: the token names nothing.
            let third = try await h.api.call(.post, "/v1/orgs/\(a.org)/members", token: a.owner.token, json: #"{"email":"later-\#(a.org)@example.test"}"#)
                .decode(InviteResponse.self)
            #expect(try await h.api.call(.delete, "/v1/orgs/\(a.org)/invitations/\(third.invitation.id)", token: a.owner.token).status == 204)
            let withdrawn = try await h.api.call(.post, "/v1/invitations/accept", token: nil, body: AcceptInvitationRequest(token: third.acceptToken))
            #expect(withdrawn.status == 404, "\(withdrawn)")
            // A member already: 409 (A can see its own members).
            let member = try await h.api.call(.post, "/v1/orgs/\(a.org)/members", token: a.owner.token, json: #"{"email":"\#(email)"}"#)
            #expect(member.status == 409 && member.code == "conflict", "\(member)")
            // Members cannot invite, list or withdraw.
            #expect(try await h.api.call(.post, "/v1/orgs/\(a.org)/members", token: a.member.token, json: #"{"email":"x-\#(a.org)@example.test"}"#).status == 403)
            #expect(try await h.api.get("/v1/orgs/\(a.org)/invitations", a.member.token).status == 403)
        }
    }
}
