import BursarWire
import NIOCore
import Testing

@Suite("Wire fields")
struct FieldTests {
    // MARK: ModelName

    @Test("a 64-byte model name is accepted, ASCII or multi-byte")
    func modelName64() throws {
        let ascii = String(repeating: "m", count: 64)
        #expect(try ModelName(ascii).value == ascii)
        let multibyte = "a" + String(repeating: "日", count: 21)
        #expect(multibyte.utf8.count == 64)
        #expect(try ModelName(multibyte).value == multibyte)
    }

    @Test("a 65-byte model name is refused, never truncated")
    func modelName65() {
        for name in [String(repeating: "m", count: 65), "ab" + String(repeating: "日", count: 21)] {
            #expect(name.utf8.count == 65)
            let error = #expect(throws: ProtocolError.self) { try ModelName(name) }
            #expect(error?.code == .malformedField)
        }
    }

    @Test("an empty model name is refused")
    func modelNameEmpty() {
        let error = #expect(throws: ProtocolError.self) { try ModelName("") }
        #expect(error?.code == .malformedField)
    }

    @Test("a model name containing NUL is refused, wherever the NUL is")
    func modelNameNUL() {
        for name in ["gpt\u{0}4o", "\u{0}gpt", "gpt\u{0}", "\u{0}"] {
            let error = #expect(throws: ProtocolError.self) { try ModelName(name) }
            #expect(error?.code == .malformedField)
        }
    }

    @Test("a model name shorter than 64 bytes is NUL-padded to the 64-byte field")
    func modelNamePadding() throws {
        let request = CheckRequest(
            digest: KeyDigest(words: (1, 2, 3, 4)), model: try ModelName("é"), inputTokens: 0, maxOutputTokens: 0,
            estimatedCost: 0
        )
        let bytes = Frame(requestID: 1, body: .check(request)).bytes
        #expect(bytes.count == 16 + 112)
        #expect(Array(bytes[48..<112]) == [0xC3, 0xA9] + [UInt8](repeating: 0, count: 62))
    }

    // MARK: KeyDigest

    @Test("a key digest round-trips through lowercase hex and bytes")
    func digestHex() throws {
        let hex = "eca5eab9121dd2e59a132e42815689aec87dc99bc6eec316281bfac9a9a098f7"
        let digest = try #require(KeyDigest(hex: hex))
        #expect(digest.hex == hex)
        #expect(hexString(digest.bytes) == hex)
        #expect(KeyDigest(bytes: digest.bytes) == digest)
        #expect(digest.words.0 == 0xeca5_eab9_121d_d2e5)
        #expect(digest.words.3 == 0x281b_fac9_a9a0_98f7)
        #expect(KeyDigest(hex: hex.uppercased()) == digest)
        #expect(KeyDigest(hex: hex.uppercased())?.hex == hex)
    }

    @Test("a key digest refuses hex of the wrong length or with non-hex characters")
    func digestHexRefused() {
        let hex = String(repeating: "ab", count: 32)
        #expect(KeyDigest(hex: String(hex.dropLast(2))) == nil)
        #expect(KeyDigest(hex: hex + "ab") == nil)
        #expect(KeyDigest(hex: String(hex.dropLast()) + "g") == nil)
        #expect(KeyDigest(hex: "") == nil)
        #expect(KeyDigest(bytes: [UInt8](repeating: 0, count: 31)) == nil)
        #expect(KeyDigest(bytes: [UInt8](repeating: 0, count: 33)) == nil)
    }

    @Test("a key digest never prints itself")
    func digestDescription() throws {
        let digest = try #require(KeyDigest(hex: String(repeating: "5a", count: 32)))
        #expect(!"\(digest)".contains("5a5a"))
    }

    // MARK: ErrorFrame

