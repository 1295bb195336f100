import AsyncHTTPClient
import BursarAPI
import Foundation
import NIOCore
import NIOFoundationCompat

/// One invocation's connection to the admin API: sends requests, turns non-2xx answers into
/// `Failure`s, resolves the organization, and prints either the raw JSON or a rendering.
struct Session {
    /// The server URL without a trailing slash.
    let base: String
    /// The bearer token, if any.
    let token: String?
    /// `--org` / `$BURSAR_ORG`: an id or a name.
    let orgOption: String?
    /// `--json`: print the server's answer as-is.
    let json: Bool
    private let http: HTTPClient

    init(base: String, token: String?, orgOption: String?, json: Bool) {
        self.base = base
        self.token = token
        self.orgOption = orgOption
        self.json = json
        // Our own client rather than `HTTPClient.shared`: the shared one keeps retrying a refused
        // connection until the request's deadline (its connect timeout is 90 s) and follows
        // redirects. A CLI should fail at once when bursard is down.
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(30))
        configuration.connectionPool.retryConnectionEstablishment = false
        http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    func close() async throws { try await http.shutdown() }

    // MARK: Requests

    /// Sends a request and returns the body of a 2xx answer; anything else throws a `Failure`.
    func send(
        _ method: Method, _ path: String, body: (any Encodable)? = nil, raw: Data? = nil, authenticated: Bool = true
    ) async throws -> ByteBuffer {
        var request = HTTPClientRequest(url: base + path)
        switch method {
        case .GET: request.method = .GET
        case .POST: request.method = .POST
        case .PUT: request.method = .PUT
        case .PATCH: request.method = .PATCH
        case .DELETE: request.method = .DELETE
        }
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "bursarctl")
        if authenticated {
            guard let token else {
                throw Failure(
                    code: "unauthenticated", message: "no token: pass --token or set BURSAR_TOKEN",
                    exitStatus: ExitStatus.refused)
            }
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
        }
        if let body {
            let data = try APIJSON.encoder().encode(body)
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: data))
        } else if let raw {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: raw))
        }
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await http.execute(request, timeout: .seconds(30))
            bytes = try await response.body.collect(upTo: 64 << 20)
        } catch {
            throw Failure.fromTransport(error, server: base)
        }
        guard (200..<300).contains(response.status.code) else {
            throw Failure.fromResponse(
                status: Int(response.status.code), reason: response.status.reasonPhrase, body: bytes)
        }
        return bytes
    }

    /// Sends a request and decodes the answer.
    func call<R: Decodable>(
        _ method: Method, _ path: String, body: (any Encodable)? = nil, as type: R.Type,
        authenticated: Bool = true
    ) async throws -> R {
        let bytes = try await send(method, path, body: body, authenticated: authenticated)
        return try decode(bytes, as: type)
    }

    private func decode<R: Decodable>(_ bytes: ByteBuffer, as type: R.Type) throws -> R {
        do {
            return try APIJSON.decoder().decode(type, from: bytes)
        } catch {
            throw Failure(
                code: "bad_response", message: "the server's answer is not a \(type): \(error)",
                exitStatus: ExitStatus.other)
        }
    }

    // MARK: Output

    /// Sends the command's request and prints the answer: pretty JSON with `--json`, else `render`.
    func show<R: Decodable>(
        _ method: Method, _ path: String, body: (any Encodable)? = nil, raw: Data? = nil, as type: R.Type,
        authenticated: Bool = true, render: (R) throws -> Void
    ) async throws {
        let bytes = try await send(method, path, body: body, raw: raw, authenticated: authenticated)
        if json {
            print(prettyJSON(bytes))
        } else {
            try render(try decode(bytes, as: type))
        }
    }

    /// Sends a request answered by 204 and prints `done` (nothing with `--json`).
    func perform(_ method: Method, _ path: String, body: (any Encodable)? = nil, done: String) async throws {
        _ = try await send(method, path, body: body)
        if !json { print(done) }
    }

    // MARK: Resolving names

    /// The organization to act in: `--org` (id, or a name among the token's organizations), else
    /// the token's only organization.
    func orgID() async throws -> UInt64 {
        if let orgOption, let id = UInt64(orgOption) { return id }
        let me = try await call(.GET, "/v1/me", as: MeResponse.self)
        let listing = me.organizations.map { "\($0.id) (\($0.name))" }.joined(separator: ", ")
        if let orgOption {
            let matches = me.organizations.filter { $0.name == orgOption }
            guard let match = matches.first else {
                throw Failure.notFound(
                    "no organization named '\(orgOption)' among this token's: \(listing.isEmpty ? "none" : listing)")
            }
            guard matches.count == 1 else {
                throw Failure.invalid("several organizations are named '\(orgOption)': pass --org with an id")
            }
            return match.id
        }
        switch me.organizations.count {
        case 1:
            return me.organizations[0].id
        case 0:
            throw Failure.invalid("this token belongs to no organization; pass --org")
        default:
            throw Failure.invalid(
                "this token belongs to several organizations; pass --org or set BURSAR_ORG to one of: \(listing)")
        }
    }

    /// `/v1/orgs/{org}` of the organization to act in.
    func orgPath() async throws -> String { "/v1/orgs/\(try await orgID())" }

    /// A project id, or a project name looked up among the projects the caller can see.
    func projectID(_ text: String, orgPath: String) async throws -> UInt64 {
        if let id = UInt64(text) { return id }
        let list = try await call(.GET, "\(orgPath)/projects", as: ProjectListResponse.self)
        guard let project = list.projects.first(where: { $0.name == text }) else {
            throw Failure.notFound("no project named '\(text)' (see `bursarctl project list`)")
        }
        return project.id
    }

    /// A user id, or an organization member's e-mail.
    func memberID(_ text: String, orgPath: String) async throws -> UInt64 {
        if let id = UInt64(text) { return id }
        guard text.contains("@") else { throw Failure.invalid("USER '\(text)' is neither a user id nor an e-mail") }
        let list = try await call(.GET, "\(orgPath)/members", as: MemberListResponse.self)
        guard let member = list.members.first(where: { $0.email.lowercased() == text.lowercased() }) else {
            throw Failure.notFound("no member with e-mail '\(text)' in this organization")
        }
        return member.userId
    }

    /// A user id, or the e-mail of a member of the project.
    func projectMemberID(_ text: String, projectPath: String) async throws -> UInt64 {
        if let id = UInt64(text) { return id }
        guard text.contains("@") else { throw Failure.invalid("USER '\(text)' is neither a user id nor an e-mail") }
        let list = try await call(.GET, "\(projectPath)/members", as: ProjectMemberListResponse.self)
        guard let member = list.members.first(where: { $0.email.lowercased() == text.lowercased() }) else {
            throw Failure.notFound("no member with e-mail '\(text)' in this project")
        }
        return member.userId
    }
}

/// The HTTP methods the admin API uses.
enum Method {
    case GET, POST, PUT, PATCH, DELETE
}

/// A path segment with everything but RFC 3986 unreserved characters percent-encoded.
func segment(_ text: String) -> String {
    var out = ""
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"):
            out.unicodeScalars.append(Unicode.Scalar(byte))
        default:
            let hex = Array("0123456789ABCDEF".unicodeScalars)
            out += "%"
            out.unicodeScalars.append(hex[Int(byte >> 4)])
            out.unicodeScalars.append(hex[Int(byte & 0x0f)])
        }
    }
    return out
}
