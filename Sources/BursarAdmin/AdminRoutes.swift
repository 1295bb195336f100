import BursarAPI
import BursarStore
import Foundation
public import Hummingbird
import NIOCore
import Synchronization

/// The admin API's HTTP surface (proto/openapi.json): decoding, routing, encoding. Everything
/// else is `AdminService`.
public enum AdminRoutes {
    /// The largest request body the admin API reads.
    public static let maxBody = 1 << 20

    /// Adds every admin route and the JSON error middleware to `router`.
    public static func add<Context: RequestContext>(to router: Router<Context>, service s: AdminService) {
        let methods = RouteMethods()
        router.add(middleware: JSONErrorMiddleware<Context>(methods: methods))
        defer { methods.load(router.routes.map { ($0.method, $0.path.description) }) }
        let v1 = router.group("v1")

        v1.post("bootstrap") { req, ctx in try await created(s.bootstrap(decode(req, ctx))) }
        v1.get("me") { req, _ in try await ok(s.me(actor(req, s))) }
        v1.get("me/token") { req, _ in try await ok(s.tokenInfo(actor(req, s))) }
        v1.post("me/token/rotate") { req, ctx in
            let caller = try await actor(req, s)
            return try await created(s.rotateToken(caller, presented: bearer(req) ?? "", decode(req, ctx)))
        }
        v1.delete("me/token") { req, _ in try await noContent(s.revokeToken(actor(req, s))) }
        // Accepting an invitation: signed in as the invited person, or with no token as someone new.
        v1.post("invitations/accept") { req, ctx in
            let caller: Actor? = req.headers[.authorization] == nil ? nil : try await actor(req, s)
            return try await created(s.acceptInvitation(caller, decode(req, ctx)))
        }
        v1.post("console-links") { req, _ in try await created(s.consoleLink(actor(req, s), ttlSeconds: AdminService.consoleLinkTTLSeconds)) }

        // Gateway credentials (operator)
        v1.get("gateway-credentials") { req, _ in try await ok(s.listGatewayCredentials(actor(req, s))) }
        v1.post("gateway-credentials") { req, ctx in
            // The operator's business: anyone else is refused before their body is read.
            let caller = try await actor(req, s)
            guard caller.principal == .operator else { throw APIError(.forbidden, "only the platform operator issues gateway credentials") }
            return try await created(s.createGatewayCredential(caller, decode(req, ctx)))
        }
        v1.delete("gateway-credentials/:credential") { req, ctx in
            let raw = ctx.parameters.get("credential")?.removingPercentEncoding ?? ""
            return try await noContent(s.revokeGatewayCredential(actor(req, s), raw))
        }

        // Organizations (operator)
        v1.get("orgs") { req, _ in try await ok(s.listOrgs(actor(req, s))) }
        v1.post("orgs") { req, ctx in try await created(s.createOrg(actor(req, s), decode(req, ctx))) }
        let org = v1.group("orgs/:org")
        org.get("") { req, ctx in try await ok(s.getOrg(actor(req, s), id(ctx, "org"))) }
        org.post("suspend") { req, ctx in try await ok(s.setOrgStatus(actor(req, s), id(ctx, "org"), .suspended)) }
        org.post("activate") { req, ctx in try await ok(s.setOrgStatus(actor(req, s), id(ctx, "org"), .active)) }

        // Organization members
        org.get("members") { req, ctx in try await ok(s.listMembers(actor(req, s), id(ctx, "org"))) }
        org.post("members") { req, ctx in try await created(s.invite(actor(req, s), id(ctx, "org"), decode(req, ctx))) }
        org.get("invitations") { req, ctx in try await ok(s.listInvitations(actor(req, s), id(ctx, "org"))) }
        org.delete("invitations/:id") { req, ctx in try await noContent(s.revokeInvitation(actor(req, s), id(ctx, "org"), id(ctx, "id"))) }
        org.patch("members/:user") { req, ctx in try await ok(s.setMemberRole(actor(req, s), id(ctx, "org"), id(ctx, "user"), decode(req, ctx))) }
        org.delete("members/:user") { req, ctx in try await noContent(s.removeMember(actor(req, s), id(ctx, "org"), id(ctx, "user"))) }

        // Projects
        org.get("projects") { req, ctx in try await ok(s.listProjects(actor(req, s), id(ctx, "org"))) }
        org.post("projects") { req, ctx in try await created(s.createProject(actor(req, s), id(ctx, "org"), decode(req, ctx))) }
        org.get("projects/:project") { req, ctx in try await ok(s.getProject(actor(req, s), id(ctx, "org"), id(ctx, "project"))) }
        org.patch("projects/:project") { req, ctx in try await ok(s.updateProject(actor(req, s), id(ctx, "org"), id(ctx, "project"), decode(req, ctx))) }
        org.delete("projects/:project") { req, ctx in try await noContent(s.deleteProject(actor(req, s), id(ctx, "org"), id(ctx, "project"))) }

        // Project members
        org.get("projects/:project/members") { req, ctx in try await ok(s.listProjectMembers(actor(req, s), id(ctx, "org"), id(ctx, "project"))) }
        org.post("projects/:project/members") { req, ctx in
            try await created(s.addProjectMember(actor(req, s), id(ctx, "org"), id(ctx, "project"), decode(req, ctx)))
        }
        org.patch("projects/:project/members/:user") { req, ctx in
            try await ok(s.updateProjectMember(actor(req, s), id(ctx, "org"), id(ctx, "project"), id(ctx, "user"), decode(req, ctx)))
        }
        org.delete("projects/:project/members/:user") { req, ctx in
            try await noContent(s.removeProjectMember(actor(req, s), id(ctx, "org"), id(ctx, "project"), id(ctx, "user")))
        }

        // Keys
        org.get("projects/:project/keys") { req, ctx in try await ok(s.listProjectKeys(actor(req, s), id(ctx, "org"), id(ctx, "project"))) }
        org.post("projects/:project/keys") { req, ctx in
            try await created(s.createKey(actor(req, s), id(ctx, "org"), id(ctx, "project"), decode(req, ctx)))
        }
        org.get("keys") { req, ctx in try await ok(s.listOrgKeys(actor(req, s), id(ctx, "org"))) }
        org.get("keys/:key") { req, ctx in try await ok(s.getKey(actor(req, s), id(ctx, "org"), id(ctx, "key"))) }
        org.patch("keys/:key") { req, ctx in try await ok(s.updateKey(actor(req, s), id(ctx, "org"), id(ctx, "key"), decode(req, ctx))) }
        org.post("keys/:key/revoke") { req, ctx in try await ok(s.revokeKey(actor(req, s), id(ctx, "org"), id(ctx, "key"))) }
        org.post("keys/:key/rotate") { req, ctx in try await ok(s.rotateKey(actor(req, s), id(ctx, "org"), id(ctx, "key"))) }

        // Billing & credits
        org.get("billing") { req, ctx in try await ok(s.billing(actor(req, s), id(ctx, "org"))) }
        org.post("credits") { req, ctx in try await ok(s.addCredits(actor(req, s), id(ctx, "org"), decode(req, ctx))) }

        // Price table
        org.get("prices") { req, ctx in try await ok(s.listPrices(actor(req, s), id(ctx, "org"))) }
        org.put("prices/:name") { req, ctx in try await ok(s.putPrice(actor(req, s), id(ctx, "org"), modelName(ctx), decode(req, ctx))) }
        org.delete("prices/:name") { req, ctx in try await noContent(s.deletePrice(actor(req, s), id(ctx, "org"), modelName(ctx))) }
        org.post("prices/import") { req, ctx in
            let models = req.uri.queryParameters.get("models")
            if models?.isEmpty == true { throw APIError(.invalid, "models: name at least one model (comma-separated)") }
            let only = models.map { Set($0.split(separator: ",").map(String.init)) }
            return try await ok(s.importPrices(actor(req, s), id(ctx, "org"), rawBody(req, limit: maxImportBody), only: only))
        }

        // BYOK
        org.get("byok") { req, ctx in try await ok(s.listByok(actor(req, s), id(ctx, "org"))) }
        org.post("byok") { req, ctx in try await created(s.addByok(actor(req, s), id(ctx, "org"), decode(req, ctx))) }
        org.delete("byok/:id") { req, ctx in try await noContent(s.deleteByok(actor(req, s), id(ctx, "org"), id(ctx, "id"))) }

        // Virtual models
        org.get("virtual-models") { req, ctx in try await ok(s.listVirtualModels(actor(req, s), id(ctx, "org"))) }
        org.get("virtual-models/:name") { req, ctx in try await ok(s.getVirtualModel(actor(req, s), id(ctx, "org"), modelName(ctx))) }
        org.put("virtual-models/:name") { req, ctx in try await ok(s.putVirtualModel(actor(req, s), id(ctx, "org"), modelName(ctx), decode(req, ctx))) }
        org.delete("virtual-models/:name") { req, ctx in try await noContent(s.deleteVirtualModel(actor(req, s), id(ctx, "org"), modelName(ctx))) }

        // MCP servers
        org.get("mcp-servers") { req, ctx in try await ok(s.listMcp(actor(req, s), id(ctx, "org"))) }
        org.post("mcp-servers") { req, ctx in try await created(s.addMcp(actor(req, s), id(ctx, "org"), decode(req, ctx))) }
        org.get("mcp-servers/:id") { req, ctx in try await ok(s.getMcp(actor(req, s), id(ctx, "org"), id(ctx, "id"))) }
        org.patch("mcp-servers/:id") { req, ctx in try await ok(s.updateMcp(actor(req, s), id(ctx, "org"), id(ctx, "id"), decode(req, ctx))) }
        org.delete("mcp-servers/:id") { req, ctx in try await noContent(s.deleteMcp(actor(req, s), id(ctx, "org"), id(ctx, "id"))) }

        // Prompts
        org.get("prompts") { req, ctx in try await ok(s.listPrompts(actor(req, s), id(ctx, "org"))) }
        org.post("prompts") { req, ctx in try await created(s.createPrompt(actor(req, s), id(ctx, "org"), decode(req, ctx))) }
        org.get("prompts/:name") { req, ctx in try await ok(s.getPrompt(actor(req, s), id(ctx, "org"), promptName(ctx))) }
        org.post("prompts/:name/versions") { req, ctx in
            try await created(s.addPromptVersion(actor(req, s), id(ctx, "org"), promptName(ctx), decode(req, ctx)))
        }
        org.delete("prompts/:name") { req, ctx in try await noContent(s.deletePrompt(actor(req, s), id(ctx, "org"), promptName(ctx))) }

        // Live usage (read from Redis at the moment of the call)
        org.get("keys/:key/usage") { req, ctx in try await ok(s.keyUsage(actor(req, s), id(ctx, "org"), id(ctx, "key"))) }
        org.get("projects/:project/usage") { req, ctx in try await ok(s.projectUsage(actor(req, s), id(ctx, "org"), id(ctx, "project"))) }
        org.get("usage") { req, ctx in try await ok(s.orgUsage(actor(req, s), id(ctx, "org"))) }
        // Usage history (per UTC day; SPEC §13.13), as JSON or, with format=csv, as CSV
        org.get("usage/history") { req, ctx in
            let caller = try await actor(req, s)
            let orgID = try id(ctx, "org")
            let q = req.uri.queryParameters
            let format = q.get("format") ?? "json"
            guard format == "json" || format == "csv" else { throw APIError(.invalid, "format must be json or csv, not '\(format)'") }
            let query = try HistoryQuery.parse({ name in q.get(name).map { String($0) } }, today: try await s.historyToday(orgID))
            let history = try await s.usageHistory(caller, orgID, query)
            guard format == "csv" else { return ok(history) }
            var headers = HTTPFields()
            headers[.contentType] = "text/csv; charset=utf-8"
            headers[.contentDisposition] = "attachment; filename=\"bursar-usage-\(orgID)-\(history.from)-\(history.to).csv\""
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: HistoryCSV.render(history))))
        }
        org.get("top") { req, ctx in
            let limit = req.uri.queryParameters.get("limit").map { Int($0) ?? 0 } ?? 10
            return try await ok(s.top(actor(req, s), id(ctx, "org"), limit: limit))
        }

        // Audit
        org.get("audit") { req, ctx in
            let q = req.uri.queryParameters
            func ms(_ name: String) throws -> Int64? {
                guard let raw = q.get(name) else { return nil }
                guard let v = Int64(raw), v >= 0 else { throw APIError(.invalid, "\(name) '\(raw)' is not a time in Unix ms") }
                return v
            }
            let query = AuditLog.Query(
                limit: q.get("limit").map { Int($0) ?? 0 } ?? 100, before: q.get("before"), after: q.get("after"),
                actor: q.get("actor"), action: q.get("action"), fromMs: try ms("from_ms"), toMs: try ms("to_ms"))
            return try await ok(s.readAudit(actor(req, s), id(ctx, "org"), query))
        }
    }

    // MARK: Helpers

    static func actor(_ req: Request, _ s: AdminService) async throws -> Actor {
        try await s.authenticate(bearer: bearer(req))
    }

    /// The bearer token of the request's `Authorization` header.
    static func bearer(_ req: Request) -> String? {
        guard let h = req.headers[.authorization] else { return nil }
        let parts = h.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return String(parts[1]).trimmingCharacters(in: .whitespaces)
    }

    /// The request body as `T`, refused with `invalid` when it is not exactly what the document
    /// allows: not JSON, the wrong shape, an unknown key, or `null` where a field is not nullable.
    static func decode<T: APIRequestBody>(_ req: Request, _ ctx: some RequestContext) async throws -> T {
        var req = req
        let buffer: ByteBuffer
        do {
            buffer = try await req.collectBody(upTo: maxBody)
        } catch {
            throw APIError(.invalid, "the request body is larger than \(maxBody) bytes")
        }
        guard buffer.readableBytes > 0 else { throw APIError(.invalid, "a JSON body is required") }
        do {
            return try APIJSON.decodeRequest(T.self, from: Data(buffer.readableBytesView))
        } catch let e as RequestBodyError {
            throw APIError(.invalid, e.message)
        } catch let e as DecodingError {
            throw APIError.from(e)
        } catch {
            throw APIError(.invalid, "the body is not valid JSON")
        }
    }

    /// The most a price file may be (LiteLLM's whole file is about 1.5 MB).
    public static let maxImportBody = 16 << 20

    /// The request body as bytes, at most `limit`.
    static func rawBody(_ req: Request, limit: Int) async throws -> Data {
        var req = req
        let buffer: ByteBuffer
        do {
            buffer = try await req.collectBody(upTo: limit)
        } catch {
            throw APIError(.invalid, "the request body is larger than \(limit) bytes")
        }
        guard buffer.readableBytes > 0 else { throw APIError(.invalid, "a JSON body is required") }
        return Data(buffer.readableBytesView)
    }

    /// A path id: decimal digits of an unsigned 64-bit integer (0…18446744073709551615, the
    /// document's range); anything else, including a larger number, is `invalid`.
    static func id(_ ctx: some RequestContext, _ name: String) throws -> UInt64 {
        let raw = ctx.parameters.get(name) ?? ""
        guard let v = UInt64(raw) else {
            throw APIError(.invalid, "\(name) '\(raw)' is not an id (an unsigned integer 0…\(UInt64.max))")
        }
        return v
    }

    static func name(_ ctx: some RequestContext) throws -> String {
        guard let raw = ctx.parameters.get("name"), let v = raw.removingPercentEncoding, !v.isEmpty else {
            throw APIError(.invalid, "name is missing")
        }
        return v
    }

    /// A `{name}` path parameter that is a model name (prices, virtual models): 1…64 visible
    /// ASCII characters, the document's pattern; anything else is `invalid` (400), never a 404.
    static func modelName(_ ctx: some RequestContext) throws -> String {
        let v = try name(ctx)
        do { try MetadataStore.checkModel(v, "name") } catch let e as StoreError { throw APIError.from(e) }
        return v
    }

    /// A `{name}` path parameter that is a prompt's name: 1…128 code points, no control
    /// character, not only spaces (the document's pattern); anything else is `invalid` (400).
    static func promptName(_ ctx: some RequestContext) throws -> String {
        let v = try name(ctx)
        do { try MetadataStore.checkName(v, "name") } catch let e as StoreError { throw APIError.from(e) }
        return v
    }

    static func ok(_ body: some Encodable) -> Response { APIError.render(status: .ok, body) }
    static func created(_ body: some Encodable) -> Response { APIError.render(status: .created, body) }
    static func noContent(_: Void) -> Response { Response(status: .noContent) }
}

