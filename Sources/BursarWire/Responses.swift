public import NIOCore

/// The answer to CHECK.
///
/// Body, 112 bytes:
/// ```
/// offset size field
///      0    1 decision              0 = deny, 1 = allow
///      1    1 reason                DenyReason (0 on allow)
///      2    2 key flags             bit 0: content logging disabled
///      4    4 retry after ms        u32; > 0 only for rate denials that can succeed later
///      8   16 reservation id        all zero on deny
///     24    8 org id                u64 (0 when the key is unknown)
///     32    8 project id            u64
///     40    8 key id                u64
///     48    4 requests limit        u32, tighter of key and project; 0 = no limit
///     52    4 requests remaining    u32
///     56    4 requests reset ms     u32, until the bucket is full again
///     60    4 tokens limit          u32, tighter of key and project; 0 = no limit
///     64    4 tokens remaining      u32
///     68    4 tokens reset ms       u32
///     72    8 key budget remaining  i64 nano-USD; may be negative; INT64_MAX = no budget
///     80    8 key budget resets at  i64 Unix ms of the window's end; 0 = never (lifetime / none)
///     88    8 project budget remaining i64 nano-USD; INT64_MAX = no budget
///     96    8 project budget resets at i64 Unix ms; 0 = never
///    104    8 org credits remaining i64 nano-USD; INT64_MAX = not metered
/// ```
public struct CheckResult: Hashable, Sendable {
    /// Body bytes.
    public static let bodySize = 112
    /// Sentinel for "no limit" in the i64 remaining fields.
    public static let unlimited = Int64.max

    /// Key flag: the gateway must not log request or response content for this key.
    public static let flagContentLoggingDisabled: UInt16 = 1 << 0
    /// Key flag: bursard admitted this request on its own while Redis was unreachable (its store
    /// failure policy `allow`): no limit was checked against Redis, the limit fields carry their
    /// "nothing" values, and the debit is replayed into Redis when it returns.
    public static let flagAdmittedLocally: UInt16 = 1 << 1

    /// Whether the request may proceed.
    public var allowed: Bool
    /// Why not, on a deny.
    public var reason: DenyReason
    /// Key flags (`flagContentLoggingDisabled`).
    public var keyFlags: UInt16
    /// For rate denials that can succeed later: how long to wait.
    public var retryAfterMs: UInt32
    /// The reservation to SETTLE or RELEASE; `.none` on deny.
    public var reservation: ReservationID
    /// The key's organization.
    public var orgID: UInt64
    /// The key's project.
    public var projectID: UInt64
    /// The key.
    public var keyID: UInt64
    /// Requests-per-minute of the tighter of key and project (0 = no limit).
    public var requestsLimit: UInt32
    /// Requests still admissible now.
    public var requestsRemaining: UInt32
    /// Milliseconds until the request bucket is full again.
    public var requestsResetMs: UInt32
    /// Tokens-per-minute of the tighter of key and project (0 = no limit).
    public var tokensLimit: UInt32
    /// Tokens still admissible now.
    public var tokensRemaining: UInt32
    /// Milliseconds until the token bucket is full again.
    public var tokensResetMs: UInt32
    /// The key's budget left in its current window (`unlimited` if none).
    public var keyBudgetRemaining: NanoUSD
    /// When the key's budget window ends, Unix ms (0 = never).
    public var keyBudgetResetAtMs: Int64
    /// The project's monthly budget left (`unlimited` if none).
    public var projectBudgetRemaining: NanoUSD
    /// When the project's budget month ends, Unix ms (0 = never).
    public var projectBudgetResetAtMs: Int64
    /// The organization's credit balance (`unlimited` if not metered).
    public var orgCreditsRemaining: NanoUSD

