import BursarClient
import BursarLimits
import BursarRedis
import BursarServer
import BursarStore
import BursarWire
import Foundation
import NIOCore
import NIOPosix
import Testing

/// Malformed and hostile byte streams sent to a real bursard over raw sockets (SPEC 11): each is
/// answered with one ERROR carrying the right code and request id, after every frame accepted
/// before it, and then the connection closes; nothing is debited and the server keeps serving.
@Suite("bad input on the data plane")
struct BadInputTests {
    @Test("a malformed stream is answered with exactly one ERROR with its code and request id, then EOF", arguments: BadInputCase.all)
    func refused(_ bad: BadInputCase) async throws {
        try await withHarness { h in
            let answers = try await RawConnection.exchange(h, bad.bytes, halfClose: bad.halfClose)
            expectRefused(answers, bad.code, requestID: bad.requestID)
            #expect(h.server.connectionStats.protocolErrors[bad.code].count == 1)
        }
    }

    @Test("an unsupported version is refused with a message naming the version the server speaks")
    func versionMessage() async throws {
        try await withHarness { h in
            // SPEC 3: the version byte is at offset 2.
            let bytes = patch(Valid.ping(5), at: Offset.version, [2])
            let answers = try await RawConnection.exchange(h, bytes)
            expectRefused(answers, .unsupportedVersion, requestID: 5)
            if case .error(let e)? = answers.frames.first?.body { #expect(e.message.contains("version 1"), "\(e.message)") }
        }
    }

    @Test("frames accepted before the bad one are answered first, and the ERROR comes last")
    func acceptedFramesFirst() async throws {
        try await withHarness { h in
            let w = try await h.world()
            let bytes = Valid.ping(1) + Valid.check(2, digest: w.digest) + pseudoRandomBytes(count: 40, seed: 7)
            let answers = try await RawConnection.exchange(h, bytes)
            expectClosed(answers)
            #expect(answers.undecoded.isEmpty && answers.decodeError == nil, "\(answers)")
            try #require(answers.frames.count == 3, "\(answers)")
            // PONG and CHECK_RESULT may come in either order; the ERROR is last.
            let first = answers.frames.prefix(2)
            #expect(first.contains(Frame(requestID: 1, body: .pong)))
            let result = first.first { $0.requestID == 2 }
            guard case .checkResult(let r)? = result?.body else {
                Issue.record("no CHECK_RESULT for request 2: \(answers)")
                return
            }
            #expect(r.allowed && r.keyID == w.key.key.id)
            guard case .error(let e) = answers.frames[2].body else {
                Issue.record("the last frame is not an ERROR: \(answers)")
                return
            }
            #expect(e.code == .badMagic && answers.frames[2].requestID == 0)
        }
    }

    @Test("frames after the bad one are neither read nor answered")
    func framesAfterTheBadOneIgnored() async throws {
        try await withHarness { h in
            let w = try await h.world()
            // SPEC 3: version at offset 2. Request 7 is bad; the CHECK and PING after it must not run.
            let bad = patch(Valid.ping(7), at: Offset.version, [9])
            let bytes = Valid.ping(1) + bad + Valid.check(8, digest: w.digest) + Valid.ping(9)
            let answers = try await RawConnection.exchange(h, bytes)
            #expect(answers.frames.map(\.requestID) == [1, 7], "\(answers)")
            #expect(answers.frames.first?.body == .pong)
            if case .error(let e)? = answers.frames.last?.body { #expect(e.code == .unsupportedVersion) }
            expectClosed(answers)
            // The CHECK behind the bad frame was never attempted: the next attempt is the engine's first.
            let c = try await h.connect()
            #expect(try ReservationSequence.counter(of: h.name(try await c.check(.make(w.digest))).sequence) == 1)
            await c.close()
        }
    }

    @Test("whole frames before a frame cut short by a half-close are answered, then ERROR truncated")
    func truncatedAfterWholeFrames() async throws {
        try await withHarness { h in
            let w = try await h.world()
            let bytes = Valid.ping(1) + Valid.check(2, digest: w.digest) + Array(Valid.check(3, digest: w.digest).prefix(50))
            let answers = try await RawConnection.exchange(h, bytes, halfClose: true)
            expectClosed(answers)
            try #require(answers.frames.count == 3, "\(answers)")
            #expect(Set(answers.frames.prefix(2).map(\.requestID)) == [1, 2])
            guard case .error(let e) = answers.frames[2].body else {
                Issue.record("the last frame is not an ERROR: \(answers)")
                return
            }
            // The cut frame's 16-byte header was in, so the ERROR carries its request id.
            #expect(e.code == .truncated && answers.frames[2].requestID == 3)
        }
    }

    @Test("nothing is debited for a rejected frame")
    func nothingDebited() async throws {
        try await withHarness { h in
            let budget: Int64 = 5_000
            let w = try await h.world(metered: true, credits: 10_000, limits: KeyLimits(budget: budget, rpm: 10, tpm: 1_000))
            let org = w.org.id, key = w.key.key.id
            let month = SpendWindow.containing(try await h.clockUs(org: org) / 1000, period: .monthly).startMs
            let keySpend = Keyspace.keySpend(org, key, window: String(month))
            let projectSpend = Keyspace.projectSpend(org, w.project.id, window: String(month))
            let buckets = Keyspace.buckets(org, scope: "k", id: key)

            // SPEC 6.1: estimated_cost at body offset 104, model at body offset 32.
            let valid = Valid.check(11, digest: w.digest, cost: 1_000)
            let rejected = [
                patch(valid, at: Offset.checkCost, bigEndian(Int64(-1_000))),
                patch(valid, at: Offset.checkCost, bigEndian(Int64(1) << 53)),
                patch(valid, at: Offset.checkModel, modelField(Array("gp".utf8) + [0] + Array("t-5".utf8))),
            ]
            for bytes in rejected {
                let answers = try await RawConnection.exchange(h, bytes)
                expectRefused(answers, .malformedField, requestID: 11)
            }
            #expect(try await h.store.credits(org) == 10_000)
            #expect(try await h.integer(keySpend) == 0)
            #expect(try await h.integer(projectSpend) == 0)
            #expect(try await h.redis.send(RedisCommand("EXISTS", buckets)).int == 0)

            // A valid CHECK on a new connection sees the whole budget, credits and rate limits.
            let c = try await h.connect()
            let r = try await c.check(.make(w.digest, input: 10, output: 10, cost: 1_000))
            #expect(r.allowed)
            #expect(try ReservationSequence.counter(of: h.name(r).sequence) == 1)
            #expect(r.keyBudgetRemaining == budget - 1_000)
            #expect(r.orgCreditsRemaining == 9_000)
            #expect(r.requestsRemaining == 9 && r.tokensRemaining == 980)
            await c.close()
            // The counters read above are the ones a CHECK moves.
            #expect(try await h.integer(keySpend) == 1_000)
            #expect(try await h.integer(projectSpend) == 1_000)
            let pair = try #require(RateBuckets(reply: try await h.redis.send(RedisCommand("GET", buckets))))
            #expect(pair.rpmLevel == RateBuckets.scale && pair.tpmLevel == 20 * RateBuckets.scale)
        }
    }

    @Test("the server keeps serving after bad input, on open connections and new ones")
    func keepsServing() async throws {
        try await withHarness { h in
            let w = try await h.world()
            let before = try await h.connect()
            #expect(try await before.check(.make(w.digest)).allowed)
            for seed: UInt64 in 1...3 {
                let answers = try await RawConnection.exchange(h, pseudoRandomBytes(count: 64, seed: seed))
                expectRefused(answers, .badMagic, requestID: 0, othersOpen: 1)
            }
            let oversized = try await RawConnection.exchange(h, Array(patch(Valid.ping(4), at: Offset.bodyLength, bigEndian(UInt32.max)).prefix(16)))
            expectRefused(oversized, .frameTooLarge, requestID: 4, othersOpen: 1)

            try await before.ping()
            #expect(try await before.check(.make(w.digest)).allowed)
            await before.close()
            let after = try await h.connect()
            try await after.ping()
            let r = try await after.check(.make(w.digest))
            #expect(try r.allowed && ReservationSequence.counter(of: h.name(r).sequence) == 3)
            await after.close()
            // And over a raw socket too, in the same stream shape the bad connections used.
            let raw = try await RawConnection.exchange(h, Valid.ping(41) + Valid.check(42, digest: w.digest), halfClose: true)
            #expect(raw.frames.count == 2, "\(raw)")
            expectClosed(raw)
        }
    }

    @Test("a half-close after whole frames is answered, then the connection closes without an ERROR")
    func halfCloseAfterWholeFrames() async throws {
        try await withHarness { h in
            let pong = try await RawConnection.exchange(h, Valid.ping(1), halfClose: true)
            #expect(pong.frames == [Frame(requestID: 1, body: .pong)], "\(pong)")
            #expect(pong.undecoded.isEmpty && pong.decodeError == nil, "\(pong)")
            expectClosed(pong)

            // A CHECK still waiting for Redis when the input closes is answered before the close.
            let w = try await h.world()
            let both = try await RawConnection.exchange(h, Valid.ping(2) + Valid.check(3, digest: w.digest), halfClose: true)
            #expect(both.undecoded.isEmpty && both.decodeError == nil, "\(both)")
            expectClosed(both)
            #expect(both.frames.count == 2, "\(both)")
            #expect(both.frames.contains(Frame(requestID: 2, body: .pong)))
            let check = both.frames.first { $0.requestID == 3 }
            guard case .checkResult(let r)? = check?.body else {
                Issue.record("no CHECK_RESULT for request 3: \(both)")
                return
            }
            #expect(r.allowed)
            #expect(!both.frames.contains { $0.body.type == .error })
            // The answer was delivered, so the reservation stands: nothing released it as an orphan.
            #expect(h.engine.stats.orphanedAdmissionsReleased.load(ordering: .relaxed) == 0)
        }
    }

    @Test("pipelined requests are answered and matched by request id")
    func pipelined() async throws {
        try await withHarness { h in
            let w = try await h.world()
            let ids = (0..<50).map { 0x7000_0000_0000_0000 + UInt64($0) * 977 }
            let conn = try await RawConnection.open(.tcp(h.port), server: h.server, untilFrames: ids.count)
            try await conn.send(ids.flatMap { Valid.check($0, digest: w.digest) })
            let answers = try await conn.answers()
            #expect(answers.frames.count == ids.count, "\(answers)")
            #expect(answers.undecoded.isEmpty && answers.decodeError == nil)
            #expect(Set(answers.frames.map(\.requestID)) == Set(ids))
            var sequences = Set<UInt64>()
            for frame in answers.frames {
                guard case .checkResult(let r) = frame.body, r.allowed else {
                    Issue.record("request \(frame.requestID) was not an allowed CHECK_RESULT: \(frame)")
                    continue
                }
                sequences.insert(ReservationSequence.counter(of: try h.name(r).sequence))
            }
            #expect(sequences == Set(1...UInt64(ids.count)))
        }
    }

    @Test("the unix socket listener serves CHECKs and refuses bad input like TCP")
    func unixSocket() async throws {
        try await withHarness { h in
            let w = try await h.world()
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bursar-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let path = dir.appendingPathComponent("bursard.sock").path
            let server = DataPlaneServer(
                configuration: ListenerConfiguration(host: "127.0.0.1", port: 0, unixSocketPath: path), engine: h.engine,
                group: MultiThreadedEventLoopGroup.singleton, logger: Harness.logger)
            try await server.start()
            do {
                let c = try await BursarConnection.connect(unixSocketPath: path)
                try await c.ping()
                let r = try await c.check(.make(w.digest))
                #expect(try r.allowed && r.keyID == w.key.key.id && ReservationSequence.counter(of: h.name(r).sequence) == 1)
                await c.close()

                let bad = try await RawConnection.exchange(.unix(path), server: server, pseudoRandomBytes(count: 32, seed: 99))
                expectRefused(bad, .badMagic, requestID: 0)
                #expect(server.connectionStats.protocolErrors[.badMagic].count == 1)
            } catch {
                await server.stop()
                throw error
            }
            await server.stop()
        }
    }

    @Test("a connection the server closes reaches EOF even while a child process spawned after it still runs")
    func closeReachesClientWhileChildRuns() async throws {
        try await withHarness { h in
            let conn = try await RawConnection.open(.tcp(h.port), server: h.server)
            // The server must have accepted the connection, so that its socket exists at the spawn.
            var waited = 0
            while h.server.connectionStats.open.load(ordering: .relaxed) == 0 && waited < 400 {
                try await Task.sleep(for: .milliseconds(5))
                waited += 1
            }
            #expect(h.server.connectionStats.open.load(ordering: .relaxed) == 1)
            // What bursard's EmbeddedRedisService does when it restarts redis-server while gateways are connected.
            let child = try RedisServerProcess.ephemeral()
            defer { child.stop() }
            try await conn.send(pseudoRandomBytes(count: 8, seed: 5))
            let answers = try await conn.answers(timeout: .seconds(2))
            #expect(answers.frames.map(\.body.type) == [.error], "\(answers)")
            #expect((answers.serverOpenAtDeadline ?? 0) == 0, "the server closed its end")
            // Regression: ChildProcess once let redis-server inherit bursard's sockets, withholding the FIN.
            #expect(answers.closed, "\(answers)")
        }
    }
}


// MARK: - The cases

/// One malformed stream and the single ERROR it must produce.
struct BadInputCase: Sendable, CustomTestStringConvertible {
    /// What is wrong, for the test report.
    var name: String
    /// Everything the client sends, in one write.
    var bytes: [UInt8]
    /// Whether the client then shuts down its write side.
    var halfClose = false
    /// The expected ERROR code.
    var code: ProtocolErrorCode
    /// The expected ERROR request id: the offending header's, or 0 when it was unreadable.
    var requestID: UInt64

    var testDescription: String { "\(name) → \(code)" }

    /// A request id that uses all 8 bytes, so a byte-order or truncation slip shows.
    static let id: UInt64 = 0xC0FF_EE00_DEAD_BEEF

    static let all: [BadInputCase] = magic + header + lengths + fields + truncation + garbage

    // SPEC 11.2 step 1: checked per byte as it arrives, before a header is complete; id 0.
    static let magic: [BadInputCase] = [
        BadInputCase(name: "bad magic, first byte", bytes: patch(Valid.check(id), at: Offset.magic, [0x43]), code: .badMagic, requestID: 0),
        BadInputCase(name: "bad magic, second byte", bytes: patch(Valid.check(id), at: Offset.magic + 1, [0x53]), code: .badMagic, requestID: 0),
        BadInputCase(name: "bad magic, lowercase \"br\"", bytes: patch(Valid.check(id), at: Offset.magic, Array("br".utf8)), code: .badMagic, requestID: 0),
        // No half-close and no more bytes: the server must not wait for a whole header.
        BadInputCase(name: "one wrong byte and nothing more", bytes: [0x00], code: .badMagic, requestID: 0),
        BadInputCase(name: "\"B\" then a wrong byte and nothing more", bytes: [0x42, 0x00], code: .badMagic, requestID: 0),
        BadInputCase(name: "a stray HTTP request", bytes: Array("GET / HTTP/1.1\r\nHost: bursard\r\n\r\n".utf8), code: .badMagic, requestID: 0),
    ]

    // SPEC 11.2 step 2, in its order: version, type known, type direction, too large, length.
    static let header: [BadInputCase] = [
        BadInputCase(name: "version 2", bytes: patch(Valid.check(id), at: Offset.version, [2]), code: .unsupportedVersion, requestID: id),
        BadInputCase(name: "version 0", bytes: patch(Valid.ping(id), at: Offset.version, [0]), code: .unsupportedVersion, requestID: id),
        BadInputCase(name: "unknown type 0x06", bytes: patch(Valid.ping(id), at: Offset.type, [0x06]), code: .unknownFrameType, requestID: id),
        BadInputCase(name: "unknown type 0x00", bytes: patch(Valid.ping(id), at: Offset.type, [0x00]), code: .unknownFrameType, requestID: id),
        BadInputCase(name: "unknown answer-range type 0x86", bytes: patch(Valid.ping(id), at: Offset.type, [0x86]), code: .unknownFrameType, requestID: id),
        BadInputCase(name: "AUTH_RESULT sent to the server", bytes: Frame(requestID: id, body: .authResult).bytes, code: .unexpectedFrameType, requestID: id),
        BadInputCase(name: "AUTH with a 31-byte body", bytes: header(type: 0x05, length: 31) + Array(repeating: 0, count: 31), code: .badLength, requestID: id),
        BadInputCase(
            name: "CHECK_RESULT sent to the server",
            bytes: Frame(requestID: id, body: .checkResult(.deny(.unknownKey))).bytes, code: .unexpectedFrameType, requestID: id),
        BadInputCase(name: "PONG sent to the server", bytes: Frame(requestID: id, body: .pong).bytes, code: .unexpectedFrameType, requestID: id),
        BadInputCase(
            name: "SETTLE_RESULT sent to the server",
            bytes: Frame(requestID: id, body: .settleResult(ReservationResult(status: .applied))).bytes, code: .unexpectedFrameType, requestID: id),
        BadInputCase(
            name: "ERROR sent to the server",
            bytes: Frame(requestID: id, body: .error(ErrorFrame(code: .internalError, message: "no"))).bytes, code: .unexpectedFrameType,
            requestID: id),
        // Two faults in one header: the earlier check in the spec's order wins.
        BadInputCase(
            name: "version 2 and unknown type", bytes: patch(patch(Valid.ping(id), at: Offset.version, [2]), at: Offset.type, [0x06]),
            code: .unsupportedVersion, requestID: id),
        BadInputCase(
            name: "unknown type and body length 2^32-1", bytes: header(type: 0x06, length: .max), code: .unknownFrameType, requestID: id),
        BadInputCase(
            name: "CHECK_RESULT type and body length 2^32-1", bytes: header(type: 0x81, length: .max), code: .unexpectedFrameType, requestID: id),
    ]

    // SPEC 11.2 step 2: frame_too_large before bad_length, both before any body byte is awaited.
    static let lengths: [BadInputCase] = [
        BadInputCase(name: "CHECK announcing 111 bytes", bytes: withLength(Array(Valid.check(id).dropLast()), 111), code: .badLength, requestID: id),
        BadInputCase(name: "PING announcing 1 byte", bytes: withLength(Valid.ping(id) + [0], 1), code: .badLength, requestID: id),
        BadInputCase(name: "SETTLE announcing RELEASE's 16 bytes", bytes: withLength(Array(Valid.settle(id).prefix(32)), 16), code: .badLength, requestID: id),
        // Header only, no body sent and no half-close: the answer cannot depend on the body.
        BadInputCase(name: "CHECK header announcing 4096 bytes", bytes: header(type: 0x01, length: 4096), code: .badLength, requestID: id),
        BadInputCase(name: "CHECK header announcing 4097 bytes", bytes: header(type: 0x01, length: 4097), code: .frameTooLarge, requestID: id),
        BadInputCase(name: "CHECK header announcing 2^32-1 bytes", bytes: header(type: 0x01, length: .max), code: .frameTooLarge, requestID: id),
        BadInputCase(name: "PING header announcing 4097 bytes", bytes: header(type: 0x04, length: 4097), code: .frameTooLarge, requestID: id),
    ]

    // SPEC 11.2 step 3 and 5: body fields outside their domains.
    static let fields: [BadInputCase] = {
        func model(_ name: String, _ field: [UInt8]) -> BadInputCase {
            BadInputCase(name: "model \(name)", bytes: patch(Valid.check(id), at: Offset.checkModel, field), code: .malformedField, requestID: id)
        }
        func cost(_ value: Int64) -> BadInputCase {
            BadInputCase(
                name: "CHECK cost \(value)", bytes: patch(Valid.check(id), at: Offset.checkCost, bigEndian(value)), code: .malformedField,
                requestID: id)
        }
        let gpt5 = Array("gpt-5".utf8)
        var afterPadding = modelField(gpt5)
        afterPadding[63] = UInt8(ascii: "x")
        return [
            model("empty", modelField([])),
            model("with a NUL inside", modelField(Array("gp".utf8) + [0] + Array("t-5".utf8))),
            model("with a byte after its padding", afterPadding),
            model("starting with 0xFF", modelField([0xFF] + gpt5)),
            model("with an overlong \"/\" (C0 AF)", modelField(gpt5 + [0xC0, 0xAF])),
            model("with a UTF-16 surrogate (ED A0 80)", modelField(gpt5 + [0xED, 0xA0, 0x80])),
            model("ending in a truncated sequence (E2 82)", modelField(gpt5 + [0xE2, 0x82])),
            model("of 64 bytes ending in a truncated sequence", Array(repeating: UInt8(ascii: "a"), count: 62) + [0xE6, 0x97]),
            cost(-2),
            cost(.min),
            cost(1 << 53),
            cost(.max),
            BadInputCase(
                name: "SETTLE with an all-zero reservation",
                bytes: patch(patch(Valid.settle(id), at: Offset.settleSequence, bigEndian(UInt64(0))), at: Offset.settleOrg, bigEndian(UInt64(0))),
                code: .malformedField, requestID: id),
            BadInputCase(
                name: "SETTLE cost -2", bytes: patch(Valid.settle(id), at: Offset.settleCost, bigEndian(Int64(-2))), code: .malformedField,
                requestID: id),
            BadInputCase(
                name: "SETTLE cost 2^53", bytes: patch(Valid.settle(id), at: Offset.settleCost, bigEndian(Int64(1) << 53)), code: .malformedField,
                requestID: id),
            BadInputCase(
                name: "RELEASE with an all-zero reservation",
                bytes: patch(patch(Valid.release(id), at: Offset.releaseSequence, bigEndian(UInt64(0))), at: Offset.releaseOrg, bigEndian(UInt64(0))),
                code: .malformedField, requestID: id),
        ]
    }()

    // SPEC 11.2 step 4: the client half-closes inside a frame.
    static let truncation: [BadInputCase] = [
        BadInputCase(name: "first 50 bytes of a CHECK", bytes: Array(Valid.check(id).prefix(50)), halfClose: true, code: .truncated, requestID: id),
        BadInputCase(name: "a CHECK header alone", bytes: Array(Valid.check(id).prefix(16)), halfClose: true, code: .truncated, requestID: id),
        BadInputCase(name: "first 10 bytes of a header", bytes: Array(Valid.check(id).prefix(10)), halfClose: true, code: .truncated, requestID: 0),
        BadInputCase(name: "a lone \"B\"", bytes: [0x42], halfClose: true, code: .truncated, requestID: 0),
    ]

    static let garbage: [BadInputCase] = [(1, 11), (16, 12), (300, 13)].map { count, seed in
        BadInputCase(name: "\(count) random bytes", bytes: pseudoRandomBytes(count: count, seed: seed), code: .badMagic, requestID: 0)
    }

    /// A bare 16-byte header (SPEC 3) with no body.
    static func header(type: UInt8, length: UInt32) -> [UInt8] {
        [0x42, 0x52, 1, type] + bigEndian(length) + bigEndian(id)
    }

    /// Frame bytes with their `body_length` (SPEC 3, offset 4) replaced.
    static func withLength(_ bytes: [UInt8], _ length: UInt32) -> [UInt8] {
        patch(bytes, at: Offset.bodyLength, bigEndian(length))
    }
}

// MARK: - Building frames

/// Byte offsets inside a whole frame (16-byte header, then the body), from the layouts in proto/SPEC.md.
private enum Offset {
    // SPEC 3, header: magic 0–1, version 2, type 3, body_length 4–7, request_id 8–15.
    static let magic = 0
    static let version = 2
    static let type = 3
    static let bodyLength = 4
    static let body = 16
    // SPEC 6.1, CHECK body: key_digest 0–31, model 32–95, input 96, max output 100, estimated_cost 104–111.
    static let checkModel = body + 32
    static let checkCost = body + 104
    // SPEC 6.2, SETTLE body: reservation (org 0–7, sequence 8–15), input 16, output 20, cost 24–31.
    static let settleOrg = body
    static let settleSequence = body + 8
    static let settleCost = body + 24
    // SPEC 6.3, RELEASE body: reservation (org 0–7, sequence 8–15).
    static let releaseOrg = body
    static let releaseSequence = body + 8
}

/// Valid frames, encoded by the codec.
private enum Valid {
    /// A digest no key has: header and field faults are refused before it is ever looked up.
    static let digest = KeyDigest(secret: "sk-br-bad-input-no-such-key")

    static func check(_ id: UInt64, digest: KeyDigest = digest, cost: Int64 = 1_000) -> [UInt8] {
        Frame(requestID: id, body: .check(.make(digest, cost: cost))).bytes
    }

    static func settle(_ id: UInt64) -> [UInt8] {
        let request = SettleRequest(reservation: ReservationID(orgID: 1, sequence: 1), inputTokens: 1, outputTokens: 1, cost: 1)
        return Frame(requestID: id, body: .settle(request)).bytes
    }

    static func release(_ id: UInt64) -> [UInt8] {
        Frame(requestID: id, body: .release(ReleaseRequest(reservation: ReservationID(orgID: 1, sequence: 1)))).bytes
    }

    static func ping(_ id: UInt64) -> [UInt8] { Frame(requestID: id, body: .ping).bytes }
}

/// `bytes` with `replacement` written over it from `offset`.
private func patch(_ bytes: [UInt8], at offset: Int, _ replacement: [UInt8]) -> [UInt8] {
    var out = bytes
    out.replaceSubrange(offset..<offset + replacement.count, with: replacement)
    return out
}

private func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.bigEndian) { Array($0) }
}

