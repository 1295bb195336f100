import BursarWire
import NIOCore
import Testing

/// Every vector in proto/vectors/vectors.json, one at a time.
@Suite("Wire vectors")
struct VectorTests {
    @Test("the vectors file is protocol version 1 and covers every case the spec lists")
    func fileCoversTheSpec() throws {
        #expect(Vectors.document.version == Int(FrameHeader.version))
        let frames = Vectors.valid.compactMap(\.frame)
        #expect(Set(frames.map(\.type)) == Set(FrameType.allCases.map(\.rawValue)))
        #expect(Set(frames.compactMap(\.reason)) == Set(DenyReason.allCases.map(\.rawValue)))
        #expect(Set(frames.compactMap(\.status)) == Set(ReservationStatus.allCases.map(\.rawValue)))
        #expect(Set(frames.compactMap(\.code)) == Set(ProtocolErrorCode.allCases.map(\.rawValue)))
        let refusals = Set(Vectors.refused.compactMap(\.error?.code))
        // Codes a decoder can raise: not end-of-stream, a server fault, or a connection-level bound.
        let notDecoding: Set<ProtocolErrorCode> = [.truncated, .internalError, .tooManyConnections, .idleTimeout, .frameTimeout, .unauthorized]
        let decodable = ProtocolErrorCode.allCases.filter { !notDecoding.contains($0) }
        #expect(refusals == Set(decodable.map(\.rawValue)))
        #expect(!Vectors.incomplete.isEmpty)
        #expect(Set(Vectors.all.map(\.name)).count == Vectors.all.count, "vector names are unique")
    }

    @Test("a valid frame decodes whole to exactly the fields in the vector and consumes every byte", arguments: Vectors.valid)
    func decodesWhole(vector: Vector) throws {
        let fields = try #require(vector.frame)
        let expected = try fields.expectedFrame()
        var buffer = vector.buffer
        let frame = try #require(try Frame.decode(from: &buffer, direction: vector.frameDirection))
        #expect(buffer.readableBytes == 0)
        #expect(frame == expected)
        #expect(frame.requestID == fields.requestId)
        #expect(frame.body.type.rawValue == fields.type)
        #expect(frame.stringBytes == fields.stringBytes)
    }

    @Test("a valid frame re-encodes to exactly the vector's bytes", arguments: Vectors.valid)
    func encodesExactly(vector: Vector) throws {
        let expected = try #require(vector.frame).expectedFrame()
        #expect(hexString(expected.bytes) == vector.hex)
        var buffer = vector.buffer
        let decoded = try #require(try Frame.decode(from: &buffer, direction: vector.frameDirection))
        #expect(hexString(decoded.bytes) == vector.hex)
        // Encoding appends at the writer index and leaves what is already there alone.
        var appended = ByteBuffer(bytes: [0xAA])
        decoded.encode(into: &appended)
        #expect(Array(appended.readableBytesView) == [0xAA] + vector.bytes)
    }

    @Test("a valid frame fed one byte at a time yields nothing until its last byte, then the frame", arguments: Vectors.valid)
    func decodesByteByByte(vector: Vector) throws {
        let expected = try #require(vector.frame).expectedFrame()
        var decoder = FrameDecoder(direction: vector.frameDirection)
        var buffer = ByteBuffer()
        let bytes = vector.bytes
        for (index, byte) in bytes.enumerated() {
            buffer.writeInteger(byte)
            let out = try decoder.decode(buffer: &buffer)
            if index < bytes.count - 1 {
                #expect(out == nil, "frame after \(index + 1) of \(bytes.count) bytes")
                #expect(buffer.readableBytes == index + 1, "bytes consumed before the frame was complete")
            } else {
                #expect(out == expected)
                #expect(buffer.readableBytes == 0)
            }
        }
        #expect(try decoder.decodeLast(buffer: &buffer, seenEOF: true) == nil)
    }