    @Test("an error message over 256 bytes is cut to at most 256 bytes at a character boundary")
    func errorMessageTruncation() {
        let cases: [(String, String)] = [
            (String(repeating: "x", count: 300), String(repeating: "x", count: 256)),
            (String(repeating: "é", count: 200), String(repeating: "é", count: 128)),
            ("a" + String(repeating: "é", count: 200), "a" + String(repeating: "é", count: 127)),
            (String(repeating: "🚀", count: 70), String(repeating: "🚀", count: 64)),
            ("ab" + String(repeating: "🚀", count: 70), "ab" + String(repeating: "🚀", count: 63)),
            (String(repeating: "x", count: 255) + "日", String(repeating: "x", count: 255)),
        ]
        for (input, expected) in cases {
            let frame = ErrorFrame(code: .internalError, message: input)
            #expect(frame.message == expected)
            #expect(frame.message.utf8.count <= ErrorFrame.maxMessageBytes)
            #expect(frame.bodySize == 4 + frame.message.utf8.count)
        }
    }

    @Test("an error message of 256 bytes or fewer is kept as is")
    func errorMessageKept() {
        for message in ["", "bad", String(repeating: "é", count: 128), String(repeating: "x", count: 256)] {
            #expect(ErrorFrame(code: .badLength, message: message).message == message)
        }
    }

    @Test("an error message set after init is cut the same way, so the frame always encodes")
    func errorMessageAssigned() throws {
        var frame = ErrorFrame(code: .internalError, message: "")
        frame.message = String(repeating: "é", count: 40_000)
        #expect(frame.message == String(repeating: "é", count: 128))
        var buffer = ByteBuffer()
        Frame(requestID: 9, body: .error(frame)).encode(into: &buffer)
        #expect(buffer.readableBytes == 16 + 4 + 256)
        #expect(try Frame.decode(from: &buffer, direction: .toClient) == Frame(requestID: 9, body: .error(frame)))
    }

    @Test("a truncated error message still decodes to the same frame")
    func errorMessageTruncatedRoundTrip() throws {
        let frame = Frame(requestID: 77, body: .error(ErrorFrame(code: .malformedField, message: String(repeating: "模", count: 100))))
        var buffer = ByteBuffer(bytes: frame.bytes)
        #expect(frame.bytes.count == 16 + 4 + 255)
        #expect(try Frame.decode(from: &buffer, direction: .toClient) == frame)
    }

    // MARK: Reserved bytes and flag bits

    @Test("a receiver ignores the reserved bytes of SETTLE_RESULT and RELEASE_RESULT")
    func reservedBytesIgnored() throws {
        for type in [FrameType.settleResult, .releaseResult] {
            var bytes: [UInt8] = [0x42, 0x52, 0x01, type.rawValue, 0, 0, 0, 24, 0, 0, 0, 0, 0, 0, 0, 5]
            bytes += [0x00, 1, 2, 3, 4, 5, 6, 7]  // status applied, reserved bytes non-zero
            bytes += [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]  // cost delta -2
            bytes += [0, 0, 0, 0, 0, 0, 0, 3]  // token delta 3
            var buffer = ByteBuffer(bytes: bytes)
            let result = ReservationResult(status: .applied, costDelta: -2, tokenDelta: 3)
            let expected = Frame(requestID: 5, body: type == .settleResult ? .settleResult(result) : .releaseResult(result))
            #expect(try Frame.decode(from: &buffer, direction: .toClient) == expected)
            #expect(buffer.readableBytes == 0)
            // Re-encoded, the reserved bytes are zero again.
            #expect(Array(expected.bytes[17..<24]) == [0, 0, 0, 0, 0, 0, 0])
        }
    }

    @Test("a receiver keeps key flag bits it does not know and reads bit 0 as content logging disabled")
    func unknownKeyFlags() throws {
        let result = CheckResult(allowed: true, reason: .none, keyFlags: 0xFFFE, reservation: ReservationID(orgID: 1, sequence: 1))
        var buffer = ByteBuffer(bytes: Frame(requestID: 1, body: .checkResult(result)).bytes)
        let frame = try #require(try Frame.decode(from: &buffer, direction: .toClient))
        guard case .checkResult(let decoded) = frame.body else {
            Issue.record("decoded \(frame.body.type), not a CHECK_RESULT")
            return
        }
        #expect(decoded.keyFlags == 0xFFFE)
        #expect(!decoded.contentLoggingDisabled)
        #expect(CheckResult(allowed: true, reason: .none, keyFlags: 1).contentLoggingDisabled)
    }

    // MARK: DenyReason

