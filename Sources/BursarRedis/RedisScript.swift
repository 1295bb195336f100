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

/// A script whose calls may run several at once as one call of another script (`batch`), when
/// they reach Redis in the same round trip with the same first argument (`RedisClient.batch`).
///
/// `single` takes one key and its first argument names what the calls share (an organization's
/// prefix). `batch` takes each call's key as its KEYS, the shared first argument as ARGV[1], then
/// for each call the count of its other arguments followed by them, and answers an array with
/// each call's reply in order (an error element for a call that failed).
public struct RedisScriptBatch: Sendable {
    /// The script called once per request.
    public let single: RedisScript
    /// The script that runs several of its calls as one.
    public let batch: RedisScript

    /// A pair of scripts.
    public init(single: RedisScript, batch: RedisScript) {
        self.single = single
        self.batch = batch
    }
}
