public import BursarAdmin
import BursarAPI
import BursarRBAC
import BursarStore
import Foundation
public import Hummingbird
public import Logging
import Mustache

/// How the web console behaves.
public struct ConsoleConfiguration: Sendable {
    /// How long a sign-in lasts, seconds (`--console-session-ttl`).
    public var sessionTTLSeconds: Int
    /// Mark cookies `Secure`: the ops port is served over TLS, or behind a TLS-terminating proxy.
    public var secureCookies: Bool

    /// A configuration; eight-hour sessions, cookies not marked Secure.
    public init(sessionTTLSeconds: Int = 28_800, secureCookies: Bool = false) {
        self.sessionTTLSeconds = sessionTTLSeconds
        self.secureCookies = secureCookies
    }
}

/// The web console: server-rendered pages under `/console` on the ops port.
///
/// Every page and every form goes through `AdminService`, the code the admin API runs, so each
/// permission check is the same code for both; the console only decides what to show (an action
/// the caller may not take is not offered) and the service refuses it anyway if asked.
///
/// Sessions live in Redis (`MetadataStore.createConsoleSession`): a random cookie
/// (`bursar_session`: HttpOnly, SameSite=Strict, Secure over TLS, Path=/console) names a session
/// that holds the user and the anti-forgery token every form carries (`_csrf`).
public struct Console: Sendable {
    let service: AdminService
    let configuration: ConsoleConfiguration
    let logger: Logger
    let views: Views

    /// The session cookie.
    static let sessionCookie = "bursar_session"
    /// The anti-forgery cookie of the sign-in form (before there is a session).
    static let signInCookie = "bursar_signin"

    /// A console over `service`.
    public init(service: AdminService, configuration: ConsoleConfiguration, logger: Logger) {
        self.service = service
        self.configuration = configuration
        self.logger = logger
        self.views = Views()
    }

    /// Adds the console's routes to `router`.
    public func add<Context: RequestContext>(to router: Router<Context>) {
        let c = router.group("console")
        c.get("") { req, _ in await self.run(req) { try await self.home($0) } }
        c.get("assets/console.css") { _, _ in Self.asset(Assets.css, type: "text/css; charset=utf-8") }
        c.get("assets/console.js") { _, _ in Self.asset(Assets.js, type: "text/javascript; charset=utf-8") }
        c.get("sign-in") { req, _ in await self.signInPage(req) }
        c.post("sign-in") { req, _ in await self.signIn(req) }
        c.post("sign-out") { req, _ in await self.signOut(req) }
        c.get("link/:code") { _, ctx in await self.linkPage(ctx.parameters.get("code") ?? "") }
        c.get("invitation") { req, _ in await self.acceptPage(req) }
        c.post("invitation") { req, _ in await self.accept(req) }
        c.post("link/:code") { req, ctx in await self.useLink(req, ctx.parameters.get("code") ?? "") }

        let o = c.group("o/:org")
        o.get("") { req, ctx in await self.run(req) { try await self.overview($0, req, Self.id(ctx, "org")) } }
        o.post("projects") { req, ctx in await self.post(req) { try await self.createProject($0, $1, Self.id(ctx, "org")) } }
        o.get("p/:project") { req, ctx in await self.run(req) { try await self.project($0, req, Self.id(ctx, "org"), Self.id(ctx, "project")) } }
        o.post("p/:project/settings") { req, ctx in
            await self.post(req) { try await self.updateProject($0, $1, Self.id(ctx, "org"), Self.id(ctx, "project")) }
        }
        o.post("p/:project/delete") { req, ctx in
            await self.post(req) { s, _ in try await self.deleteProject(s, Self.id(ctx, "org"), Self.id(ctx, "project")) }
        }
        o.post("p/:project/members") { req, ctx in
            await self.post(req) { try await self.addProjectMember($0, $1, Self.id(ctx, "org"), Self.id(ctx, "project")) }
        }
        o.post("p/:project/members/:user/role") { req, ctx in
            await self.post(req) {
                try await self.setProjectRole($0, $1, Self.id(ctx, "org"), Self.id(ctx, "project"), Self.id(ctx, "user"))
            }
        }
        o.post("p/:project/members/:user/remove") { req, ctx in
            await self.post(req) { s, _ in try await self.removeProjectMember(s, Self.id(ctx, "org"), Self.id(ctx, "project"), Self.id(ctx, "user")) }
        }
        o.get("p/:project/keys/new") { req, ctx in
            await self.run(req) {
                try await self.newKeyForm($0, Self.id(ctx, "org"), Self.id(ctx, "project"), user: req.uri.queryParameters.get("user").flatMap { UInt64($0) })
            }
        }
        o.post("p/:project/keys") { req, ctx in
            await self.post(req) { try await self.createKey($0, $1, Self.id(ctx, "org"), Self.id(ctx, "project")) }
        }
        o.get("keys/:key") { req, ctx in await self.run(req) { try await self.keyPage($0, req, Self.id(ctx, "org"), Self.id(ctx, "key")) } }
        o.post("keys/:key/revoke") { req, ctx in
            await self.post(req) { try await self.revokeKey($0, $1, Self.id(ctx, "org"), Self.id(ctx, "key")) }
        }

        o.get("organization") { req, ctx in await self.run(req) { try await self.organization($0, Self.id(ctx, "org")) } }
        o.post("organization/:section") { req, ctx in
            await self.post(req) { try await self.organizationAction($0, $1, Self.id(ctx, "org"), ctx.parameters.get("section") ?? "", nil) }
        }
        o.post("organization/:section/:item/:verb") { req, ctx in
            await self.post(req) {
                let item = ctx.parameters.get("item")?.removingPercentEncoding ?? ""
                let verb = ctx.parameters.get("verb") ?? ""
                return try await self.organizationAction($0, $1, Self.id(ctx, "org"), ctx.parameters.get("section") ?? "", (item, verb))
            }
        }
        o.get("audit") { req, ctx in await self.run(req) { try await self.auditPage($0, req, Self.id(ctx, "org")) } }
        o.get("usage/history.csv") { req, ctx in await self.run(req) { try await self.historyCSV($0, req, Self.id(ctx, "org")) } }

        // Anything else under /console: an HTML "not found", not the admin API's JSON.
        c.get("**") { _, _ in self.views.errorPage(status: .notFound, code: "not_found", message: "There is no such page.", chrome: nil) }
    }