    @Test("every deny reason maps to the HTTP status the spec gives it")
    func denyReasonHTTPStatus() {
        let table: [DenyReason: Int] = [
            .none: 200,
            .unknownKey: 401, .keyRevoked: 401, .keyExpired: 401,
            .creatorLostAccess: 403, .projectInactive: 403, .orgSuspended: 403, .modelNotAllowed: 403, .priceUnknown: 403,
            .keyRPM: 429, .keyTPM: 429, .projectRPM: 429, .projectTPM: 429,
            .keyBudget: 402, .projectBudget: 402, .orgCredits: 402,
            .requestTooLarge: 429, .keyLookupsThrottled: 429,
            .storeUnavailable: 503, .overloaded: 503,
        ]
        #expect(table.count == DenyReason.allCases.count)
        for reason in DenyReason.allCases {
            #expect(reason.httpStatus == table[reason], "\(reason)")
        }
    }

    @Test("deny reason, status and error codes keep their numbers and names")
    func codeNumbers() {
        let reasons = DenyReason.allCases.map { "\($0.rawValue) \($0)" }
        #expect(reasons == [
            "0 none", "1 unknown_key", "2 key_revoked", "3 key_expired", "4 creator_lost_access", "5 project_inactive",
            "6 org_suspended", "7 model_not_allowed", "8 key_rpm", "9 key_tpm", "10 project_rpm", "11 project_tpm",
            "12 key_budget", "13 project_budget", "14 org_credits", "15 request_too_large", "16 store_unavailable",
            "17 overloaded", "18 key_lookups_throttled", "19 price_unknown",
        ])
        let statuses = ReservationStatus.allCases.map { "\($0.rawValue) \($0)" }
        #expect(statuses == [
            "0 applied", "1 already_settled", "2 already_released", "3 expired", "4 unknown", "5 store_unavailable", "6 overloaded",
        ])
        let errors = ProtocolErrorCode.allCases.map { "\($0.rawValue) \($0)" }
        #expect(errors == [
            "1 bad_magic", "2 unsupported_version", "3 unknown_frame_type", "4 unexpected_frame_type", "5 bad_length",
            "6 frame_too_large", "7 malformed_field", "8 truncated", "9 internal_error",
            "10 too_many_connections", "11 idle_timeout", "12 frame_timeout", "13 unauthorized",
        ])
    }

    @Test("frame types keep their codes, fixed body sizes and directions")
    func frameTypes() {
        let table: [(FrameType, UInt8, Int?, Bool)] = [
            (.check, 0x01, 112, true), (.settle, 0x02, 32, true), (.release, 0x03, 16, true), (.ping, 0x04, 0, true),
            (.checkResult, 0x81, 112, false), (.settleResult, 0x82, 24, false), (.releaseResult, 0x83, 24, false),
            (.pong, 0x84, 0, false), (.auth, 0x05, 32, true), (.authResult, 0x85, 0, false), (.error, 0xFF, nil, false),
        ]
        #expect(table.count == FrameType.allCases.count)
        for (type, code, size, request) in table {
            #expect(type.rawValue == code)
            #expect(type.fixedBodyLength == size)
            #expect(type.isRequest == request)
        }
        #expect(FrameHeader.size == 16)
        #expect(FrameHeader.maxBodyLength == 4096)
        #expect(maxExactValue == 9_007_199_254_740_991)
    }

    // MARK: KeyDigest equality

    @Test("digests compare equal exactly when all 32 bytes are, whichever byte differs (constant-time ==: no early exit)")
    func digestEquality() throws {
        let bytes = (0..<32).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        let a = try #require(KeyDigest(bytes: bytes))
        #expect(a == KeyDigest(bytes: bytes)!)
        #expect(a == KeyDigest(hex: a.hex)!)
        for i in 0..<32 {
            for bit in [0, 7] {
                var other = bytes
                other[i] ^= 1 << UInt8(bit)
                #expect(a != KeyDigest(bytes: other)!, "byte \(i) bit \(bit)")
            }
        }
        #expect(KeyDigest(words: (0, 0, 0, 0)) == KeyDigest(words: (0, 0, 0, 0)))
        #expect(KeyDigest(words: (0, 0, 0, 1)) != KeyDigest(words: (1, 0, 0, 0)))
        #expect(KeyDigest(words: (.max, 0, 0, 0)) != KeyDigest(words: (0, .max, 0, 0)))
    }
}
