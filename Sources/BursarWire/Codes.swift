/// Why a CHECK was denied. `none` on an allow. Each reason has exactly one code, forever.
public enum DenyReason: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case none = 0
    case unknownKey = 1
    case keyRevoked = 2
    case keyExpired = 3
    case creatorLostAccess = 4
    case projectInactive = 5
    case orgSuspended = 6
    case modelNotAllowed = 7
    case keyRPM = 8
    case keyTPM = 9
    case projectRPM = 10
    case projectTPM = 11
    case keyBudget = 12
    case projectBudget = 13
    case orgCredits = 14
    case requestTooLarge = 15
    case storeUnavailable = 16
    /// The server is at its in-flight bound and answered at once, without touching Redis; nothing
    /// was reserved. Retry after `retry_after_ms`.
    case overloaded = 17
    /// This connection asked about too many unknown key digests in the last minute; a digest the
    /// server has not cached is answered at once, without a lookup. Cached keys are unaffected.
    case keyLookupsThrottled = 18
    /// The CHECK asked bursar to price it (`estimated_cost` = −1), the organization's price
    /// table has no price for the model, and a money limit applies (a key or project budget, or
    /// metered credits): a request is never silently free. Only sent to a client that asked for
    /// table pricing.
    case priceUnknown = 19

    /// The HTTP status a gateway should give its own caller for this reason.
    public var httpStatus: Int {
        switch self {
        case .none: return 200
        case .unknownKey, .keyRevoked, .keyExpired: return 401
        case .creatorLostAccess, .projectInactive, .orgSuspended, .modelNotAllowed, .priceUnknown: return 403
        case .keyRPM, .keyTPM, .projectRPM, .projectTPM, .requestTooLarge, .keyLookupsThrottled: return 429
        case .keyBudget, .projectBudget, .orgCredits: return 402
        case .storeUnavailable, .overloaded: return 503
        }
    }

    /// A stable snake_case name, used in logs, metrics and the spec.
    public var description: String {
        switch self {
        case .none: return "none"
        case .unknownKey: return "unknown_key"
        case .keyRevoked: return "key_revoked"
        case .keyExpired: return "key_expired"
        case .creatorLostAccess: return "creator_lost_access"
        case .projectInactive: return "project_inactive"
        case .orgSuspended: return "org_suspended"
        case .modelNotAllowed: return "model_not_allowed"
        case .keyRPM: return "key_rpm"
        case .keyTPM: return "key_tpm"
        case .projectRPM: return "project_rpm"
        case .projectTPM: return "project_tpm"
        case .keyBudget: return "key_budget"
        case .projectBudget: return "project_budget"
        case .orgCredits: return "org_credits"
        case .requestTooLarge: return "request_too_large"
        case .storeUnavailable: return "store_unavailable"
        case .overloaded: return "overloaded"
        case .keyLookupsThrottled: return "key_lookups_throttled"
        case .priceUnknown: return "price_unknown"
        }
    }
}

/// The outcome of a SETTLE or RELEASE.
public enum ReservationStatus: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// The counters moved now.
    case applied = 0
    /// The reservation was already settled: nothing changed.
    case alreadySettled = 1
    /// The reservation was already released: nothing changed.
    case alreadyReleased = 2
    /// The reservation passed its TTL unsettled; its estimate stands and nothing changed.
    case expired = 3
    /// No such reservation (never issued, or expired long enough ago to be forgotten).
    case unknown = 4
    /// Redis did not answer within the deadline; the outcome is unknown, retry with the same id.
    case storeUnavailable = 5
    /// The server is at its in-flight bound and did not look at the request: nothing changed;
    /// retry with the same reservation id.
    case overloaded = 6

    /// A stable snake_case name.
    public var description: String {
        switch self {
        case .applied: return "applied"
        case .alreadySettled: return "already_settled"
        case .alreadyReleased: return "already_released"
        case .expired: return "expired"
        case .unknown: return "unknown"
        case .storeUnavailable: return "store_unavailable"
        case .overloaded: return "overloaded"
        }
    }
}

/// The code of an ERROR frame. After sending one, the server closes the connection.
public enum ProtocolErrorCode: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    /// The first two bytes were not "BR".
    case badMagic = 1
    /// The version byte is not one this peer speaks.
    case unsupportedVersion = 2
    /// The type byte is not a known frame type.
    case unknownFrameType = 3
    /// A known type arrived in the wrong direction (a client sent an answer type).
    case unexpectedFrameType = 4
    /// The body length does not match the type's fixed body size.
    case badLength = 5
    /// The announced body is longer than `FrameHeader.maxBodyLength`.
    case frameTooLarge = 6
    /// A field holds a value outside its domain (see the spec for each field).
    case malformedField = 7
    /// The peer closed its side in the middle of a frame.
    case truncated = 8
    /// The server hit an internal fault; the request was not applied.
    case internalError = 9
    /// The server is at its connection limit; sent once (request id 0) on a new connection.
    case tooManyConnections = 10
    /// No frame arrived for the idle timeout while nothing was in flight.
    case idleTimeout = 11
    /// A frame was started but not completed within the frame timeout.
    case frameTimeout = 12
    /// A refused gateway credential, a request before AUTH where the server requires it, or a
    /// connection whose credential was revoked (SPEC §6.5).
    case unauthorized = 13

    /// A stable snake_case name.
    public var description: String {
        switch self {
        case .badMagic: return "bad_magic"
        case .unsupportedVersion: return "unsupported_version"
        case .unknownFrameType: return "unknown_frame_type"
        case .unexpectedFrameType: return "unexpected_frame_type"
        case .badLength: return "bad_length"
        case .frameTooLarge: return "frame_too_large"
        case .malformedField: return "malformed_field"
        case .truncated: return "truncated"
        case .internalError: return "internal_error"
        case .tooManyConnections: return "too_many_connections"
        case .idleTimeout: return "idle_timeout"
        case .frameTimeout: return "frame_timeout"
        case .unauthorized: return "unauthorized"
        }
    }
}

/// A frame could not be decoded. The request id is that of the offending header when it was read.
public struct ProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public var code: ProtocolErrorCode
    /// Human-readable detail naming the field or value at fault.
    public var message: String
    /// The request id of the offending frame, or 0 when the header itself was bad.
    public var requestID: UInt64

    /// An error with a code and a message.
    public init(_ code: ProtocolErrorCode, _ message: String, requestID: UInt64 = 0) {
        self.code = code
        self.message = message
        self.requestID = requestID
    }

    public var description: String { "\(code): \(message)" }
}