    // MARK: Requests

    /// A signed-in visitor.
    struct Signed {
        let actor: Actor
        let session: ConsoleSession
        let me: MeResponse

        var userID: UInt64 { actor.userID! }

        /// The caller's organization role, or nil when they are not in `org`.
        func orgRole(_ org: UInt64) -> OrgRole? {
            me.organizations.first { $0.id == org }?.role.flatMap(OrgRole.init(rawValue:))
        }
    }

    /// The signed-in visitor, or nil (no cookie; an unknown, expired or ended session; a user
    /// who no longer exists).
    func signedIn(_ req: Request) async throws -> Signed? {
        guard let cookie = req.cookies[Self.sessionCookie]?.value,
              let session = try await service.store.consoleSession(cookie: cookie) else { return nil }
        let actor = Actor(.user(session.user))
        do {
            return Signed(actor: actor, session: session, me: try await service.me(actor))
        } catch let e as APIError where e.code == .unauthenticated {
            return nil
        }
    }

    /// Runs a page for a signed-in visitor; anyone else goes to the sign-in page.
    func run(_ req: Request, _ body: (Signed) async throws -> Response) async -> Response {
        do {
            guard let signed = try await signedIn(req) else { return Self.toSignIn(req) }
            do {
                return try await body(signed)
            } catch {
                return failure(error, chrome: Chrome(signed, org: Self.org(of: req)))
            }
        } catch {
            return failure(error, chrome: nil)
        }
    }

    /// Runs a form post: signed in, and carrying the session's anti-forgery token; otherwise
    /// nothing is done.
    func post(_ req: Request, _ body: (Signed, Form) async throws -> Response) async -> Response {
        do {
            guard let signed = try await signedIn(req) else { return Self.toSignIn(req) }
            let form = try await Form.read(req)
            guard Self.sameToken(form["_csrf"], signed.session.csrf) else { return csrfRefusal(chrome: Chrome(signed, org: Self.org(of: req))) }
            do {
                return try await body(signed, form)
            } catch {
                return failure(error, chrome: Chrome(signed, org: Self.org(of: req)))
            }
        } catch {
            return failure(error, chrome: nil)
        }
    }

    func csrfRefusal(chrome: Chrome?) -> Response {
        views.errorPage(
            status: .forbidden, code: "csrf",
            message: "This form was not sent by a page of this console (its anti-forgery token is missing or wrong). Nothing was changed; reload the page and try again.",
            chrome: chrome)
    }

    /// An error as a page: the admin API's code and message, with its status.
    func failure(_ error: any Error, chrome: Chrome?) -> Response {
        if let e = error as? FormError {
            return views.errorPage(status: .badRequest, code: "invalid", message: e.message, chrome: chrome)
        }
        let e = APIError.from(error)
        if e.code == .internal { logger.error("console error", metadata: ["error": "\(error)"]) }
        return views.errorPage(status: e.status, code: e.code.rawValue, message: Self.sentence(e.message), chrome: chrome)
    }

    static func sentence(_ message: String) -> String {
        guard let first = message.first else { return message }
        return first.uppercased() + message.dropFirst() + (message.hasSuffix(".") ? "" : ".")
    }