    /// A result with every field; unspecified fields zero / unlimited.
    public init(
        allowed: Bool, reason: DenyReason, keyFlags: UInt16 = 0, retryAfterMs: UInt32 = 0,
        reservation: ReservationID = .none, orgID: UInt64 = 0, projectID: UInt64 = 0, keyID: UInt64 = 0,
        requestsLimit: UInt32 = 0, requestsRemaining: UInt32 = 0, requestsResetMs: UInt32 = 0,
        tokensLimit: UInt32 = 0, tokensRemaining: UInt32 = 0, tokensResetMs: UInt32 = 0,
        keyBudgetRemaining: NanoUSD = unlimited, keyBudgetResetAtMs: Int64 = 0,
        projectBudgetRemaining: NanoUSD = unlimited, projectBudgetResetAtMs: Int64 = 0,
        orgCreditsRemaining: NanoUSD = unlimited
    ) {
        self.allowed = allowed
        self.reason = reason
        self.keyFlags = keyFlags
        self.retryAfterMs = retryAfterMs
        self.reservation = reservation
        self.orgID = orgID
        self.projectID = projectID
        self.keyID = keyID
        self.requestsLimit = requestsLimit
        self.requestsRemaining = requestsRemaining
        self.requestsResetMs = requestsResetMs
        self.tokensLimit = tokensLimit
        self.tokensRemaining = tokensRemaining
        self.tokensResetMs = tokensResetMs
        self.keyBudgetRemaining = keyBudgetRemaining
        self.keyBudgetResetAtMs = keyBudgetResetAtMs
        self.projectBudgetRemaining = projectBudgetRemaining
        self.projectBudgetResetAtMs = projectBudgetResetAtMs
        self.orgCreditsRemaining = orgCreditsRemaining
    }

    /// A deny that carries nothing but its reason (unknown key, store unavailable).
    public static func deny(_ reason: DenyReason) -> CheckResult { CheckResult(allowed: false, reason: reason) }

    /// Whether content logging is disabled for the key.
    public var contentLoggingDisabled: Bool { keyFlags & Self.flagContentLoggingDisabled != 0 }

    /// Whether bursard admitted the request locally, without Redis (`flagAdmittedLocally`).
    public var admittedLocally: Bool { keyFlags & Self.flagAdmittedLocally != 0 }

    /// Writes the body.
    ///
    /// Written for every CHECK, so in one pass through a raw pointer (big-endian stores at
    /// fixed offsets) rather than a `ByteBuffer` write, with its capacity check, per field.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.bodySize) { out in
            var o = 0
            func put<T: FixedWidthInteger>(_ value: T) {
                out.storeBytes(of: value.bigEndian, toByteOffset: o, as: T.self)
                o += MemoryLayout<T>.size
            }
            put(allowed ? 1 as UInt8 : 0)
            put(reason.rawValue)
            put(keyFlags)
            put(retryAfterMs)
            put(reservation.orgID)
            put(reservation.sequence)
            put(orgID)
            put(projectID)
            put(keyID)
            put(requestsLimit)
            put(requestsRemaining)
            put(requestsResetMs)
            put(tokensLimit)
            put(tokensRemaining)
            put(tokensResetMs)
            put(keyBudgetRemaining)
            put(keyBudgetResetAtMs)
            put(projectBudgetRemaining)
            put(projectBudgetResetAtMs)
            put(orgCreditsRemaining)
            precondition(o == Self.bodySize, "CHECK_RESULT body miscounted")
            return o
        }
    }

    /// Reads a body of exactly `bodySize` bytes.
    public static func decode(body: inout ByteBuffer, requestID: UInt64) throws(ProtocolError) -> CheckResult {
        let decision = body.readInteger(as: UInt8.self)!
        let reasonByte = body.readInteger(as: UInt8.self)!
        guard decision <= 1 else { throw ProtocolError(.malformedField, "decision byte \(decision) is not 0 or 1", requestID: requestID) }
        guard let reason = DenyReason(rawValue: reasonByte) else {
            throw ProtocolError(.malformedField, "unknown deny reason \(reasonByte)", requestID: requestID)
        }
        guard (decision == 1) == (reason == .none) else {
            throw ProtocolError(.malformedField, "decision \(decision) contradicts reason \(reason)", requestID: requestID)
        }
        return CheckResult(
            allowed: decision == 1, reason: reason,
            keyFlags: body.readInteger()!, retryAfterMs: body.readInteger()!,
            reservation: body.readReservationID()!,
            orgID: body.readInteger()!, projectID: body.readInteger()!, keyID: body.readInteger()!,
            requestsLimit: body.readInteger()!, requestsRemaining: body.readInteger()!, requestsResetMs: body.readInteger()!,
            tokensLimit: body.readInteger()!, tokensRemaining: body.readInteger()!, tokensResetMs: body.readInteger()!,
            keyBudgetRemaining: body.readInteger()!, keyBudgetResetAtMs: body.readInteger()!,
            projectBudgetRemaining: body.readInteger()!, projectBudgetResetAtMs: body.readInteger()!,
            orgCreditsRemaining: body.readInteger()!
        )
    }
}

