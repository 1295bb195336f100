import BursarAPI
@_spi(Testing) import BursarAdmin
import BursarRBAC
@_spi(Testing) import BursarStore
import BursarWire
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// A browser, as far as the console can tell: a cookie jar over the router test client.
struct Browser: Sendable {
    let client: any TestClientProtocol
    var cookies: [String: String] = [:]

    struct Page: Sendable {
        let status: Int
        let html: String
        let location: String?
        let setCookies: [String]
        let headers: HTTPFields

        /// `data-page` of the body.
        var page: String? { attribute("data-page") }
        /// `data-error` of the body.
        var error: String? { attribute("data-error") }
        func attribute(_ name: String) -> String? {
            guard let body = html.range(of: "<body ") else { return nil }
            let tag = html[body.upperBound...].prefix { $0 != ">" }
            guard let r = tag.range(of: "\(name)=\"") else { return nil }
            return String(tag[r.upperBound...].prefix { $0 != "\"" })
        }
        /// Whether an element with `data-action="<action>"` is on the page.
        func offers(_ action: String) -> Bool { html.contains("data-action=\"\(action)\"") }
        /// The value of the first hidden `_csrf` field.
        var csrf: String? {
            guard let r = html.range(of: "name=\"_csrf\" value=\"") else { return nil }
            return String(html[r.upperBound...].prefix { $0 != "\"" })
        }
    }

    mutating func request(_ method: HTTPRequest.Method, _ path: String, form: [(String, String)]? = nil) async throws -> Page {
        var headers: HTTPFields = [:]
        if !cookies.isEmpty { headers[.cookie] = cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; ") }
        var body: ByteBuffer?
        if let form {
            headers[.contentType] = "application/x-www-form-urlencoded"
            let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
            body = ByteBuffer(string: form.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed)!)" }.joined(separator: "&"))
        }
        let response = try await client.execute(uri: path, method: method, headers: headers, body: body)
        let setCookies = response.headers[values: .setCookie]
        for line in setCookies {
            let pair = line.split(separator: ";")[0].split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(pair[0]), value = pair.count > 1 ? String(pair[1]) : ""
            if value.isEmpty || line.contains("Max-Age=0") { cookies[name] = nil } else { cookies[name] = value }
        }
        return Page(
            status: Int(response.status.code), html: String(decoding: response.body.readableBytesView, as: UTF8.self),
            location: response.headers[.location], setCookies: setCookies, headers: response.headers)
    }

    mutating func get(_ path: String) async throws -> Page { try await request(.get, path) }

    /// Signs in with a token through the sign-in form; returns the answer to the form.
    mutating func signIn(_ token: String) async throws -> Page {
        let form = try await get("/console/sign-in")
        return try await request(.post, "/console/sign-in", form: [("_csrf", form.csrf ?? ""), ("token", token)])
    }
}

@Suite("Web console: sessions, anti-forgery, and the permission matrix on every page")
struct ConsoleTests {
    @Test("signing in turns a personal access token into an HttpOnly, SameSite=Strict session cookie; a bad token and the operator's get 401 and no session")
    func signIn() async throws {
        try await withAdmin(consoleSessionTTL: 1234) { h in
            let op = try await h.store.bootstrap(org: "boot", ownerEmail: "boot@example.test", ownerName: nil).operatorToken
            let w = try await h.world()
            var b = Browser(client: h.api.client)
            let ok = try await b.signIn(w.admin.token)
            #expect(ok.status == 303)
            let cookie = try #require(ok.setCookies.first { $0.hasPrefix("bursar_session=") })
            for flag in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=1234"] { #expect(cookie.contains(flag), "\(flag) in \(cookie)") }
            #expect(!cookie.contains("Secure"), "plain HTTP: not Secure")
            #expect(try await b.get("/console/o/\(w.org)").page == "overview")

            var bad = Browser(client: h.api.client)
            let refused = try await bad.signIn("pat-br-not-a-token")
            #expect(refused.status == 401)
            #expect(refused.html.contains("data-testid=\"form-error\""))
            #expect(bad.cookies["bursar_session"] == nil)

            var operatorBrowser = Browser(client: h.api.client)
            #expect(try await operatorBrowser.signIn(op).status == 401)
            #expect(operatorBrowser.cookies["bursar_session"] == nil)
        }
    }

