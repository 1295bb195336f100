import BursarAPI
import BursarRBAC
import BursarStore
import Foundation
import Hummingbird
import Testing

@Suite("Role rules beyond single cells: own only, Owners admin everywhere, strangers see nothing, Owners never run out")
struct RoleRulesTests {
    @Test("'own only': members see only the projects they were added to, and Project Members only their own keys")
    func ownOnly() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            let o = "/v1/orgs/\(w.org)"
            for t in [w.admin.token, w.member.token] {
                let list = try await h.api.get("\(o)/projects", t).decode(ProjectListResponse.self)
                #expect(list.projects.map(\.id) == [w.p])
                #expect(try await h.api.get("\(o)/projects/\(w.q)", t).status == 404)
            }
            let memberKeys = try await h.api.get("\(o)/projects/\(w.p)/keys", w.member.token).decode(KeyListResponse.self)
            #expect(memberKeys.keys.map(\.id) == [w.memberKey])
            let adminKeys = try await h.api.get("\(o)/projects/\(w.p)/keys", w.admin.token).decode(KeyListResponse.self)
            #expect(Set(adminKeys.keys.map(\.id)) == [w.tessKey, w.memberKey])
            // A Project Member cannot read, change, revoke or rotate someone else's key...
            for (method, path) in [(HTTPRequest.Method.get, "\(o)/keys/\(w.tessKey)"), (.post, "\(o)/keys/\(w.tessKey)/revoke"), (.post, "\(o)/keys/\(w.tessKey)/rotate")] {
                let r = try await h.api.call(method, path, token: w.member.token)
                #expect(r.status == 403 && r.code == "forbidden", "\(method) \(path): \(r)")
            }
            #expect(try await h.api.call(.patch, "\(o)/keys/\(w.tessKey)", token: w.member.token, json: #"{"rpm":1}"#).status == 403)
            // ...nor create a key in someone else's name.
            let forOther = try await h.api.call(.post, "\(o)/projects/\(w.p)/keys", token: w.member.token, json: #"{"name":"x","user_id":\#(w.tess.id)}"#)
            #expect(forOther.status == 403 && forOther.code == "forbidden")
            // A Project Admin can create a key for a member of the project.
            let byAdmin = try await h.api.call(.post, "\(o)/projects/\(w.p)/keys", token: w.admin.token, json: #"{"name":"x","user_id":\#(w.tess.id)}"#)
            #expect(byAdmin.status == 201)
            let key = try byAdmin.decode(KeySecretResponse.self).key
            #expect(key.userId == w.tess.id && key.createdBy == w.admin.id)
            // Not for someone outside the project.
            let forStranger = try await h.api.call(.post, "\(o)/projects/\(w.p)/keys", token: w.admin.token, json: #"{"name":"x","user_id":\#(w.outsider.id)}"#)
            #expect(forStranger.status == 409 && forStranger.code == "conflict")
        }
    }

    @Test("Organization Owners are Project Admins of every project without being added")
    func ownersAreAdminsEverywhere() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            let o = "/v1/orgs/\(w.org)"
            let q = try await h.api.get("\(o)/projects/\(w.q)", w.owner.token).decode(ProjectBody.self)
            #expect(q.role == "admin")
            let members = try await h.api.get("\(o)/projects/\(w.q)/members", w.owner.token).decode(ProjectMemberListResponse.self)
            #expect(members.members.map(\.userId) == [w.owner.id])
            #expect(members.members.first?.role == "admin" && members.members.first?.orgOwner == true)
            // The Owner manages keys in a project they never joined, and adds members to it.
            #expect(try await h.api.call(.post, "\(o)/keys/\(w.tessKey)/revoke", token: w.owner.token).status == 200)
            #expect(try await h.api.call(.post, "\(o)/projects/\(w.q)/members", token: w.owner.token, json: #"{"user_id":\#(w.spare),"role":"admin"}"#).status == 201)
            let projects = try await h.api.get("\(o)/projects", w.owner.token).decode(ProjectListResponse.self)
            #expect(Set(projects.projects.map(\.id)) == [w.p, w.q])
        }
    }

    @Test("a Member with no role in a project sees no project, member or key of it, and cannot tell it from one that does not exist")
    func strangersSeeNothing() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            let o = "/v1/orgs/\(w.org)"
            let t = w.outsider.token
            #expect(try await h.api.get("\(o)/projects", t).decode(ProjectListResponse.self).projects.isEmpty)
            let missing: UInt64 = 9_999_999
            let pairs: [(String, String)] = [
                ("\(o)/projects/\(w.p)", "\(o)/projects/\(missing)"),
                ("\(o)/projects/\(w.p)/members", "\(o)/projects/\(missing)/members"),
                ("\(o)/projects/\(w.p)/keys", "\(o)/projects/\(missing)/keys"),
                ("\(o)/keys/\(w.tessKey)", "\(o)/keys/\(missing)"),
            ]
            for (real, absent) in pairs {
                let a = try await h.api.get(real, t)
                let b = try await h.api.get(absent, t)
                #expect(a.status == 404 && b.status == 404, "\(real): \(a)")
                // Same answer except for the id the caller sent.
                let aText = String(decoding: a.body, as: UTF8.self).replacingOccurrences(of: "\(w.p)", with: "ID").replacingOccurrences(of: "\(w.tessKey)", with: "ID")
                let bText = String(decoding: b.body, as: UTF8.self).replacingOccurrences(of: "\(missing)", with: "ID")
                #expect(aText == bText, "\(real) answers differently from a missing one")
            }
            // Nor do org-level lists leak P's keys or members to them.
            #expect(try await h.api.get("\(o)/keys", t).status == 403)
            #expect(try await h.api.get("\(o)/members", t).status == 403)
        }
    }

    @Test("a user the body names who is not in the organization is 409 conflict, never 404: the project posted to is there; one of another organization answers as one nobody has")
    func bodyNamesNoMember() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            let other = try await h.world()
            let o = "/v1/orgs/\(w.org)"
            // An id no user has, and a member of another organization: the same answer but for the id.
            let missing: UInt64 = 9_999_999
            for (path, body) in [
                ("\(o)/projects/\(w.q)/members", { (u: UInt64) in #"{"user_id":\#(u),"role":"member"}"# }),
                ("\(o)/projects/\(w.p)/keys", { (u: UInt64) in #"{"name":"k","user_id":\#(u)}"# }),
            ] {
                let before = try await IsolationTests.snapshot(h, org: w.org)
                let a = try await h.api.call(.post, path, token: w.owner.token, json: body(missing))
                let b = try await h.api.call(.post, path, token: w.owner.token, json: body(other.tess.id))
                #expect(a.status == 409 && a.code == "conflict" && b.status == 409 && b.code == "conflict", "\(path): \(a) \(b)")
                let aText = String(decoding: a.body, as: UTF8.self)
                #expect(aText.contains("user \(missing) is not a member of organization \(w.org)"), "\(aText)")
                let bText = String(decoding: b.body, as: UTF8.self).replacingOccurrences(of: "\(other.tess.id)", with: "\(missing)")
                #expect(aText == bText, "a member of another organization is told apart from nobody: \(aText) / \(bText)")
                #expect(try await IsolationTests.snapshot(h, org: w.org) == before, "\(path) changed something")
            }
            // By e-mail too, for a project member.
            let byEmail = try await h.api.call(.post, "\(o)/projects/\(w.q)/members", token: w.owner.token, json: #"{"email":"nobody-\#(w.org)@example.test"}"#)
            #expect(byEmail.status == 409 && byEmail.code == "conflict", "\(byEmail)")
            // The project was there all along: a member of the organization is added to it.
            #expect(try await h.api.call(.post, "\(o)/projects/\(w.q)/members", token: w.owner.token, json: #"{"user_id":\#(w.spare),"role":"member"}"#).status == 201)
        }
    }

    @Test("the last Owner can be neither removed nor demoted; a second Owner can be added, and then the first can step down")
    func lastOwner() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            let o = "/v1/orgs/\(w.org)"
            let demote = try await h.api.call(.patch, "\(o)/members/\(w.owner.id)", token: w.owner.token, json: #"{"role":"member"}"#)
            #expect(demote.status == 409 && demote.code == "last_owner", "\(demote)")
            let remove = try await h.api.call(.delete, "\(o)/members/\(w.owner.id)", token: w.owner.token)
            #expect(remove.status == 409 && remove.code == "last_owner", "\(remove)")
            #expect(try await h.store.orgRole(org: w.org, w.owner.id) == .owner)

            let promote = try await h.api.call(.patch, "\(o)/members/\(w.admin.id)", token: w.owner.token, json: #"{"role":"owner"}"#)
            #expect(promote.status == 200)
            #expect(try promote.decode(MemberBody.self).role == "owner")
            let invite = try await h.api.call(.post, "\(o)/members", token: w.owner.token, json: #"{"email":"third-\#(w.org)@example.test","role":"owner"}"#)
            #expect(invite.status == 201)
            let accept = try invite.decode(InviteResponse.self).acceptToken
            let joined = try await h.api.call(.post, "/v1/invitations/accept", token: nil, body: AcceptInvitationRequest(token: accept))
            #expect(joined.status == 201, "\(joined)")
            #expect(try joined.decode(AcceptInvitationResponse.self).token?.hasPrefix("pat-br-") == true)
            #expect(try await h.api.call(.patch, "\(o)/members/\(w.owner.id)", token: w.owner.token, json: #"{"role":"member"}"#).status == 200)
            // With two Owners left, one can be removed; the last cannot.
            let third = try #require(try await h.store.person(email: "third-\(w.org)@example.test")).id
            #expect(try await h.api.call(.delete, "\(o)/members/\(third)", token: w.admin.token).status == 204)
            let last = try await h.api.call(.delete, "\(o)/members/\(w.admin.id)", token: w.admin.token)
            #expect(last.status == 409 && last.code == "last_owner")
        }
    }

    @Test("concurrent demotions of the only two Owners leave exactly one Owner")
    func concurrentDemotions() async throws {
        try await withAdmin { h in
            for _ in 0..<10 {
                let w = try await h.world()
                try await h.store.setUserRole(org: w.org, w.admin.id, .owner)
                let o = "/v1/orgs/\(w.org)"
                async let a = h.api.call(.patch, "\(o)/members/\(w.owner.id)", token: w.owner.token, json: #"{"role":"member"}"#)
                async let b = h.api.call(.patch, "\(o)/members/\(w.admin.id)", token: w.admin.token, json: #"{"role":"member"}"#)
                let statuses = try await [a.status, b.status].sorted()
                let owners = try await h.store.users(org: w.org).filter { $0.role == .owner }
                #expect(owners.count == 1, "statuses \(statuses)")
                // The loser may be refused as last_owner (409) or, demoted already, as forbidden (403).
                #expect(statuses.first == 200 && statuses.last != 200)
            }
        }
    }

    @Test("bootstrap works once, on an empty store only, and its tokens work")
    func bootstrap() async throws {
        try await withAdmin { h in
            let r = try await h.api.call(.post, "/v1/bootstrap", token: nil, json: #"{"org":"FastRouter AI","owner_email":"Ada@FastRouter.ai"}"#)
            #expect(r.status == 201)
            let b = try r.decode(BootstrapResponse.self)
            #expect(b.operatorToken.hasPrefix("op-br-") && b.ownerToken.hasPrefix("pat-br-"))
            #expect(b.owner.email == "ada@fastrouter.ai" && b.owner.role == "owner")
            let again = try await h.api.call(.post, "/v1/bootstrap", token: nil, json: #"{"org":"Other","owner_email":"x@y.z"}"#)
            #expect(again.status == 409 && again.code == "conflict")
            // The operator creates organizations; a user cannot.
            let created = try await h.api.call(.post, "/v1/orgs", token: b.operatorToken, json: #"{"name":"Globex","owner_email":"hank@globex.test"}"#)
            #expect(created.status == 201)
            let globex = try created.decode(CreateOrgResponse.self)
            #expect(try await h.api.call(.post, "/v1/orgs", token: b.ownerToken, json: #"{"name":"Evil","owner_email":"e@e.e"}"#).status == 403)
            // A user may belong to several organizations: ada joins Globex with her one token.
            let hank = try #require(globex.ownerToken)
            let invited = try await h.api.call(.post, "/v1/orgs/\(globex.organization.id)/members", token: hank, json: #"{"email":"ada@fastrouter.ai","role":"member"}"#)
            #expect(invited.status == 201)
            let accepted = try await h.api.call(
                .post, "/v1/invitations/accept", token: b.ownerToken, body: AcceptInvitationRequest(token: try invited.decode(InviteResponse.self).acceptToken))
            #expect(accepted.status == 201, "\(accepted)")
            let me = try await h.api.get("/v1/me", b.ownerToken).decode(MeResponse.self)
            #expect(Set(me.organizations.map(\.id)) == [b.organization.id, globex.organization.id])
            #expect(Set(me.organizations.map { $0.role ?? "" }) == ["owner", "member"])
            // The operator suspends an organization but does not act inside it.
            #expect(try await h.api.call(.post, "/v1/orgs/\(globex.organization.id)/suspend", token: b.operatorToken).decode(OrgBody.self).status == "suspended")
            #expect(try await h.api.get("/v1/orgs/\(globex.organization.id)/projects", b.operatorToken).status == 403)
            #expect(try await h.api.call(.post, "/v1/orgs/\(globex.organization.id)/suspend", token: hank).status == 403)
            // Bad tokens.
            #expect(try await h.api.get("/v1/me", nil).code == "unauthenticated")
            #expect(try await h.api.get("/v1/me", "pat-br-nope").code == "unauthenticated")
        }
    }
}
