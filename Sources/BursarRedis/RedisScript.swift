import Crypto

/// A Lua script run with EVALSHA. The client loads it on first use and again whenever Redis
/// answers NOSCRIPT (after a restart or SCRIPT FLUSH).
public struct RedisScript: Hashable, Sendable {
    /// The Lua source.
    public let source: String
    /// Lowercase hex SHA-1 of the source, as Redis names it.
    public let sha1: String

    /// A script from its source.
    public init(source: String) {
        self.source = source
        self.sha1 = Insecure.SHA1.hash(data: Array(source.utf8)).map { b in
            let s = String(b, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
    }

    /// SCRIPT LOAD of this script; Redis answers with `sha1`.
    public var loadCommand: RedisCommand { RedisCommand("SCRIPT", "LOAD", source) }

    /// An EVAL of this script (its source sent): for a MULTI/EXEC block, where a NOSCRIPT reply
    /// would come only after the commands before it were applied.
    public func evalCommand(keys: [String], args: [String]) -> RedisCommand {
        var c = RedisCommand("EVAL", source, String(keys.count))
        for k in keys { c.append(k) }
        for a in args { c.append(a) }
        return c
    }

    /// An EVALSHA of this script with the given keys and arguments.
    public func call(keys: [String], args: [String]) -> RedisCommand {
        var c = RedisCommand("EVALSHA", sha1, String(keys.count))
        for k in keys { c.append(k) }
        for a in args { c.append(a) }
        return c
    }
}