    @Test("the sign-in form itself is refused without its anti-forgery cookie")
    func signInForgery() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            var b = Browser(client: h.api.client)
            let page = try await b.request(.post, "/console/sign-in", form: [("_csrf", "guess"), ("token", w.owner.token)])
            #expect(page.status == 403)
            #expect(page.error == "csrf")
            #expect(b.cookies["bursar_session"] == nil)
        }
    }

    @Test("a form post without the session's anti-forgery token, or with a wrong one, is refused 403 csrf and changes nothing")
    func csrf() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            var b = Browser(client: h.api.client)
            _ = try await b.signIn(w.owner.token)
            let revoke = "/console/o/\(w.org)/keys/\(w.memberKey)/revoke"
            for form in [[("back", "/console")], [("_csrf", "x"), ("back", "/console")]] {
                let page = try await b.request(.post, revoke, form: form)
                #expect(page.status == 403)
                #expect(page.error == "csrf")
            }
            #expect(try await h.store.key(org: w.org, w.memberKey)?.status == .active)
            // With the token it goes through: the refusal above was the token, not the request.
            let csrf = try #require(try await b.get("/console/o/\(w.org)/p/\(w.p)").csrf)
            let page = try await b.request(.post, revoke, form: [("_csrf", csrf), ("back", "/console/o/\(w.org)/p/\(w.p)")])
            #expect(page.status == 303)
            #expect(page.location == "/console/o/\(w.org)/p/\(w.p)")
            #expect(try await h.store.key(org: w.org, w.memberKey)?.status == .revoked)
        }
    }

    @Test("without a session, an expired one or after signing out, every page redirects to sign-in")
    func sessions() async throws {
        // A TTL long enough that a loaded machine still reaches the first page inside it.
        try await withAdmin(consoleSessionTTL: 4) { h in
            let w = try await h.world()
            var anonymous = Browser(client: h.api.client)
            let page = try await anonymous.get("/console/o/\(w.org)/p/\(w.p)")
            #expect(page.status == 303)
            #expect(page.location == "/console/sign-in?next=/console/o/\(w.org)/p/\(w.p)")

            // Signed in, the first page is served. A machine loaded enough to take longer than the
            // TTL between starting to sign in and that page's answer may have let the session
            // expire already, which proves nothing either way: then it signs in again.
            var b = Browser(client: h.api.client)
            var served = false
            for _ in 0..<5 where !served {
                b = Browser(client: h.api.client)
                let started = ContinuousClock.now
                _ = try await b.signIn(w.owner.token)
                let first = try await b.get("/console/o/\(w.org)")
                if ContinuousClock.now - started < .seconds(4) {
                    #expect(first.page == "overview")
                    served = true
                }
            }
            #expect(served, "no sign-in and first page inside the 4 s session TTL in five tries")
            try await Task.sleep(for: .milliseconds(4600))
            let expired = try await b.get("/console/o/\(w.org)")
            #expect(expired.status == 303)
            #expect(expired.location?.hasPrefix("/console/sign-in") == true)
        }
        try await withAdmin { h in
            let w = try await h.world()
            var b = Browser(client: h.api.client)
            _ = try await b.signIn(w.owner.token)
            let overview = try await b.get("/console/o/\(w.org)")
            let kept = b.cookies
            let out = try await b.request(.post, "/console/sign-out", form: [("_csrf", overview.csrf ?? "")])
            #expect(out.status == 303)
            #expect(b.cookies["bursar_session"] == nil)
            var replay = Browser(client: h.api.client, cookies: kept)
            #expect(try await replay.get("/console/o/\(w.org)").status == 303, "the old cookie no longer works")
        }
    }

    @Test("for each standing, each page offers exactly the actions permissions.tsv allows it, and refuses the pages it does not")
    func matrix() async throws {
        let rows = try MatrixRow.load()
        try await withAdmin { h in
            let w = try await h.world()
            for standing in Standing.allCases {
                var b = Browser(client: h.api.client)
                #expect(try await b.signIn(w.token(standing)).status == 303)
                let overview = try await b.get("/console/o/\(w.org)")
                let project = try await b.get("/console/o/\(w.org)/p/\(w.p)")
                let organization = try await b.get("/console/o/\(w.org)/organization")
                let audit = try await b.get("/console/o/\(w.org)/audit")
                let owner = standing == .orgOwner
                #expect(organization.status == (owner ? 200 : 403), "\(standing) organization page")
                #expect(audit.status == (owner ? 200 : 403), "\(standing) audit page")
                #expect(organization.error == (owner ? nil : "forbidden"))
                #expect(overview.html.contains("data-nav=\"organization\"") == owner)
                let seesP = rows.first { $0.action == "view_project" }!.cells[standing.rawValue] != "no"
                #expect(project.status == (seesP ? 200 : 404), "\(standing) project page")
                #expect(overview.html.contains("data-project-id=\"\(w.p)\"") == seesP, "\(standing) project card")
                for row in rows {
                    let allowed = row.cells[standing.rawValue] != "no"
                    let page = row.section == "organization" || row.action == "create_project" || row.action == "manage_keys_across_all_projects"
                        ? (owner ? organization : overview) : project
                    if row.action == "view_project" {
                        #expect((page.page == "project") == allowed, "\(standing) \(row.action)")
                    } else if row.action == "create_project" {
                        #expect(overview.offers(row.action) == allowed, "\(standing) \(row.action)")
                    } else {
                        #expect(page.offers(row.action) == allowed, "\(standing) \(row.action) on \(page.page ?? "?")")
                    }
                }
                // Key rows: admins and owners see every key of P; a member only their own.
                if seesP {
                    #expect(project.html.contains("data-key-id=\"\(w.tessKey)\"") == (standing != .projectMember), "\(standing) sees tess's key")
                    #expect(project.html.contains("data-key-id=\"\(w.memberKey)\""), "\(standing) sees the member's key")
                }
            }
        }
    }

    @Test("a Member cannot act as an admin by URL: settings, members and another project's page are refused and nothing changes")
    func memberByURL() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            var b = Browser(client: h.api.client)
            _ = try await b.signIn(w.member.token)
            let csrf = try #require(try await b.get("/console/o/\(w.org)/p/\(w.p)").csrf)
            let settings = try await b.request(.post, "/console/o/\(w.org)/p/\(w.p)/settings", form: [("_csrf", csrf), ("tpm", "1"), ("rpm", "1")])
            #expect(settings.status == 403)
            #expect(settings.error == "forbidden")
            #expect(try await h.store.project(org: w.org, w.p)?.tpm == 120_000)
            let add = try await b.request(.post, "/console/o/\(w.org)/p/\(w.p)/members", form: [("_csrf", csrf), ("email", "sam@x.test")])
            #expect(add.status == 403)
            let revoke = try await b.request(.post, "/console/o/\(w.org)/keys/\(w.tessKey)/revoke", form: [("_csrf", csrf)])
            #expect(revoke.status == 403, "another user's key is not a Project Member's to manage")
            #expect(try await h.store.key(org: w.org, w.tessKey)?.status == .active)
            #expect(try await b.get("/console/o/\(w.org)/p/\(w.q)").status == 404)
            #expect(try await b.get("/console/o/\(w.org)/organization").status == 403)
            let invite = try await b.request(.post, "/console/o/\(w.org)/organization/members", form: [("_csrf", csrf), ("email", "eve@x.test")])
            #expect(invite.status == 403)
            #expect(try await h.store.person(email: "eve@x.test") == nil)
        }
    }

    @Test("the new-key form names the cap a value exceeds, keeps what was typed, and a valid key's secret is shown once and works in a CHECK")
    func keyForm() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            var b = Browser(client: h.api.client)
            _ = try await b.signIn(w.member.token)
            let form = try await b.get("/console/o/\(w.org)/p/\(w.p)/keys/new")
            #expect(form.page == "key-new")
            #expect(form.html.contains("data-max=\"120000\" data-cap=\"project.tpm\""))
            let csrf = try #require(form.csrf)
            let url = "/console/o/\(w.org)/p/\(w.p)/keys"
            let tooMany = try await b.request(.post, url, form: [("_csrf", csrf), ("name", "big"), ("tpm", "200k"), ("period", "monthly")])
            #expect(tooMany.status == 422)
            #expect(tooMany.html.contains("data-cap=\"project.tpm\""))
            #expect(tooMany.html.contains("value=\"200k\""), "what was typed is kept")
            let badMoney = try await b.request(.post, url, form: [("_csrf", csrf), ("name", "x"), ("max_spend", "12.x")])
            #expect(badMoney.status == 400)
            #expect(badMoney.html.contains("data-field=\"max_spend\""))
            #expect(try await h.store.keys(org: w.org, project: w.p).count == 2, "nothing was created")

            let created = try await b.request(
                .post, url,
                form: [
                    ("_csrf", csrf), ("name", "console-key"), ("max_spend", "200"), ("period", "weekly"), ("tpm", "20k"), ("rpm", "60"),
                    ("models", "gpt-5.5"), ("models", "m"), ("expires_in_days", "30"), ("content_logging_disabled", "on"),
                ])
            #expect(created.status == 201)
            #expect(created.page == "key-created")
            let secret = try #require(created.html.range(of: "<code id=\"secret\">").map { String(created.html[$0.upperBound...].prefix { $0 != "<" }) })
            #expect(secret.hasPrefix("sk-br-"))
            let key = try #require(try await h.store.keys(org: w.org, project: w.p).first { $0.name == "console-key" })
            #expect(key.limits.budget == 200_000_000_000)
            #expect(key.limits.period == .weekly)
            #expect(key.limits.tpm == 20_000 && key.limits.rpm == 60)
            #expect(key.limits.models == ["gpt-5.5", "m"])
            #expect(key.limits.contentLoggingDisabled)
            #expect(key.userID == w.member.id)
            #expect(try await h.check(secret, model: "m").allowed)
            #expect(try await h.check(secret, model: "claude-opus-4.8").reason == .modelNotAllowed)
            // A Project Member cannot make a key for someone else; a Project Admin can, from the same form.
            let forTess = try await b.request(.post, url, form: [("_csrf", csrf), ("name", "for-tess"), ("user_id", String(w.tess.id))])
            #expect(forTess.status == 403)
            var admin = Browser(client: h.api.client)
            _ = try await admin.signIn(w.admin.token)
            let adminForm = try await admin.get("/console/o/\(w.org)/p/\(w.p)/keys/new?user=\(w.tess.id)")
            #expect(adminForm.offers("manage_all_keys_in_project"))
            #expect(adminForm.html.contains("name=\"user_id\" value=\"\(w.tess.id)\""))
            #expect(adminForm.html.contains("name=\"expires_in_days\" type=\"number\" min=\"1\" max=\"3650\" value=\"30\""), "the same defaults as one's own key")
            let made = try await admin.request(.post, url, form: [("_csrf", adminForm.csrf ?? ""), ("name", "for-tess"), ("user_id", String(w.tess.id))])
            #expect(made.status == 201)
            #expect(try await h.store.keys(org: w.org, project: w.p).first { $0.name == "for-tess" }?.userID == w.tess.id)
            #expect(!form.offers("manage_all_keys_in_project"), "a Project Member's form offers no other key user")

            // Never shown again: not on the project page, the overview, or anywhere the user goes next.
            for path in ["/console/o/\(w.org)/p/\(w.p)", "/console/o/\(w.org)"] {
                #expect(!(try await b.get(path).html.contains(secret)))
            }
        }
    }

    @Test("an Owner's invite shows the acceptance token once and lists the invitation; the new person accepts it in the console and gets their own token")
    func invite() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            var b = Browser(client: h.api.client)
            _ = try await b.signIn(w.owner.token)
            let csrf = try #require(try await b.get("/console/o/\(w.org)/organization").csrf)
            let page = try await b.request(
                .post, "/console/o/\(w.org)/organization/members", form: [("_csrf", csrf), ("email", "eve@example.test"), ("role", "member")])
            #expect(page.status == 201)
            #expect(page.page == "invited")
            let invitation = try #require(page.html.range(of: "<code id=\"secret\">").map { String(page.html[$0.upperBound...].prefix { $0 != "<" }) })
            #expect(invitation.hasPrefix("inv-br-"))
            #expect(page.html.contains("id=\"copy-secret\""))
            let organization = try await b.get("/console/o/\(w.org)/organization").html
            #expect(!organization.contains(invitation))
            #expect(organization.contains("id=\"org-invitations\"") && organization.contains("eve@example.test"), "the invitation is listed")
            #expect(try await h.store.person(email: "eve@example.test") == nil, "nobody is made until they accept")
            // Eve accepts in the console: her own token, shown once, and a session.
            var eve = Browser(client: h.api.client)
            let form = try await eve.get("/console/invitation")
            #expect(form.page == "accept")
            let accepted = try await eve.request(.post, "/console/invitation", form: [("_csrf", form.csrf ?? ""), ("invitation", invitation), ("token", "")])
            #expect(accepted.status == 201 && accepted.page == "accepted", "\(accepted.status)")
            let token = try #require(accepted.html.range(of: "<code id=\"secret\">").map { String(accepted.html[$0.upperBound...].prefix { $0 != "<" }) })
            #expect(token.hasPrefix("pat-br-"))
            #expect(try await eve.get("/console/o/\(w.org)").page == "overview")
            var again = Browser(client: h.api.client)
            #expect(try await again.signIn(token).status == 303)
            // Used: a second acceptance is refused on the page.
            let reused = try await again.get("/console/invitation")
            let refused = try await again.request(.post, "/console/invitation", form: [("_csrf", reused.csrf ?? ""), ("invitation", invitation), ("token", "")])
            #expect(refused.status == 404 && refused.html.contains("already used"), "\(refused.status)")
        }
    }

    @Test("a one-time link signs in once; the second use is 410 link_invalid")
    func link() async throws {
        try await withAdmin { h in
            let op = try await h.store.bootstrap(org: "boot", ownerEmail: "boot@example.test", ownerName: nil).operatorToken
            let w = try await h.world()
            let reply = try await h.api.call(.post, "/v1/console-links", token: w.admin.token)
            #expect(reply.status == 201)
            let path = try reply.decode(ConsoleLinkResponse.self).path
            var b = Browser(client: h.api.client)
            let page = try await b.get(path)
            #expect(page.page == "link")
            let used = try await b.request(.post, path, form: [("_csrf", page.csrf ?? "")])
            #expect(used.status == 303)
            #expect(try await b.get("/console/o/\(w.org)").page == "overview")
            let log = try await h.service.audit.read(org: w.org, limit: 10)
            #expect(log.contains { $0.action == "console.sign_in" && $0.actor == "user:\(w.admin.id)" && $0.target.hasSuffix("(link)") })
            var again = Browser(client: h.api.client)
            let gone = try await again.get(path)
            #expect(gone.status == 410)
            #expect(gone.error == "link_invalid")
            let operatorLink = try await h.api.call(.post, "/v1/console-links", token: op)
            #expect(operatorLink.status == 403)
        }
    }
}
