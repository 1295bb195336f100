public import BursarWire
import NIOCore

/// The properties a fuzzer (and the corpus replay in the tests) checks on the frame decoder, for
/// any byte stream at all, read as a client's stream and as a server's:
///
/// - decoding never crashes, loops or reads out of bounds (the sanitizers watch the rest);
/// - a frame that decodes re-encodes to as many bytes, with the same 16-byte header, and those
///   bytes decode to the same frame (bytes may differ only where SPEC.md says receivers ignore
///   them: reserved bytes and unassigned flag bits, which are re-encoded as zero);
/// - "need more bytes" consumes nothing and only ever happens while fewer bytes are buffered than
///   the largest frame: a frame is never buffered past its maximum size;
/// - a refusal is a `ProtocolError` with a defined code (the stream ends there: a server answers
///   it with ERROR and closes, so what the refusal consumed does not matter).
public enum FrameProperties {
    /// A violated property.
    public struct Violation: Error, CustomStringConvertible {
        /// What was violated, and where.
        public var description: String
    }

    /// What decoding `bytes` in one direction came to.
    public struct Outcome: Equatable, Sendable {
        /// Frames decoded before the stream ended or was refused.
        public var frames: Int
        /// The refusal, if the stream was refused.
        public var error: ProtocolErrorCode?

        /// An outcome.
        public init(frames: Int, error: ProtocolErrorCode?) {
            self.frames = frames
            self.error = error
        }
    }

    /// The largest frame on the wire.
    public static let maxFrameBytes = FrameHeader.size + Int(FrameHeader.maxBodyLength)

    /// Checks every property on `bytes` in both directions; throws the first violation.
    @discardableResult
    public static func check(_ bytes: [UInt8]) throws(Violation) -> [Outcome] {
        var outcomes: [Outcome] = []
        for direction in [Frame.Direction.toServer, .toClient] {
            outcomes.append(try check(bytes, direction: direction))
        }
        return outcomes
    }

    static func check(_ bytes: [UInt8], direction: Frame.Direction) throws(Violation) -> Outcome {
        var buffer = ByteBuffer(bytes: bytes)
        var outcome = Outcome(frames: 0, error: nil)
        while true {
            let before = buffer.readerIndex
            let frame: Frame?
            do {
                frame = try Frame.decode(from: &buffer, direction: direction)
            } catch {
                outcome.error = error.code
                return outcome
            }
            guard let frame else {
                guard buffer.readerIndex == before else {
                    throw Violation(description: "\(direction): 'need more bytes' consumed \(buffer.readerIndex - before) bytes")
                }
                guard buffer.readableBytes < maxFrameBytes else {
                    throw Violation(description: "\(direction): \(buffer.readableBytes) bytes buffered without a frame or a refusal")
                }
                return outcome
            }
            let consumed = bytes[before..<buffer.readerIndex]
            let reencoded = frame.bytes
            guard reencoded.count == consumed.count, reencoded.prefix(FrameHeader.size).elementsEqual(consumed.prefix(FrameHeader.size)) else {
                throw Violation(description: "\(direction): frame #\(outcome.frames) re-encodes to a different header or length")
            }
            var again = ByteBuffer(bytes: reencoded)
            let roundTrip: Frame?
            do {
                roundTrip = try Frame.decode(from: &again, direction: direction)
            } catch {
                throw Violation(description: "\(direction): frame #\(outcome.frames) re-encodes to bytes that are refused: \(error)")
            }
            guard roundTrip == frame, again.readableBytes == 0 else {
                throw Violation(description: "\(direction): frame #\(outcome.frames) does not survive encode → decode")
            }
            outcome.frames += 1
        }
    }
}
