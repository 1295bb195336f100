/// A reply from Redis, copied out of hiredis's memory.
public enum RedisValue: Hashable, Sendable {
    /// A bulk string.
    case bulk([UInt8])
    /// A simple status string (`OK`).
    case status(String)
    /// An integer.
    case integer(Int64)
    /// An array.
    case array([RedisValue])
    /// A nil bulk or nil array.
    case null
    /// A server error reply (`ERR …`, `NOSCRIPT …`).
    case error(String)

    /// The value as an integer, if it is one or a bulk string of digits.
    public var int: Int64? {
        switch self {
        case .integer(let v): return v
        case .bulk(let b): return Int64(String(decoding: b, as: UTF8.self))
        default: return nil
        }
    }

    /// The value as text, if it is a bulk or status string.
    public var string: String? {
        switch self {
        case .bulk(let b): return String(decoding: b, as: UTF8.self)
        case .status(let s): return s
        default: return nil
        }
    }

    /// The elements, if it is an array.
    public var array: [RedisValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    /// True for nil.
    public var isNull: Bool { self == .null }
}

/// One command: its arguments, packed in one contiguous buffer to keep the hot path light.
public struct RedisCommand: Sendable, CustomStringConvertible {
    @usableFromInline var storage: [UInt8] = []
    @usableFromInline var ends: [Int] = []

    /// A command from textual arguments.
    public init(_ args: String...) {
        for a in args { append(a) }
    }

    /// A command from textual arguments.
    public init(_ args: [String]) {
        for a in args { append(a) }
    }

    /// Appends a text argument.
    public mutating func append(_ arg: String) {
        storage.append(contentsOf: arg.utf8)
        ends.append(storage.count)
    }

    /// Appends an integer argument in decimal.
    public mutating func append(_ arg: Int64) {
        if arg < 0 { storage.append(UInt8(ascii: "-")) }
        Self.appendDecimal(arg.magnitude, to: &storage)
        ends.append(storage.count)
    }

    /// Appends an unsigned integer argument in decimal.
    public mutating func append(decimal arg: UInt64) {
        Self.appendDecimal(arg, to: &storage)
        ends.append(storage.count)
    }

    /// Appends `text` to the last argument instead of starting a new one, so that an argument
    /// (a key name) can be assembled in place from its parts. There must be a last argument.
    public mutating func extendLast(_ text: String) {
        precondition(!ends.isEmpty, "no argument to extend")
        storage.append(contentsOf: text.utf8)
        ends[ends.count - 1] = storage.count
    }

    /// Appends `value` in decimal to the last argument (see `extendLast(_:)`).
    public mutating func extendLast(decimal value: UInt64) {
        precondition(!ends.isEmpty, "no argument to extend")
        Self.appendDecimal(value, to: &storage)
        ends[ends.count - 1] = storage.count
    }

    /// Appends raw bytes to the last argument (see `extendLast(_:)`).
    public mutating func extendLast(bytes: UnsafeRawBufferPointer) {
        precondition(!ends.isEmpty, "no argument to extend")
        storage.append(contentsOf: bytes)
        ends[ends.count - 1] = storage.count
    }

    /// Reserves room for `bytes` more argument bytes in `arguments` more arguments.
    public mutating func reserveCapacity(bytes: Int, arguments: Int) {
        storage.reserveCapacity(storage.count + bytes)
        ends.reserveCapacity(ends.count + arguments)
    }

    /// Writes `value` in decimal ASCII at the end of `out`, without going through a String.
    @usableFromInline
    static func appendDecimal(_ value: UInt64, to out: inout [UInt8]) {
        if value < 10 {
            out.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: value))
            return
        }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var v = value
            var i = 20
            while v > 0 {
                i &-= 1
                digits[i] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v % 10)
                v /= 10
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[i..<20]))
        }
    }

    /// Appends the command as Redis reads it: a RESP array of bulk strings.
    func encodeRESP(into out: inout [UInt8]) {
        out.append(UInt8(ascii: "*"))
        Self.appendDecimal(UInt64(ends.count), to: &out)
        out.append(13)
        out.append(10)
        storage.withUnsafeBufferPointer { bytes in
            var start = 0
            for end in ends {
                out.append(UInt8(ascii: "$"))
                Self.appendDecimal(UInt64(end - start), to: &out)
                out.append(13)
                out.append(10)
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<end]))
                out.append(13)
                out.append(10)
                start = end
            }
        }
    }

    /// Appends a raw argument.
    public mutating func append(bytes: some Sequence<UInt8>) {
        storage.append(contentsOf: bytes)
        ends.append(storage.count)
    }

    /// Appends `other`'s arguments `range` as arguments of this one, their bytes in one copy (a
    /// batch call gathers its requests' arguments so, once per round trip: `RedisClient.plan`).
    mutating func append(arguments range: Range<Int>, of other: RedisCommand) {
        guard !range.isEmpty else { return }
        let start = range.lowerBound == 0 ? 0 : other.ends[range.lowerBound - 1]
        let end = other.ends[range.upperBound - 1]
        let shift = storage.count - start
        other.storage.withUnsafeBufferPointer { bytes in
            storage.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<end]))
        }
        for i in range { ends.append(other.ends[i] + shift) }
    }

    /// Number of arguments.
    public var count: Int { ends.count }

    /// Bytes of all arguments together.
    var byteCount: Int { storage.count }

    /// The command name, for logs and metrics (never the arguments: they may hold digests).
    public var description: String {
        guard let first = ends.first else { return "<empty>" }
        return String(decoding: storage[0..<first], as: UTF8.self)
    }
}