/// Which methods each route path has, for answering 405 with `Allow` (filled once, after the
/// routes are added, from the router itself, so it cannot drift from them).
final class RouteMethods: Sendable {
    private let table = Mutex<[(segments: [Substring], methods: [HTTPRequest.Method])]>([])

    func load(_ routes: [(HTTPRequest.Method, String)]) {
        var byPath: [String: [HTTPRequest.Method]] = [:]
        for (method, path) in routes { byPath[path, default: []].append(method) }
        table.withLock { table in
            table = byPath.map { path, methods in (path.split(separator: "/"), methods.sorted { $0.rawValue < $1.rawValue }) }
        }
    }

    /// The methods of the route `path` matches (a `{capture}` segment matches any one segment);
    /// empty when no route matches. Where several match (`prices/import` and `prices/{name}`),
    /// the router takes the one with a literal segment where the others capture, leftmost first,
    /// and so does this: its methods are the resource's.
    func allowed(for path: String) -> [HTTPRequest.Method] {
        let segments = path.split(separator: "/")
        return table.withLock { table in
            var best: (literals: [Bool], methods: [HTTPRequest.Method])?
            for route in table where route.segments.count == segments.count {
                var literals: [Bool] = []
                literals.reserveCapacity(segments.count)
                for (template, actual) in zip(route.segments, segments) {
                    if template.first == "{" {
                        literals.append(false)
                    } else if template == actual {
                        literals.append(true)
                    } else {
                        break
                    }
                }
                guard literals.count == segments.count else { continue }
                if let b = best, !Self.moreSpecific(literals, than: b.literals) { continue }
                best = (literals, route.methods)
            }
            return best?.methods ?? []
        }
    }