/// The answer to SETTLE and to RELEASE.
///
/// Body, 24 bytes:
/// ```
/// offset size field
///      0    1 status        ReservationStatus
///      1    7 reserved      zero
///      8    8 cost delta    i64 nano-USD by which the counters moved (actual − reserved for
///                           SETTLE, −reserved for RELEASE); 0 unless status = applied
///     16    8 token delta   i64 tokens, same rule
/// ```
public struct ReservationResult: Hashable, Sendable {
    /// Body bytes.
    public static let bodySize = 24
    /// What happened.
    public var status: ReservationStatus
    /// How far the cost counters moved.
    public var costDelta: NanoUSD
    /// How far the token counters moved.
    public var tokenDelta: Int64

    /// A result.
    public init(status: ReservationStatus, costDelta: NanoUSD = 0, tokenDelta: Int64 = 0) {
        self.status = status
        self.costDelta = costDelta
        self.tokenDelta = tokenDelta
    }

    /// Writes the body.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(status.rawValue)
        buffer.writeRepeatingByte(0, count: 7)
        buffer.writeInteger(costDelta)
        buffer.writeInteger(tokenDelta)
    }

    /// Reads a body of exactly `bodySize` bytes.
    public static func decode(body: inout ByteBuffer, requestID: UInt64) throws(ProtocolError) -> ReservationResult {
        let raw = body.readInteger(as: UInt8.self)!
        guard let status = ReservationStatus(rawValue: raw) else {
            throw ProtocolError(.malformedField, "unknown reservation status \(raw)", requestID: requestID)
        }
        body.moveReaderIndex(forwardBy: 7)
        return ReservationResult(status: status, costDelta: body.readInteger()!, tokenDelta: body.readInteger()!)
    }
}

/// ERROR: the server could not accept a frame; it closes the connection after this one.
///
/// Body, 4 … 260 bytes:
/// ```
/// offset size field
///      0    2 code            ProtocolErrorCode
///      2    2 message length  u16, 0 … 256
///      4    n message         UTF-8, for humans; never parse it
/// ```
public struct ErrorFrame: Hashable, Sendable {
    /// Longest message carried; longer ones are cut at a character boundary.
    public static let maxMessageBytes = 256
    /// What went wrong.
    public var code: ProtocolErrorCode
    /// Detail for humans; at most `maxMessageBytes`, however it is set.
    public var message: String {
        // Cut here too, not only in init: the length goes out as a u16 and peers refuse more than 256.
        didSet { message = Self.fitted(message) }
    }

    /// An error frame.
    public init(code: ProtocolErrorCode, message: String) {
        self.code = code
        self.message = Self.fitted(message)
    }

    private static func fitted(_ message: String) -> String {
        var m = message
        while m.utf8.count > maxMessageBytes { m.removeLast() }
        return m
    }

    /// Body bytes.
    public var bodySize: Int { 4 + message.utf8.count }

    /// Writes the body.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(code.rawValue)
        buffer.writeInteger(UInt16(message.utf8.count))
        buffer.writeString(message)
    }

    /// Reads a body of `length` bytes.
    public static func decode(body: inout ByteBuffer, requestID: UInt64) throws(ProtocolError) -> ErrorFrame {
        guard body.readableBytes >= 4 else { throw ProtocolError(.badLength, "error body shorter than 4 bytes", requestID: requestID) }
        let raw = body.readInteger(as: UInt16.self)!
        let length = Int(body.readInteger(as: UInt16.self)!)
        guard let code = ProtocolErrorCode(rawValue: raw) else {
            throw ProtocolError(.malformedField, "unknown error code \(raw)", requestID: requestID)
        }
        guard length <= maxMessageBytes, length == body.readableBytes else {
            throw ProtocolError(.badLength, "error message length \(length) does not match the body", requestID: requestID)
        }
        guard let bytes = body.readSlice(length: length),
              let message = String(validating: bytes.readableBytesView, as: UTF8.self)
        else {
            throw ProtocolError(.malformedField, "error message is not valid UTF-8", requestID: requestID)
        }
        return ErrorFrame(code: code, message: message)
    }
}
