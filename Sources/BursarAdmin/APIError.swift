public import BursarAPI
import BursarRBAC
import BursarRedis
import BursarStore
import Foundation
public import Hummingbird

/// An admin API error: a stable code, a message, and for cap violations the cap. Rendered as
/// `ErrorBody` JSON with the code's HTTP status.
public struct APIError: HTTPResponseError, Sendable, CustomStringConvertible {
    /// The stable code.
    public var code: APIErrorCode
    /// What went wrong.
    public var message: String
    /// The cap that was exceeded (`exceeds_cap` only).
    public var cap: String?

    /// An error.
    public init(_ code: APIErrorCode, _ message: String, cap: String? = nil) {
        self.code = code
        self.message = message
        self.cap = cap
    }

    public var status: HTTPResponse.Status { .init(code: code.status) }
    public var description: String { "\(code.rawValue): \(message)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        Self.render(status: status, ErrorBody(error: APIErrorDetail(code: code.rawValue, message: message, cap: cap)))
    }

    /// A JSON response.
    static func render(status: HTTPResponse.Status, _ body: some Encodable) -> Response {
        let data = (try? APIJSON.encoder().encode(body)) ?? Data("{}".utf8)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func notFound(_ what: String) -> APIError { APIError(.notFound, "\(what) does not exist") }
    static let forbidden = APIError(.forbidden, "your role does not allow this")
    /// A user named in a request's body who is not a member of the organization: `conflict`, so
    /// that a 404 always means the path's own resource (as proto/openapi.json states).
    static func notMember(_ user: String, org: UInt64) -> APIError {
        APIError(.conflict, "user \(user) is not a member of organization \(org)")
    }

    /// Maps any error a handler throws onto the API's codes.
    public static func from(_ error: any Error) -> APIError {
        switch error {
        case let e as APIError:
            return e
        case let e as StoreError:
            return APIError(APIErrorCode(rawValue: e.code) ?? .invalid, e.message)
        case let e as CapViolation:
            return APIError(.exceedsCap, e.message, cap: e.cap)
        case let e as RedisError:
            return APIError(.storeUnavailable, "the store could not be reached (\(e.code))")
        case is DecodingError:
            return APIError(.invalid, describe(error as! DecodingError))
        default:
            return APIError(.internal, "internal error")
        }
    }

    private static func describe(_ e: DecodingError) -> String {
        func path(_ c: [any CodingKey]) -> String {
            c.isEmpty ? "body" : c.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch e {
        case .keyNotFound(let key, let ctx): return "\(path(ctx.codingPath + [key])) is required"
        case .typeMismatch(let type, let ctx): return "\(path(ctx.codingPath)) must be of type \(type)"
        case .valueNotFound(let type, let ctx): return "\(path(ctx.codingPath)) must be a \(type), not null"
        case .dataCorrupted(let ctx): return "\(path(ctx.codingPath)): \(ctx.debugDescription)"
        @unknown default: return "the body is not valid JSON for this request"
        }
    }
}