    /// Whether a match with literal segments `a` beats one with `b`: at the first segment where
    /// they differ, `a` is the literal.
    private static func moreSpecific(_ a: [Bool], than b: [Bool]) -> Bool {
        for (x, y) in zip(a, b) where x != y { return x }
        return false
    }
}

/// Renders every error as the API's JSON error body: unmatched routes become `not_found`, a known
/// path asked with a method it does not have `method_not_allowed` (405, with `Allow`), anything
/// unexpected `internal` (logged).
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let methods: RouteMethods

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as APIError {
            return try e.response(from: request, context: context)
        } catch let e as HTTPError {
            let allowed = e.status == .notFound ? methods.allowed(for: request.uri.path).map(\.rawValue) : []
            if !allowed.isEmpty {
                let list = allowed.joined(separator: ", ")
                var response = try APIError(.methodNotAllowed, "\(request.method) is not allowed on \(request.uri.path); allowed: \(list)")
                    .response(from: request, context: context)
                response.headers[.allow] = list
                return response
            }
            let code: APIErrorCode = switch e.status.code {
            case 404: .notFound
            case 401: .unauthenticated
            case 403: .forbidden
            case 400..<500: .invalid
            default: .internal
            }
            let message = e.status.code == 404 ? "no such endpoint: \(request.method) \(request.uri.path)" : (e.body ?? e.status.reasonPhrase)
            return try APIError(code, message).response(from: request, context: context)
        } catch {
            let e = APIError.from(error)
            if e.code == .internal { context.logger.error("admin API error", metadata: ["error": "\(error)"]) }
            return try e.response(from: request, context: context)
        }
    }
}
