import Crypto

/// Lua that runs inside Redis: a script (EVALSHA) or a Redis Functions library (FCALL). The
/// client loads it on first use and again whenever Redis answers that it lacks it (NOSCRIPT for a
/// script, "Function not found" for a library's function: after a restart without persistence,
/// SCRIPT FLUSH or FUNCTION FLUSH, or on a Cluster master that never had it).
///
/// A script's text runs whole on every call, so every function it defines is made again each
/// time; a library's top level runs once, at FUNCTION LOAD, and each call runs only the function
/// it registered. Redis replicates and persists libraries (not scripts), so a promoted replica or
/// a restart from the AOF has them.
public struct RedisScript: Hashable, Sendable {
    /// The Lua source: a script, or a library (its first line `#!lua name=…`).
    public let source: String
    /// Lowercase hex SHA-1 of the source, as Redis names a script.
    public let sha1: String
    /// The library's function (its name, which is also the library's), nil for a script.
    public let function: String?

    /// A script from its source.
    public init(source: String) {
        self.source = source
        self.sha1 = Self.hex(Insecure.SHA1.hash(data: Array(source.utf8)))
        self.function = nil
    }

    /// A Redis Functions library that registers `function` (and names itself so).
    public init(library: String, function: String) {
        self.source = library
        self.sha1 = Self.hex(Insecure.SHA1.hash(data: Array(library.utf8)))
        self.function = function
    }

    private static func hex(_ digest: Insecure.SHA1Digest) -> String {
        digest.map { b in
            let s = String(b, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
    }

    /// The command that runs it: EVALSHA for a script, FCALL for a library's function.
    public var verb: String { function == nil ? "EVALSHA" : "FCALL" }
    /// What that command names it by: the script's SHA-1, or the function's name.
    public var handle: String { function ?? sha1 }

    /// SCRIPT LOAD of a script (Redis answers with `sha1`), FUNCTION LOAD of a library (Redis
    /// answers with its name, or an error if it has it already): `isLoaded(by:)` reads the reply.
    public var loadCommand: RedisCommand {
        function == nil ? RedisCommand("SCRIPT", "LOAD", source) : RedisCommand("FUNCTION", "LOAD", source)
    }

    /// Whether `reply` to `loadCommand` says Redis has it now.
    public func isLoaded(by reply: RedisValue) -> Bool {
        switch (function, reply) {
        case (nil, _): return reply.string == sha1
        case (let name?, .error(let e)): return e.contains("Library '\(name)' already exists")
        case (let name?, _): return reply.string == name
        }
    }

    /// Whether an error reply says Redis lacks what a call of a script or a library's function
    /// named, so the call did not run: NOSCRIPT, or FCALL's "Function not found".
    public static func isMissing(_ error: String) -> Bool {
        error.hasPrefix("NOSCRIPT") || error.hasPrefix("ERR Function not found")
    }

    /// An EVAL of a script (its source sent): for a MULTI/EXEC block, where a NOSCRIPT reply
    /// would come only after the commands before it were applied. A library's function has no
    /// such form: it is called (FCALL), and must be loaded before the block.
    public func evalCommand(keys: [String], args: [String]) -> RedisCommand {
        precondition(function == nil, "a library's function cannot be sent as EVAL")
        var c = RedisCommand("EVAL", source, String(keys.count))
        for k in keys { c.append(k) }
        for a in args { c.append(a) }
        return c
    }

    /// `EVALSHA <sha1> <keyCount>` or `FCALL <function> <keyCount>`: the head of a call, to which
    /// the keys and then the arguments are appended.
    public func head(keyCount: Int) -> RedisCommand {
        RedisCommand(verb, handle, String(keyCount))
    }

    /// A call (EVALSHA or FCALL) with the given keys and arguments.
    public func call(keys: [String], args: [String]) -> RedisCommand {
        var c = head(keyCount: keys.count)
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
