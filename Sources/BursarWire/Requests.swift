public import NIOCore

/// CHECK: authorize one upstream request and reserve its estimate against every limit.
///
/// Body, 112 bytes:
/// ```
/// offset size field
///      0   32 key digest          SHA-256 of the API key secret
///     32   64 model               UTF-8, 1…64 bytes, NUL-padded; no NUL inside the name
///     96    4 input tokens        u32, estimated prompt tokens
///    100    4 max output tokens   u32
///    104    8 estimated cost      i64 nano-USD, 0 … 2^53−1, or −1: priced by bursar from the
///                                 organization's price table (`priceFromTable`)
/// ```
public struct CheckRequest: Hashable, Sendable {
    /// Body bytes.
    public static let bodySize = 112
    /// Whose key.
    public var digest: KeyDigest
    /// Which model.
    public var model: ModelName
    /// Estimated input tokens.
    public var inputTokens: UInt32
    /// The request's maximum output tokens.
    public var maxOutputTokens: UInt32
    /// The gateway's estimate of the cost, nano-USD, or `priceFromTable`.
    public var estimatedCost: NanoUSD

    /// The cost a request sends to have bursar price it from the organization's price table
    /// (SPEC §6.1): input tokens and maximum output tokens at the model's prices.
    public static let priceFromTable: NanoUSD = -1

    /// Whether bursar prices this request from the price table.
    public var pricedByTable: Bool { estimatedCost == Self.priceFromTable }

    /// A CHECK request.
    public init(digest: KeyDigest, model: ModelName, inputTokens: UInt32, maxOutputTokens: UInt32, estimatedCost: NanoUSD) {
        self.digest = digest
        self.model = model
        self.inputTokens = inputTokens
        self.maxOutputTokens = maxOutputTokens
        self.estimatedCost = estimatedCost
    }

    /// Tokens this request reserves against TPM: input plus maximum output.
    public var reservedTokens: Int64 { Int64(inputTokens) + Int64(maxOutputTokens) }

    /// Writes the body.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(digest.words.0)
        buffer.writeInteger(digest.words.1)
        buffer.writeInteger(digest.words.2)
        buffer.writeInteger(digest.words.3)
        let written = buffer.writeString(model.value)
        buffer.writeRepeatingByte(0, count: ModelName.fieldSize - written)
        buffer.writeInteger(inputTokens)
        buffer.writeInteger(maxOutputTokens)
        buffer.writeInteger(estimatedCost)
    }

    /// Reads a body of exactly `bodySize` bytes.
    public static func decode(body: inout ByteBuffer, requestID: UInt64) throws(ProtocolError) -> CheckRequest {
        let d0 = body.readInteger(as: UInt64.self)!, d1 = body.readInteger(as: UInt64.self)!
        let d2 = body.readInteger(as: UInt64.self)!, d3 = body.readInteger(as: UInt64.self)!
        let modelView = body.readSlice(length: ModelName.fieldSize)!
        let model = try decodeModel(modelView, requestID: requestID)
        let input = body.readInteger(as: UInt32.self)!
        let output = body.readInteger(as: UInt32.self)!
        let cost = body.readInteger(as: Int64.self)!
        guard (cost >= 0 && cost <= maxExactValue) || cost == priceFromTable else {
            throw ProtocolError(.malformedField, "estimated cost \(cost) is outside 0…\(maxExactValue) (or −1: priced by bursar)", requestID: requestID)
        }
        return CheckRequest(digest: KeyDigest(words: (d0, d1, d2, d3)), model: model, inputTokens: input, maxOutputTokens: output, estimatedCost: cost)
    }

    private static func decodeModel(_ field: ByteBuffer, requestID: UInt64) throws(ProtocolError) -> ModelName {
        // Over the raw bytes, not ByteBufferView: this runs once per CHECK.
        let decoded: Result<String, ProtocolError> = field.withUnsafeReadableBytes { raw in
            let end = raw.firstIndex(of: 0) ?? raw.count
            guard end > 0 else { return .failure(ProtocolError(.malformedField, "model name is empty", requestID: requestID)) }
            guard raw[end...].allSatisfy({ $0 == 0 }) else {
                return .failure(ProtocolError(.malformedField, "model field has bytes after its NUL padding", requestID: requestID))
            }
            guard let name = String(validating: UnsafeRawBufferPointer(rebasing: raw[..<end]), as: UTF8.self) else {
                return .failure(ProtocolError(.malformedField, "model name is not valid UTF-8", requestID: requestID))
            }
            return .success(name)
        }
        switch decoded {
        case .success(let name): return ModelName(validated: name)
        case .failure(let error): throw error
        }
    }
}