/// A 64-byte model field: `name` then NUL padding (SPEC 5).
private func modelField(_ name: [UInt8]) -> [UInt8] {
    name + [UInt8](repeating: 0, count: 64 - name.count)
}

/// Deterministic noise that does not start with "B" (which would be a different case).
private func pseudoRandomBytes(count: Int, seed: UInt64) -> [UInt8] {
    var x = seed
    var out = (0..<count).map { _ -> UInt8 in
        x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return UInt8(truncatingIfNeeded: x >> 56)
    }
    if out[0] == 0x42 { out[0] = 0x41 }
    return out
}

// MARK: - Checking answers

/// Exactly one ERROR with `code` and `requestID`, and then the connection closed.
private func expectRefused(
    _ answers: RawAnswers, _ code: ProtocolErrorCode, requestID: UInt64, othersOpen: Int = 0,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    expectClosed(answers, othersOpen: othersOpen, sourceLocation: sourceLocation)
    #expect(answers.undecoded.isEmpty && answers.decodeError == nil, "the server's bytes must be whole, valid frames: \(answers)", sourceLocation: sourceLocation)
    guard answers.frames.count == 1, case .error(let e) = answers.frames[0].body else {
        Issue.record("expected exactly one ERROR frame: \(answers)", sourceLocation: sourceLocation)
        return
    }
    #expect(e.code == code, "\(answers)", sourceLocation: sourceLocation)
    #expect(answers.frames[0].requestID == requestID, "\(answers)", sourceLocation: sourceLocation)
}

