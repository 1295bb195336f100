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
    public mutating func append(_ arg: Int64) { append(String(arg)) }

    /// Appends a raw argument.
    public mutating func append(bytes: some Sequence<UInt8>) {
        storage.append(contentsOf: bytes)
        ends.append(storage.count)
    }

    /// Number of arguments.
    public var count: Int { ends.count }

    /// The command name, for logs and metrics (never the arguments: they may hold digests).
    public var description: String {
        guard let first = ends.first else { return "<empty>" }
        return String(decoding: storage[0..<first], as: UTF8.self)
    }
}