    @Test("a frame the other side sends is refused in this direction", arguments: Vectors.valid)
    func refusedInTheOtherDirection(vector: Vector) throws {
        let other: Frame.Direction = vector.frameDirection == .toServer ? .toClient : .toServer
        var buffer = vector.buffer
        let id = try #require(vector.frame).requestId
        let error = try #require(throws: ProtocolError.self) { try Frame.decode(from: &buffer, direction: other) }
        #expect(error.code == .unexpectedFrameType)
        #expect(error.requestID == id)
    }

    @Test("a bad stream is refused whole with the vector's code and request id", arguments: Vectors.refused)
    func refusedWhole(vector: Vector) throws {
        let refusal = try #require(vector.error)
        let expectedCode = try #require(ProtocolErrorCode(rawValue: refusal.code))
        #expect(expectedCode.description == refusal.name)

        var buffer = vector.buffer
        let error = try #require(throws: ProtocolError.self) {
            try Frame.decode(from: &buffer, direction: vector.frameDirection)
        }
        #expect(error.code == expectedCode)
        #expect(error.requestID == refusal.requestId)
        #expect(!error.message.isEmpty)

        // End of stream does not turn a refusal into `truncated`.
        var decoder = FrameDecoder(direction: vector.frameDirection)
        var last = vector.buffer
        let atEOF = try #require(throws: ProtocolError.self) { try decoder.decodeLast(buffer: &last, seenEOF: true) }
        #expect(atEOF.code == expectedCode)
        #expect(atEOF.requestID == refusal.requestId)
    }

    @Test("a bad stream fed one byte at a time is refused exactly when its fault is readable, never decoded", arguments: Vectors.refused)
    func refusedByteByByte(vector: Vector) throws {
        let refusal = try #require(vector.error)
        let bytes = vector.bytes
        try #require(refusal.detectedAfter >= 1 && refusal.detectedAfter <= bytes.count)
        var decoder = FrameDecoder(direction: vector.frameDirection)
        var buffer = ByteBuffer()
        for (index, byte) in bytes.enumerated() {
            buffer.writeInteger(byte)
            let count = index + 1
            if count < refusal.detectedAfter {
                let out = try decoder.decode(buffer: &buffer)
                #expect(out == nil, "frame from a bad stream after \(count) bytes")
                #expect(buffer.readableBytes == count)
            } else {
                let error = try #require(throws: ProtocolError.self) { try decoder.decode(buffer: &buffer) }
                #expect(error.code.rawValue == refusal.code)
                #expect(error.requestID == refusal.requestId)
                return
            }
        }
    }

    @Test("a valid prefix asks for more bytes, consumes nothing, and is truncated at end of stream", arguments: Vectors.incomplete)
    func incompleteStream(vector: Vector) throws {
        let bytes = vector.bytes
        try #require(!bytes.isEmpty)
        var buffer = vector.buffer
        #expect(try Frame.decode(from: &buffer, direction: vector.frameDirection) == nil)
        #expect(buffer.readableBytes == bytes.count)
        #expect(try Frame.peekHeader(buffer, direction: vector.frameDirection)?.requestID == headerRequestID(bytes))

        var decoder = FrameDecoder(direction: vector.frameDirection)
        var partial = ByteBuffer()
        for byte in bytes {
            partial.writeInteger(byte)
            #expect(try decoder.decode(buffer: &partial) == nil)
        }
        #expect(partial.readableBytes == bytes.count)

        let error = try #require(throws: ProtocolError.self) { try decoder.decodeLast(buffer: &partial, seenEOF: true) }
        #expect(error.code == .truncated)
        #expect(error.requestID == headerRequestID(bytes) ?? 0)
    }

    /// The request id of a complete header at the front of `bytes`, read by hand.
    private func headerRequestID(_ bytes: [UInt8]) -> UInt64? {
        guard bytes.count >= 16 else { return nil }
        return bytes[8..<16].reduce(0) { $0 << 8 | UInt64($1) }
    }
}