/// The server closed the connection: the client saw EOF. When it did not, the message says
/// whether the server itself still counted the connection open (`othersOpen` = the test's other
/// connections to it) or had closed it while something else held the socket.
private func expectClosed(_ answers: RawAnswers, othersOpen: Int = 0, sourceLocation: SourceLocation = #_sourceLocation) {
    guard !answers.closed else { return }
    if answers.serverOpenAtDeadline == othersOpen {
        Issue.record("no EOF by the deadline although the server closed its end: \(answers)", sourceLocation: sourceLocation)
    } else {
        Issue.record("the server did not close the connection: \(answers)", sourceLocation: sourceLocation)
    }
}

// MARK: - A raw client

/// What a raw connection received, decoded as server-to-client frames.
private struct RawAnswers: CustomStringConvertible {
    /// Whole frames, in arrival order.
    var frames: [Frame] = []
    /// Bytes after the last whole frame (a partial frame, or what followed a decoding error).
    var undecoded: [UInt8] = []
    /// Set if the server sent something a client must refuse.
    var decodeError: ProtocolError?
    /// True if the server closed the connection (EOF or reset) before the deadline.
    var closed: Bool
    /// A socket error or "timed out", for the failure message.
    var note: String?
    /// When the deadline passed without EOF: how many connections the server still had open.
    var serverOpenAtDeadline: Int?

