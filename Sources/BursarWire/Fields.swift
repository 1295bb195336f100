public import NIOCore

/// The SHA-256 digest of an API key's secret: 32 bytes. The sidecar never sees a plaintext key.
public struct KeyDigest: Hashable, Sendable, CustomStringConvertible {
    /// Bytes in a digest.
    public static let size = 32
    /// The digest, as four big-endian words (cheap to hash and compare, no allocation).
    public let words: (UInt64, UInt64, UInt64, UInt64)

    /// A digest from its four big-endian words.
    public init(words: (UInt64, UInt64, UInt64, UInt64)) { self.words = words }

    /// A digest from exactly 32 bytes.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == Self.size else { return nil }
        var w: [UInt64] = [0, 0, 0, 0]
        for (i, b) in bytes.enumerated() { w[i / 8] = w[i / 8] << 8 | UInt64(b) }
        words = (w[0], w[1], w[2], w[3])
    }

    /// A digest from 64 hex characters.
    public init?(hex: String) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 64 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        var i = 0
        while i < 64 {
            guard let hi = hexValue(utf8[i]), let lo = hexValue(utf8[i + 1]) else { return nil }
            bytes.append(hi << 4 | lo)
            i += 2
        }
        self.init(bytes: bytes)
    }

    /// The 32 bytes.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(32)
        for word in [words.0, words.1, words.2, words.3] {
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) }
        }
        return out
    }

    /// Lowercase hex, 64 characters. This is how Redis indexes keys by digest. (Read straight
    /// from the words, no intermediate array: it is built on every CHECK.)
    public var hex: String {
        hexString((0..<Self.size).lazy.map { i in
            let word = i < 8 ? words.0 : i < 16 ? words.1 : i < 24 ? words.2 : words.3
            return UInt8(truncatingIfNeeded: word >> UInt64(56 - (i % 8) * 8))
        })
    }

    /// Never the digest itself: digests are credentials-adjacent and must not reach logs.
    public var description: String { "KeyDigest(…)" }

    /// In constant time: a digest is what a client presents on the wire (the data plane never sees
    /// the secret), so how long a comparison takes must not depend on where two digests differ.
    /// XOR-accumulate over all four words, no early exit.
    public static func == (a: KeyDigest, b: KeyDigest) -> Bool {
        ((a.words.0 ^ b.words.0) | (a.words.1 ^ b.words.1) | (a.words.2 ^ b.words.2) | (a.words.3 ^ b.words.3)) == 0
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }
}

/// A model name: 1 to 64 bytes of UTF-8 without NUL, carried in a fixed 64-byte field padded with NUL.
public struct ModelName: Hashable, Sendable, CustomStringConvertible {
    /// Bytes of the fixed field on the wire.
    public static let fieldSize = 64
    /// The name.
    public let value: String

    /// Validates a name. Longer than 64 bytes is an error, never a truncation.
    public init(_ value: String) throws(ProtocolError) {
        let count = value.utf8.count
        guard count > 0 else { throw ProtocolError(.malformedField, "model name is empty") }
        guard count <= Self.fieldSize else {
            throw ProtocolError(.malformedField, "model name is \(count) bytes; the limit is \(Self.fieldSize)")
        }
        guard !value.utf8.contains(0) else { throw ProtocolError(.malformedField, "model name contains a NUL byte") }
        self.value = value
    }

    /// A name already known to be 1…64 bytes without a NUL (decoded from its field).
    init(validated value: String) {
        self.value = value
    }

    public var description: String { value }

    /// Byte equality, as on the wire and in Redis: a name in another Unicode normalization form is
    /// another name (Swift's `String ==` would call them equal).
    public static func == (a: ModelName, b: ModelName) -> Bool { a.value.utf8.elementsEqual(b.value.utf8) }

    public func hash(into hasher: inout Hasher) {
        var value = value
        value.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        hasher.combine(value.utf8.count)
    }
}

/// Identifies one reservation: 16 bytes on the wire, kept as two u64 halves.
///
/// Inside bursard (and in Redis) the halves are the organization it belongs to and its sequence
/// there. The id a client holds is that name sealed under the installation's reservation key
/// (SPEC §5, `ReservationSeal`): opaque 16 bytes, which a client copies back unchanged; its
/// halves then mean nothing. The all-zero id is what a denied CHECK carries.
public struct ReservationID: Hashable, Sendable, CustomStringConvertible {
    /// Bytes on the wire.
    public static let size = 16
    /// The all-zero id carried by a denied CHECK.
    public static let none = ReservationID(orgID: 0, sequence: 0)
    /// The organization.
    public var orgID: UInt64
    /// Unique within the organization; never 0 for a real reservation.
    public var sequence: UInt64

    /// An id from its parts.
    public init(orgID: UInt64, sequence: UInt64) {
        self.orgID = orgID
        self.sequence = sequence
    }

    public var description: String { "\(orgID)-\(sequence)" }

    /// The 16 bytes as 32 lowercase hex digits (how a client's id travels in HTTP headers).
    public var hex: String {
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<8 {
            bytes[i] = UInt8(truncatingIfNeeded: orgID >> (56 - 8 * UInt64(i)))
            bytes[8 + i] = UInt8(truncatingIfNeeded: sequence >> (56 - 8 * UInt64(i)))
        }
        return hexString(bytes)
    }

    /// The id whose `hex` is `text` (32 hex digits, either case); nil otherwise.
    public init?(hex text: String) {
        let digits = Array(text.utf8)
        guard digits.count == 32 else { return nil }
        var halves: [UInt64] = [0, 0]
        for (i, c) in digits.enumerated() {
            guard let v = hexValue(c) else { return nil }
            halves[i / 16] = halves[i / 16] << 4 | UInt64(v)
        }
        self.init(orgID: halves[0], sequence: halves[1])
    }
}

/// Money on the wire and in Redis: signed 64-bit nano-USD (1e-9 USD). Never a float.
public typealias NanoUSD = Int64

/// The largest money or token value the limiter computes with exactly (2^53 − 1; Redis Lua
/// numbers are IEEE doubles). About 9.0 million USD in nano-USD.
public let maxExactValue: Int64 = (1 << 53) - 1

@inline(__always)
func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}

/// Lowercase hex of bytes, written in place into the string's storage.
public func hexString(_ bytes: some Collection<UInt8>) -> String {
    let digits: StaticString = "0123456789abcdef"
    return String(unsafeUninitializedCapacity: bytes.count * 2) { out in
        digits.withUTF8Buffer { d in
            var i = 0
            for b in bytes {
                out[i] = d[Int(b >> 4)]
                out[i + 1] = d[Int(b & 0xF)]
                i += 2
            }
            return i
        }
    }
}

extension ByteBuffer {
    @inlinable
    mutating func readReservationID() -> ReservationID? {
        guard let o = readInteger(as: UInt64.self), let s = readInteger(as: UInt64.self) else { return nil }
        return ReservationID(orgID: o, sequence: s)
    }

    @inlinable
    mutating func writeReservationID(_ id: ReservationID) {
        writeInteger(id.orgID)
        writeInteger(id.sequence)
    }
}
