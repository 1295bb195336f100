import BursarWire
import Foundation
import NIOCore
import Testing

/// One entry of proto/vectors/vectors.json.
struct Vector: Decodable, Sendable, CustomTestStringConvertible {
    /// The expected decoding of a valid frame, field by field, as the spec names them.
    struct Fields: Decodable, Sendable {
        struct Reservation: Decodable, Sendable {
            var orgId: UInt64
            var sequence: UInt64
        }

        var type: UInt8
        var typeName: String
        var requestId: UInt64
        // CHECK
        var keyDigest: String?
        var model: String?
        var inputTokens: UInt32?
        var maxOutputTokens: UInt32?
        var estimatedCost: Int64?
        // AUTH
        var credentialDigest: String?
        // SETTLE (and RELEASE: reservation only)
        var reservation: Reservation?
        var outputTokens: UInt32?
        var cost: Int64?
        // CHECK_RESULT
        var decision: UInt8?
        var decisionName: String?
        var reason: UInt8?
        var reasonName: String?
        var keyFlags: UInt16?
        var retryAfterMs: UInt32?
        var orgId: UInt64?
        var projectId: UInt64?
        var keyId: UInt64?
        var requestsLimit: UInt32?
        var requestsRemaining: UInt32?
        var requestsResetMs: UInt32?
        var tokensLimit: UInt32?
        var tokensRemaining: UInt32?
        var tokensResetMs: UInt32?
        var keyBudgetRemaining: Int64?
        var keyBudgetResetsAtMs: Int64?
        var projectBudgetRemaining: Int64?
        var projectBudgetResetsAtMs: Int64?
        var orgCreditsRemaining: Int64?
        // SETTLE_RESULT / RELEASE_RESULT
        var status: UInt8?
        var statusName: String?
        var costDelta: Int64?
        var tokenDelta: Int64?
        // ERROR
        var code: UInt16?
        var codeName: String?
        var message: String?
    }

    /// How a stream that must be refused is refused.
    struct Refusal: Decodable, Sendable {
        var code: UInt16
        var name: String
        var requestId: UInt64
        /// The reference decoder refuses the stream as soon as it holds this many bytes.
        var detectedAfter: Int
    }

    var name: String
    var direction: String
    var hex: String
    var frame: Fields?
    var error: Refusal?
    var incomplete: Bool?

    var testDescription: String { name }

    var frameDirection: Frame.Direction {
        switch direction {
        case "to_server": return .toServer
        case "to_client": return .toClient
        default: fatalError("vector \(name): unknown direction \(direction)")
        }
    }

    /// The whole byte stream.
    var bytes: [UInt8] { decodeHex(hex) }

    /// The stream in a fresh buffer.
    var buffer: ByteBuffer { ByteBuffer(bytes: bytes) }
}

/// The vectors file, loaded once from the repository (not from test resources).
enum Vectors {
    static let url = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // BursarWireTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // package root
        .appendingPathComponent("proto/vectors/vectors.json")

    struct Document: Decodable {
        var version: Int
        var vectors: [Vector]
    }

    static let document: Document = {
        do {
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            return try decoder.decode(Document.self, from: Data(contentsOf: url))
        } catch {
            fatalError("cannot load \(url.path): \(error)")
        }
    }()

    static var all: [Vector] { document.vectors }
    static var valid: [Vector] { all.filter { $0.frame != nil } }
    static var refused: [Vector] { all.filter { $0.error != nil } }
    static var incomplete: [Vector] { all.filter { $0.incomplete == true } }

    static func valid(_ direction: Frame.Direction) -> [Vector] { valid.filter { $0.frameDirection == direction } }
}

/// The spec's name of each frame type.
func specName(_ type: FrameType) -> String {
    switch type {
    case .check: return "check"
    case .settle: return "settle"
    case .release: return "release"
    case .ping: return "ping"
    case .auth: return "auth"
    case .authResult: return "auth_result"
    case .checkResult: return "check_result"
    case .settleResult: return "settle_result"
    case .releaseResult: return "release_result"
    case .pong: return "pong"
    case .error: return "error"
    }
}

/// Bytes from hex; traps on bad input (the vectors file is generated, so bad hex is a bug there).
func decodeHex(_ hex: String) -> [UInt8] {
    let digits = Array(hex.utf8)
    precondition(digits.count % 2 == 0, "odd hex length")
    func value(_ c: UInt8) -> UInt8 {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        default: preconditionFailure("not lowercase hex: \(c)")
        }
    }
    return stride(from: 0, to: digits.count, by: 2).map { value(digits[$0]) << 4 | value(digits[$0 + 1]) }
}

/// A missing JSON field in a vector: the vector does not match its type.
struct MissingField: Error, CustomStringConvertible {
    var field: String
    var description: String { "vector lacks field \(field)" }
}