    init(_ reply: RawReply) {
        closed = reply.closed
        note = reply.note
        var buffer = ByteBuffer(bytes: reply.bytes)
        do {
            while let frame = try Frame.decode(from: &buffer, direction: .toClient) { frames.append(frame) }
        } catch {
            decodeError = error
        }
        undecoded = Array(buffer.readableBytesView)
    }

    var description: String {
        let list = frames.map { "\($0.requestID):\($0.body)" }.joined(separator: ", ")
        return "frames [\(list)], \(undecoded.count) undecoded bytes, decode error \(decodeError.map { "\($0)" } ?? "none"), "
            + (closed ? "closed" : "still open") + (note.map { " (\($0))" } ?? "")
            + (serverOpenAtDeadline.map { ", server had \($0) connections open" } ?? "")
    }
}

private struct RawReply: Sendable {
    var bytes: [UInt8]
    var closed: Bool
    var note: String?
}

/// A byte-level connection to bursard: sends arbitrary bytes, can half-close, and collects
/// everything the server sends until it closes, with a deadline so no test can hang.
private struct RawConnection {
    enum Target {
        case tcp(Int)
        case unix(String)
    }

    let channel: any Channel
    let reply: EventLoopFuture<RawReply>
    /// The server connected to, whose open-connection count is read at a deadline.
    let server: DataPlaneServer