    /// The organization a console path is in (`/console/o/<org>/…`), for the header of an error
    /// page (shown only when the visitor belongs to it).
    static func org(of req: Request) -> UInt64? {
        let parts = req.uri.path.split(separator: "/")
        guard parts.count >= 3, parts[0] == "console", parts[1] == "o" else { return nil }
        return UInt64(parts[2])
    }

    /// A path id (decimal digits of a UInt64), else not found.
    static func id(_ ctx: some RequestContext, _ name: String) throws -> UInt64 {
        guard let raw = ctx.parameters.get(name), let v = UInt64(raw) else { throw APIError(.notFound, "there is no such page") }
        return v
    }

    /// Constant-time comparison of a submitted token with the expected one.
    static func sameToken(_ given: String?, _ expected: String) -> Bool {
        guard let given, !expected.isEmpty else { return false }
        let a = Array(given.utf8), b = Array(expected.utf8)
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<a.count { diff |= a[i] ^ b[i] }
        return diff == 0
    }

    /// 303 to the sign-in page, remembering where the visitor was going (GETs only).
    static func toSignIn(_ req: Request) -> Response {
        var target = "/console/sign-in"
        if req.method == .get, let path = safeLocal(req.uri.path), path != "/console/sign-in", path != "/console" {
            target += "?next=" + (path.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "/-_"))) ?? "")
        }
        return redirect(target)
    }

    /// `path` when it is a path of this console (not another site, not a scheme): the only
    /// places the console redirects to after a form.
    static func safeLocal(_ path: String?) -> String? {
        guard let path, path.hasPrefix("/console"), !path.contains("//"), !path.contains("\\"),
              path.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }) else { return nil }
        return path
    }

    static func redirect(_ location: String) -> Response {
        var headers = Views.securityHeaders
        headers[.location] = location
        return Response(status: .seeOther, headers: headers)
    }

    static func asset(_ bytes: [UInt8], type: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.cacheControl] = "max-age=300"
        headers[.xContentTypeOptions] = "nosniff"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    func cookie(_ name: String, _ value: String, maxAge: Int) -> Cookie {
        Cookie(name: name, value: value, maxAge: maxAge, path: "/console", secure: configuration.secureCookies, httpOnly: true, sameSite: .strict)
    }

    // MARK: Sign-in, sign-out, one-time links

    func home(_ signed: Signed) async throws -> Response {
        guard let org = signed.me.organizations.first else {
            return views.errorPage(
                status: .forbidden, code: "no_organization", message: "Your account belongs to no organization yet. Ask an Owner to invite you.",
                chrome: Chrome(signed, org: nil))
        }
        return Self.redirect("/console/o/\(org.id)")
    }

    func signInPage(_ req: Request, status: HTTPResponse.Status = .ok, error: String? = nil) async -> Response {
        if status == .ok, (try? await signedIn(req)) != nil {
            return Self.redirect(Self.safeLocal(req.uri.queryParameters.get("next")) ?? "/console")
        }
        return signedOutForm("sign-in", title: "Sign in", ["next": Self.safeLocal(req.uri.queryParameters.get("next")) ?? ""], status: status, error: error)
    }

    /// A page with a form for someone not signed in (sign-in, accepting an invitation): its
    /// anti-forgery token goes in a cookie of its own, checked when the form comes back.
    func signedOutForm(_ name: String, title: String, _ extra: [String: Any], status: HTTPResponse.Status, error: String?) -> Response {
        let csrf = MetadataStore.newSecret(prefix: "")
        var ctx = extra
        ctx["csrf"] = csrf
        if let error { ctx["error"] = error }
        var response = views.page(name, title: title, ctx, chrome: nil, status: status)
        response.setCookie(cookie(Self.signInCookie, csrf, maxAge: 3600))
        return response
    }

    func signIn(_ req: Request) async -> Response {
        do {
            let form = try await Form.read(req)
            guard let expected = req.cookies[Self.signInCookie]?.value, Self.sameToken(form["_csrf"], expected) else {
                return csrfRefusal(chrome: nil)
            }
            let token = (form["token"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            let actor: Actor
            do {
                actor = try await service.authenticate(bearer: token)
            } catch let e as APIError where e.code == .unauthenticated {
                return await signInPage(req, status: .unauthorized, error: "That token is not valid. Use the personal access token bursarctl printed when you were invited.")
            }
            guard let user = actor.userID else {
                return await signInPage(req, status: .unauthorized, error: "The operator token has no console. Sign in with a user's token.")
            }
            await service.recordConsoleSignIn(actor, via: "token")
            return try await startSession(user: user, next: Self.safeLocal(form["next"]))
        } catch {
            return failure(error, chrome: nil)
        }
    }

    /// Starts a session and sends the browser to `next`, else to the user's first organization.
    func startSession(user: UInt64, next: String?) async throws -> Response {
        let (value, _) = try await service.store.createConsoleSession(user: user, ttlSeconds: configuration.sessionTTLSeconds)
        let first = try await service.store.memberships(of: user).first.map { "/console/o/\($0.0.id)" }
        var response = Self.redirect(next ?? first ?? "/console")
        response.setCookie(cookie(Self.sessionCookie, value, maxAge: configuration.sessionTTLSeconds))
        response.setCookie(cookie(Self.signInCookie, "", maxAge: 0))
        return response
    }

    func signOut(_ req: Request) async -> Response {
        await post(req) { _, _ in
            if let value = req.cookies[Self.sessionCookie]?.value { try await self.service.store.deleteConsoleSession(cookie: value) }
            var response = Self.redirect("/console/sign-in")
            response.setCookie(self.cookie(Self.sessionCookie, "", maxAge: 0))
            return response
        }
    }

    func linkPage(_ code: String) async -> Response {
        do {
            guard let user = try await service.store.consoleLinkUser(code: code), let person = try await service.store.person(user) else {
                return linkGone()
            }
            let csrf = MetadataStore.newSecret(prefix: "")
            var response = views.page("link", title: "Sign in", ["csrf": csrf, "email": person.email, "code": code], chrome: nil)
            response.setCookie(cookie(Self.signInCookie, csrf, maxAge: 600))
            return response
        } catch {
            return failure(error, chrome: nil)
        }
    }

    func useLink(_ req: Request, _ code: String) async -> Response {
        do {
            let form = try await Form.read(req)
            guard let expected = req.cookies[Self.signInCookie]?.value, Self.sameToken(form["_csrf"], expected) else {
                return csrfRefusal(chrome: nil)
            }
            guard let user = try await service.store.consumeConsoleLink(code: code) else { return linkGone() }
            await service.recordConsoleSignIn(Actor(.user(user)), via: "link")
            return try await startSession(user: user, next: nil)
        } catch {
            return failure(error, chrome: nil)
        }
    }

    // MARK: Accepting an invitation

    func acceptPage(_ req: Request, status: HTTPResponse.Status = .ok, error: String? = nil) async -> Response {
        signedOutForm("accept", title: "Accept an invitation", [:], status: status, error: error)
    }

    /// Accepts with the acceptance token: as the person whose personal access token comes with
    /// it, else as someone new (whose token is shown once). Either way a session starts.
    func accept(_ req: Request) async -> Response {
        do {
            let form = try await Form.read(req)
            guard let expected = req.cookies[Self.signInCookie]?.value, Self.sameToken(form["_csrf"], expected) else {
                return csrfRefusal(chrome: nil)
            }
            let invitation = (form["invitation"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            let token = (form["token"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            var actor: Actor?
            if !token.isEmpty {
                do {
                    actor = try await service.authenticate(bearer: token)
                } catch let e as APIError where e.code == .unauthenticated {
                    return await acceptPage(req, status: .unauthorized, error: "That personal access token is not valid.")
                }
            }
            let accepted: AcceptInvitationResponse
            do {
                accepted = try await service.acceptInvitation(actor, AcceptInvitationRequest(token: invitation))
            } catch let e as APIError where e.code == .unauthenticated || e.code == .notFound || e.code == .forbidden || e.code == .conflict {
                let message = switch e.code {
                case .unauthenticated: "This invitation is for someone who already uses bursar: add your personal access token."
                case .conflict: "You are already a member of that organization."
                default: "This invitation was already used, withdrawn or has expired, or it is for someone else."
                }
                return await acceptPage(req, status: .init(code: e.code.status), error: message)
            }
            let user = accepted.member.userId
            guard let secret = accepted.token else {
                return try await startSession(user: user, next: "/console/o/\(accepted.organization.id)")
            }
            let (value, _) = try await service.store.createConsoleSession(user: user, ttlSeconds: configuration.sessionTTLSeconds)
            var response = views.page(
                "accepted", title: "Welcome",
                ["orgId": String(accepted.organization.id), "orgName": accepted.organization.name, "email": accepted.member.email, "secret": secret],
                chrome: nil, status: .created)
            response.setCookie(cookie(Self.sessionCookie, value, maxAge: configuration.sessionTTLSeconds))
            response.setCookie(cookie(Self.signInCookie, "", maxAge: 0))
            return response
        } catch {
            return failure(error, chrome: nil)
        }
    }

    func linkGone() -> Response {
        views.errorPage(
            status: .gone, code: "link_invalid",
            message: "This sign-in link was already used, has expired, or never existed. Run bursarctl console-link for a new one.", chrome: nil)
    }
}
