/// The fixed 16-byte header that starts every frame, in both directions.
///
/// ```
/// offset size field
///      0    2 magic        0x42 0x52 ("BR")
///      2    1 version      1
///      3    1 type         FrameType
///      4    4 body length  u32, bytes that follow the header
///      8    8 request id   u64, chosen by the client, echoed in the answer
/// ```
/// Every integer on the wire is big-endian (network byte order).
public struct FrameHeader: Hashable, Sendable {
    /// "BR".
    public static let magic: UInt16 = 0x4252
    /// The protocol version this module speaks.
    public static let version: UInt8 = 1
    /// Bytes in a header.
    public static let size = 16
    /// The largest body any v1 peer accepts; a longer announced body is `frameTooLarge`.
    public static let maxBodyLength = 4096

    /// What the body holds.
    public var type: FrameType
    /// Body bytes after the header.
    public var bodyLength: UInt32
    /// The client's identifier for this request; the answer carries the same value.
    public var requestID: UInt64

    /// A header for a v1 frame.
    public init(type: FrameType, bodyLength: UInt32, requestID: UInt64) {
        self.type = type
        self.bodyLength = bodyLength
        self.requestID = requestID
    }
}

/// The frame types of protocol v1. Requests have the high bit clear; answers have it set.
public enum FrameType: UInt8, Sendable, CaseIterable {
    /// Authorize a request and reserve its estimate.
    case check = 0x01
    /// Replace a reservation's estimate with the actual usage.
    case settle = 0x02
    /// Return a reservation whose upstream call never happened.
    case release = 0x03
    /// Liveness probe.
    case ping = 0x04
    /// Present a gateway credential: the connection then serves only its organizations.
    case auth = 0x05
    /// Answer to `check`.
    case checkResult = 0x81
    /// Answer to `settle`.
    case settleResult = 0x82
    /// Answer to `release`.
    case releaseResult = 0x83
    /// Answer to `ping`.
    case pong = 0x84
    /// Answer to an accepted `auth`.
    case authResult = 0x85
    /// A protocol error; the server closes the connection after sending it.
    case error = 0xFF

    /// True for the types a client sends.
    public var isRequest: Bool { rawValue & 0x80 == 0 }

    /// The exact body length of this type, or nil when the body is variable (`error`).
    public var fixedBodyLength: Int? {
        switch self {
        case .check: return CheckRequest.bodySize
        case .settle: return SettleRequest.bodySize
        case .release: return ReleaseRequest.bodySize
        case .ping, .pong, .authResult: return 0
        case .auth: return AuthRequest.bodySize
        case .checkResult: return CheckResult.bodySize
        case .settleResult, .releaseResult: return ReservationResult.bodySize
        case .error: return nil
        }
    }
}