    /// Connects. The reply completes when the server closes, or when `untilFrames` whole frames
    /// have arrived (if set), or at the deadline `answers(timeout:)` sets.
    static func open(_ target: Target, server: DataPlaneServer, untilFrames: Int? = nil) async throws -> RawConnection {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let promise = loop.makePromise(of: RawReply.self)
        let bootstrap = ClientBootstrap(group: loop).channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(RawCollector(reply: promise, untilFrames: untilFrames))
            }
        }
        do {
            let channel: any Channel
            switch target {
            case .tcp(let port): channel = try await bootstrap.connect(host: "127.0.0.1", port: port).get()
            case .unix(let path): channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
            }
            return RawConnection(channel: channel, reply: promise.futureResult, server: server)
        } catch {
            promise.fail(error)
            throw error
        }
    }

    /// Opens a TCP connection to the harness's server, writes `bytes` in one write, optionally
    /// half-closes, and waits for the end.
    static func exchange(_ h: Harness, _ bytes: [UInt8], halfClose: Bool = false) async throws -> RawAnswers {
        try await exchange(.tcp(h.port), server: h.server, bytes, halfClose: halfClose)
    }

    /// Opens a connection, writes `bytes` in one write, optionally half-closes, and waits for the end.
    static func exchange(_ target: Target, server: DataPlaneServer, _ bytes: [UInt8], halfClose: Bool = false) async throws -> RawAnswers {
        let connection = try await open(target, server: server)
        do {
            try await connection.send(bytes)
            if halfClose { try await connection.shutdownWrite() }
        } catch {
            try? await connection.channel.close().get()
            throw error
        }
        return try await connection.answers()
    }

    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
    }

    /// shutdown(SHUT_WR): the server sees end of input while it can still answer.
    func shutdownWrite() async throws {
        try await channel.close(mode: .output).get()
    }

    /// Waits for the reply, then closes this side. The deadline runs from here, not from the
    /// connect, so a test task that is scheduled late (the pool is shared with blocking
    /// redis-server start-ups) cannot time out an answer that is already on its way.
    func answers(timeout: TimeAmount = .seconds(3)) async throws -> RawAnswers {
        let channel = self.channel
        let deadline = channel.eventLoop.scheduleTask(in: timeout) {
            channel.pipeline.fireUserInboundEventTriggered(RawDeadline(timeout: timeout))
        }
        var answers = RawAnswers(try await reply.get())
        deadline.cancel()
        // Read before this side closes: the server would then close too.
        if !answers.closed { answers.serverOpenAtDeadline = server.connectionStats.open.load(ordering: .relaxed) }
        try? await channel.close().get()
        return answers
    }
}

