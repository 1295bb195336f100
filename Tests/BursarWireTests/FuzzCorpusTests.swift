import BursarWire
import BursarWireFuzzing
import Foundation
import Testing

/// The fuzzer's committed corpus (`FuzzCorpus/frames`: every protocol vector, a few hand-made
/// streams, and every input a fuzzing run ever failed on, kept as a regression) replayed through
/// the same properties the fuzzer checks. `deploy/fuzz.sh` runs the fuzzer itself.
@Suite("Frame decoder: the fuzz corpus")
struct FuzzCorpusTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("FuzzCorpus/frames")

    static func inputs() throws -> [(name: String, bytes: [UInt8])] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted().map { name in
            (name, Array(try Data(contentsOf: directory.appendingPathComponent(name))))
        }
    }

    @Test("every corpus input keeps every property in both directions")
    func replay() throws {
        let inputs = try Self.inputs()
        #expect(inputs.count >= 100, "the corpus is committed with the vectors in it")
        for input in inputs {
            #expect(throws: Never.self, "\(input.name)") { try FrameProperties.check(input.bytes) }
        }
    }

    @Test("the properties are not vacuous: vectors decode to one frame in their direction, garbage is refused")
    func outcomes() throws {
        let inputs = Dictionary(uniqueKeysWithValues: try Self.inputs().map { ($0.name, $0.bytes) })
        let check = try #require(inputs["vector-check"])
        let (toServer, toClient) = try { let o = try FrameProperties.check(check); return (o[0], o[1]) }()
        #expect(toServer == FrameProperties.Outcome(frames: 1, error: nil))
        #expect(toClient.frames == 0 && toClient.error == .unexpectedFrameType)
        #expect(try FrameProperties.check(try #require(inputs["stream-bad-magic"]))[0].error == .badMagic)
        #expect(try FrameProperties.check(try #require(inputs["stream-oversized-length"]))[0].error == .frameTooLarge)
        #expect(try FrameProperties.check(try #require(inputs["stream-pipelined-requests"]))[0].frames == 4)
        #expect(try FrameProperties.check(try #require(inputs["stream-truncated"]))[0] == FrameProperties.Outcome(frames: 0, error: nil))
        // Found by the fuzzer: reserved bytes that are not zero are ignored on receipt (SPEC 7.2),
        // so this RELEASE_RESULT decodes, and re-encodes with them zeroed.
        let reserved = try #require(inputs["stream-release-result-reserved-bytes"])
        #expect(reserved[20..<23].contains { $0 != 0 })
        #expect(try FrameProperties.check(reserved)[1] == FrameProperties.Outcome(frames: 1, error: nil))
    }

    @Test("a decoder that re-encoded differently would be caught")
    func catchesNonCanonicalFrames() throws {
        // A CHECK whose model name has a byte after its NUL padding is refused (malformed_field);
        // were it accepted, it would re-encode without that byte and the property would fail.
        var bytes = try #require(try Self.inputs().first { $0.name == "vector-check" }?.bytes)
        let modelEnd = 16 + 32 + 64 - 1
        bytes[modelEnd] = 0x41
        let outcome = try FrameProperties.check(bytes)[0]
        #expect(outcome.frames == 0 && outcome.error == .malformedField)
    }
}