/// SETTLE: replace a reservation's estimate with the actual usage.
///
/// Body, 32 bytes:
/// ```
/// offset size field
///      0   16 reservation id      as returned by CHECK
///     16    4 actual input tokens u32
///     20    4 actual output tokens u32
///     24    8 actual cost         i64 nano-USD, 0 … 2^53−1, or −1: priced by bursar at the
///                                 prices its CHECK was priced at (`CheckRequest.priceFromTable`)
/// ```
public struct SettleRequest: Hashable, Sendable {
    /// Body bytes.
    public static let bodySize = 32
    /// Which reservation.
    public var reservation: ReservationID
    /// Actual input tokens.
    public var inputTokens: UInt32
    /// Actual output tokens.
    public var outputTokens: UInt32
    /// Actual cost, nano-USD, or `CheckRequest.priceFromTable`.
    public var cost: NanoUSD

    /// Whether bursar prices the actual usage (at the prices its reservation was made with).
    public var pricedByTable: Bool { cost == CheckRequest.priceFromTable }

    /// Of the input tokens, how many the upstream read from its cache, priced at the cached-input
    /// price when bursar prices the usage (at most `inputTokens`: the limiter clamps it). Not on the wire (a SETTLE frame's input is all priced
    /// as input): the gRPC front door sets it from Envoy's `cached_input_tokens` (SPEC §19.1).
    public var cachedInputTokens: UInt32 = 0

    /// A SETTLE request.
    public init(reservation: ReservationID, inputTokens: UInt32, outputTokens: UInt32, cost: NanoUSD) {
        self.reservation = reservation
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.cost = cost
    }

    /// Actual tokens, input plus output.
    public var tokens: Int64 { Int64(inputTokens) + Int64(outputTokens) }

    /// Writes the body.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeReservationID(reservation)
        buffer.writeInteger(inputTokens)
        buffer.writeInteger(outputTokens)
        buffer.writeInteger(cost)
    }

    /// Reads a body of exactly `bodySize` bytes.
    public static func decode(body: inout ByteBuffer, requestID: UInt64) throws(ProtocolError) -> SettleRequest {
        let id = body.readReservationID()!
        let input = body.readInteger(as: UInt32.self)!
        let output = body.readInteger(as: UInt32.self)!
        let cost = body.readInteger(as: Int64.self)!
        guard id != .none else { throw ProtocolError(.malformedField, "reservation id is all zero", requestID: requestID) }
        guard (cost >= 0 && cost <= maxExactValue) || cost == CheckRequest.priceFromTable else {
            throw ProtocolError(.malformedField, "actual cost \(cost) is outside 0…\(maxExactValue) (or −1: priced by bursar)", requestID: requestID)
        }
        return SettleRequest(reservation: id, inputTokens: input, outputTokens: output, cost: cost)
    }
}

/// RELEASE: the upstream call never happened; return the reserved tokens and cost.
///
/// Body, 16 bytes: the reservation id.
public struct ReleaseRequest: Hashable, Sendable {
    /// Body bytes.
    public static let bodySize = 16
    /// Which reservation.
    public var reservation: ReservationID

    /// A RELEASE request.
    public init(reservation: ReservationID) { self.reservation = reservation }

    /// Writes the body.
    public func encode(into buffer: inout ByteBuffer) { buffer.writeReservationID(reservation) }

    /// Reads a body of exactly `bodySize` bytes.
    public static func decode(body: inout ByteBuffer, requestID: UInt64) throws(ProtocolError) -> ReleaseRequest {
        let id = body.readReservationID()!
        guard id != .none else { throw ProtocolError(.malformedField, "reservation id is all zero", requestID: requestID) }
        return ReleaseRequest(reservation: id)
    }
}

/// AUTH: present a gateway credential (SPEC §6.5). The connection then serves only the
/// organizations the credential names.
///
/// Body, 32 bytes: the SHA-256 digest of the credential's secret. Any 32 bytes are valid.
public struct AuthRequest: Hashable, Sendable {
    /// Body bytes.
    public static let bodySize = 32
    /// SHA-256 of the credential's secret text (`bgw_…`).
    public var credentialDigest: KeyDigest

    /// An AUTH request.
    public init(credentialDigest: KeyDigest) { self.credentialDigest = credentialDigest }

    /// Writes the body.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(credentialDigest.words.0)
        buffer.writeInteger(credentialDigest.words.1)
        buffer.writeInteger(credentialDigest.words.2)
        buffer.writeInteger(credentialDigest.words.3)
    }

    /// Reads a body of exactly `bodySize` bytes.
    public static func decode(body: inout ByteBuffer) -> AuthRequest {
        let d0 = body.readInteger(as: UInt64.self)!, d1 = body.readInteger(as: UInt64.self)!
        let d2 = body.readInteger(as: UInt64.self)!, d3 = body.readInteger(as: UInt64.self)!
        return AuthRequest(credentialDigest: KeyDigest(words: (d0, d1, d2, d3)))
    }
}