/// Fired into a raw connection's pipeline when the test stops waiting.
private struct RawDeadline {
    var timeout: TimeAmount
}

/// Accumulates inbound bytes; completes the reply on close, on enough frames, or at the deadline.
private final class RawCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let reply: EventLoopPromise<RawReply>
    private let untilFrames: Int?
    private var received: [UInt8] = []
    private var note: String?
    private var finished = false

    init(reply: EventLoopPromise<RawReply>, untilFrames: Int?) {
        self.reply = reply
        self.untilFrames = untilFrames
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let deadline = event as? RawDeadline else { return context.fireUserInboundEventTriggered(event) }
        note = "timed out after \(deadline.timeout)"
        finish(closed: false, context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received += unwrapInboundIn(data).readableBytesView
        if let untilFrames, Self.wholeFrames(in: received) >= untilFrames { finish(closed: false, context: context) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(closed: true, context: context)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        note = "\(error)"
        context.close(promise: nil)
    }

    private func finish(closed: Bool, context: ChannelHandlerContext) {
        guard !finished else { return }
        finished = true
        reply.succeed(RawReply(bytes: received, closed: closed, note: note))
    }

    private static func wholeFrames(in bytes: [UInt8]) -> Int {
        var buffer = ByteBuffer(bytes: bytes)
        var count = 0
        while (try? Frame.decode(from: &buffer, direction: .toClient)) != nil { count += 1 }
        return count
    }
}