func required<T>(_ value: T?, _ field: String) throws -> T {
    guard let value else { throw MissingField(field: field) }
    return value
}

extension Vector.Fields {
    /// The frame these JSON fields describe, built from them directly (never by decoding bytes).
    func expectedFrame() throws -> Frame {
        let type = try #require(FrameType(rawValue: type), "unknown type code \(type)")
        #expect(specName(type) == typeName)
        let body: Frame.Body
        switch type {
        case .check:
            let digestHex = try required(keyDigest, "key_digest")
            let digest = try #require(KeyDigest(hex: digestHex), "bad digest hex \(digestHex)")
            body = .check(
                CheckRequest(
                    digest: digest, model: try ModelName(required(model, "model")),
                    inputTokens: try required(inputTokens, "input_tokens"),
                    maxOutputTokens: try required(maxOutputTokens, "max_output_tokens"),
                    estimatedCost: try required(estimatedCost, "estimated_cost")
                )
            )
        case .settle:
            body = .settle(
                SettleRequest(
                    reservation: try expectedReservation(),
                    inputTokens: try required(inputTokens, "input_tokens"),
                    outputTokens: try required(outputTokens, "output_tokens"),
                    cost: try required(cost, "cost")
                )
            )
        case .release:
            body = .release(ReleaseRequest(reservation: try expectedReservation()))
        case .ping:
            body = .ping
        case .pong:
            body = .pong
        case .auth:
            let digestHex = try required(credentialDigest, "credential_digest")
            let digest = try #require(KeyDigest(hex: digestHex), "bad digest hex \(digestHex)")
            body = .auth(AuthRequest(credentialDigest: digest))
        case .authResult:
            body = .authResult
        case .checkResult:
            let decision = try required(decision, "decision")
            #expect(decisionName == (decision == 1 ? "allow" : "deny"))
            let reasonCode = try required(reason, "reason")
            let reason = try #require(DenyReason(rawValue: reasonCode), "unknown reason \(reasonCode)")
            #expect(reason.description == reasonName)
            body = .checkResult(
                CheckResult(
                    allowed: decision == 1, reason: reason,
                    keyFlags: try required(keyFlags, "key_flags"),
                    retryAfterMs: try required(retryAfterMs, "retry_after_ms"),
                    reservation: try expectedReservation(),
                    orgID: try required(orgId, "org_id"),
                    projectID: try required(projectId, "project_id"),
                    keyID: try required(keyId, "key_id"),
                    requestsLimit: try required(requestsLimit, "requests_limit"),
                    requestsRemaining: try required(requestsRemaining, "requests_remaining"),
                    requestsResetMs: try required(requestsResetMs, "requests_reset_ms"),
                    tokensLimit: try required(tokensLimit, "tokens_limit"),
                    tokensRemaining: try required(tokensRemaining, "tokens_remaining"),
                    tokensResetMs: try required(tokensResetMs, "tokens_reset_ms"),
                    keyBudgetRemaining: try required(keyBudgetRemaining, "key_budget_remaining"),
                    keyBudgetResetAtMs: try required(keyBudgetResetsAtMs, "key_budget_resets_at_ms"),
                    projectBudgetRemaining: try required(projectBudgetRemaining, "project_budget_remaining"),
                    projectBudgetResetAtMs: try required(projectBudgetResetsAtMs, "project_budget_resets_at_ms"),
                    orgCreditsRemaining: try required(orgCreditsRemaining, "org_credits_remaining")
                )
            )
        case .settleResult, .releaseResult:
            let statusCode = try required(status, "status")
            let status = try #require(ReservationStatus(rawValue: statusCode), "unknown status \(statusCode)")
            #expect(status.description == statusName)
            let result = ReservationResult(
                status: status, costDelta: try required(costDelta, "cost_delta"),
                tokenDelta: try required(tokenDelta, "token_delta")
            )
            body = type == .settleResult ? .settleResult(result) : .releaseResult(result)
        case .error:
            let raw = try required(code, "code")
            let code = try #require(ProtocolErrorCode(rawValue: raw), "unknown error code \(raw)")
            #expect(code.description == codeName)
            body = .error(ErrorFrame(code: code, message: try required(message, "message")))
        }
        return Frame(requestID: requestId, body: body)
    }

    private func expectedReservation() throws -> ReservationID {
        let r = try required(reservation, "reservation")
        return ReservationID(orgID: r.orgId, sequence: r.sequence)
    }

    /// The string fields, as exact bytes: `String ==` compares canonically, the wire does not.
    var stringBytes: [[UInt8]] { [model, message].compactMap { $0.map { Array($0.utf8) } } }
}

extension Frame {
    /// The string fields of a decoded frame, as exact bytes.
    var stringBytes: [[UInt8]] {
        switch body {
        case .check(let c): return [Array(c.model.value.utf8)]
        case .error(let e): return [Array(e.message.utf8)]
        default: return []
        }
    }
}
