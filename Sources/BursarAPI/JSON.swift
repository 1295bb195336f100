public import Foundation

/// The admin API's JSON conventions, shared by the server and bursarctl: snake_case keys, integer
/// money (nano-USD, fields ending `_nusd`), integer times (Unix ms, fields ending `_ms`).
public enum APIJSON {
    /// An encoder with the API's conventions (sorted keys, so output is stable).
    public static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }

    /// A decoder with the API's conventions.
    public static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }
}

/// Every error the admin API returns: `{"error": {"code": …, "message": …}}`.
public struct ErrorBody: Codable, Sendable, Hashable {
    /// The error.
    public var error: APIErrorDetail
    /// An error body.
    public init(error: APIErrorDetail) { self.error = error }
}

/// A stable code (what scripts match on), a human message, and for cap violations the cap.
public struct APIErrorDetail: Codable, Sendable, Hashable {
    /// Stable code: see `APIErrorCode`.
    public var code: String
    /// What went wrong, naming the field or entity.
    public var message: String
    /// For `exceeds_cap`: which cap, e.g. `project.tpm` or `grant.max_key_spend`.
    public var cap: String?
    /// An error detail.
    public init(code: String, message: String, cap: String? = nil) {
        self.code = code
        self.message = message
        self.cap = cap
    }
}

/// The admin API's error codes and their HTTP statuses. Codes never change meaning; new ones may
/// be added.
public enum APIErrorCode: String, Sendable, CaseIterable {
    /// 401: no bearer token, or one that is not valid.
    case unauthenticated
    /// 403: the actor can see the resource but their standing does not allow the action.
    case forbidden
    /// 404: no such resource, or one the actor may not see.
    case notFound = "not_found"
    /// 400: the body or a parameter breaks a rule of proto/openapi.json (shape, range, length,
    /// pattern, an unknown field, `null` where a field is not nullable).
    case invalid
    /// 405: the path exists but not with this method (the `Allow` header lists the ones it has).
    case methodNotAllowed = "method_not_allowed"
    /// 422: a key or grant limit lies outside a project cap or the creator's grant.
    case exceedsCap = "exceeds_cap"
    /// 409: the change would leave the organization without an Owner.
    case lastOwner = "last_owner"
    /// 409: the name or resource already exists, or the store is already bootstrapped; or a
    /// well-formed request that stored state or the server clock refuses (an archived project, a
    /// revoked key, an expiry already past, a credit balance beyond ±(2^53 − 1)).
    case conflict
    /// 503: Redis cannot be reached.
    case storeUnavailable = "store_unavailable"
    /// 500: a bug.
    case `internal`

    /// The HTTP status of this code.
    public var status: Int {
        switch self {
        case .unauthenticated: 401
        case .forbidden: 403
        case .notFound: 404
        case .invalid: 400
        case .methodNotAllowed: 405
        case .exceedsCap: 422
        case .lastOwner, .conflict: 409
        case .storeUnavailable: 503
        case .internal: 500
        }
    }
}
