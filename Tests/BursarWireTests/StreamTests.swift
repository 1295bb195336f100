import BursarWire
import NIOCore
import NIOTestUtils
import Testing

/// Many frames on one connection: concatenated, split anywhere, and through NIO's decoder verifier.
@Suite("Frame streams")
struct StreamTests {
    enum Side: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case toServer = "to_server"
        case toClient = "to_client"

        var direction: Frame.Direction { self == .toServer ? .toServer : .toClient }
        var testDescription: String { rawValue }
    }

    /// Every valid frame of one direction, in file order, with its bytes.
    private func frames(_ side: Side) throws -> (frames: [Frame], bytes: [UInt8]) {
        let vectors = Vectors.valid(side.direction)
        try #require(vectors.count > 1)
        return (try vectors.map { try #require($0.frame).expectedFrame() }, vectors.flatMap(\.bytes))
    }

    /// Decodes everything decodable from `buffer`, as a channel's accumulation buffer would.
    private func drain(_ buffer: inout ByteBuffer, _ decoder: inout FrameDecoder) throws -> [Frame] {
        var out: [Frame] = []
        while let frame = try decoder.decode(buffer: &buffer) { out.append(frame) }
        return out
    }

    @Test("all frames of a direction in one buffer decode in order and consume every byte", arguments: Side.allCases)
    func concatenated(side: Side) throws {
        let (expected, bytes) = try frames(side)
        var buffer = ByteBuffer(bytes: bytes)
        var decoded: [Frame] = []
        while let frame = try Frame.decode(from: &buffer, direction: side.direction) { decoded.append(frame) }
        #expect(decoded == expected)
        #expect(buffer.readableBytes == 0)
    }

    @Test("the concatenation split at every byte boundary into two reads decodes to the same frames", arguments: Side.allCases)
    func splitAnywhere(side: Side) throws {
        let (expected, bytes) = try frames(side)
        for cut in 0...bytes.count {
            var decoder = FrameDecoder(direction: side.direction)
            var buffer = ByteBuffer(bytes: bytes[..<cut])
            var decoded = try drain(&buffer, &decoder)
            buffer.writeBytes(bytes[cut...])
            decoded += try drain(&buffer, &decoder)
            #expect(try decoder.decodeLast(buffer: &buffer, seenEOF: true) == nil)
            guard decoded == expected, buffer.readableBytes == 0 else {
                Issue.record("split at byte \(cut) of \(bytes.count) decoded \(decoded.count) of \(expected.count) frames")
                return
            }
        }
    }

    @Test("a frame followed by garbage yields the frame, then refuses the garbage at its first byte", arguments: Side.allCases)
    func frameThenGarbage(side: Side) throws {
        let vector = try #require(Vectors.valid(side.direction).first)
        var decoder = FrameDecoder(direction: side.direction)
        var buffer = ByteBuffer(bytes: vector.bytes + [0x00])
        #expect(try decoder.decode(buffer: &buffer) == vector.frame?.expectedFrame())
        let error = try #require(throws: ProtocolError.self) { try decoder.decode(buffer: &buffer) }
        #expect(error.code == .badMagic)
        #expect(error.requestID == 0)
    }

    @Test("NIO's ByteToMessageDecoderVerifier accepts FrameDecoder over every valid frame", arguments: Side.allCases)
    func nioVerifier(side: Side) throws {
        let pairs = try Vectors.valid(side.direction).map { vector in
            (vector.buffer, [try #require(vector.frame).expectedFrame()])
        }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) {
            FrameDecoder(direction: side.direction)
        }
    }
}
