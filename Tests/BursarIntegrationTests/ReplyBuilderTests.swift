@testable import BursarRedis
import Testing

/// Replies built straight from hiredis's reader (`ReplyBuilder`), against a real redis-server:
/// every RESP2 type, nesting, binary strings, and replies that arrive over many reads.
@Suite("replies built from hiredis's reader")
struct ReplyBuilderTests {
    @Test("every reply type and nesting comes back as the value Redis sent")
    func everyType() throws {
        let server = try RedisServerProcess.ephemeral()
        defer { server.stop() }
        let c = try RedisConnection(endpoint: server.endpoint, connectTimeoutMs: 2_000, ioTimeoutMs: 5_000)
        // Lua: a table becomes an array, false a nil bulk, {ok=} a status, {err=} an error.
        let nested = "return {1, {2, {}, {3, {4}}}, 'a\\0b\\r\\nc', false, {}, -9007199254740991}"
        let replies = try c.pipeline([
            RedisCommand("SET", "k", "v"),
            RedisCommand("EVAL", nested, "0"),
            RedisCommand("EVAL", "return {err='NOPE custom error'}", "0"),
            RedisCommand("EVAL", "return {ok='FINE'}", "0"),
            RedisCommand("GET", "missing"),
            RedisCommand("INCRBY", "n", "-42"),
            RedisCommand("GET", "k"),
        ])
        #expect(replies == [
            .status("OK"),
            .array([
                .integer(1),
                .array([.integer(2), .array([]), .array([.integer(3), .array([.integer(4)])])]),
                .bulk(Array("a\u{0}b\r\nc".utf8)),
                .null,
                .array([]),
                .integer(-9_007_199_254_740_991),
            ]),
            .error("NOPE custom error"),
            .status("FINE"),
            .null,
            .integer(-42),
            .bulk(Array("v".utf8)),
        ])
        // A reply Redis refuses mid-pipeline does not disturb the ones after it.
        #expect(try c.pipeline([RedisCommand("NOSUCHCOMMAND"), RedisCommand("PING")]).map { if case .error = $0 { "error" } else { "\($0)" } }
            == ["error", "\(RedisValue.status("PONG"))"])
    }

    @Test("replies larger than a read, and many in one read, are whole and in order")
    func splitAndBatched() throws {
        let server = try RedisServerProcess.ephemeral()
        defer { server.stop() }
        let c = try RedisConnection(endpoint: server.endpoint, connectTimeoutMs: 2_000, ioTimeoutMs: 5_000)
        // 1 MiB of varied bytes: hiredis reads 16 KiB at a time, so the bulk string is built over many reads.
        let big = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        var set = RedisCommand("SET", "big")
        set.append(bytes: big)
        #expect(try c.pipeline([set]) == [.status("OK")])
        // An array of 5,000 arrays, also over many reads, then a value after it.
        let rows = "local t = {} for i = 1, 5000 do t[i] = {i, tostring(i)} end return t"
        let replies = try c.pipeline([RedisCommand("GET", "big"), RedisCommand("EVAL", rows, "0"), RedisCommand("PING")])
        #expect(replies.count == 3)
        #expect(replies[0] == .bulk(big))
        let expected = (1...5000).map { RedisValue.array([.integer(Int64($0)), .bulk(Array(String($0).utf8))]) }
        #expect(replies[1] == .array(expected))
        #expect(replies[2] == .status("PONG"))
        // 2,000 replies written at once, read one by one.
        try c.write((0..<2000).map { RedisCommand("INCR", "counter\($0 % 7)") })
        let counts = try c.read(count: 2000)
        #expect(counts == (0..<2000).map { .integer(Int64($0 / 7 + 1)) })
    }

    @Test("a command gathers another's arguments in one copy: the same arguments, in order, on the wire")
    func gatheredArguments() throws {
        let server = try RedisServerProcess.ephemeral()
        defer { server.stop() }
        let c = try RedisConnection(endpoint: server.endpoint, connectTimeoutMs: 2_000, ioTimeoutMs: 5_000)
        var source = RedisCommand("EVAL", "return ARGV", "0")
        source.append(Int64(-42))
        source.append(bytes: [0, 13, 10, 255])
        source.append("")
        source.append("last")
        var gathered = RedisCommand("EVAL", "return ARGV", "0", "first")
        gathered.append(arguments: 3..<7, of: source)
        gathered.append(arguments: 4..<4, of: source)
        gathered.append(arguments: 0..<1, of: source)
        #expect(gathered.count == 9)
        let reply = try c.pipeline([gathered])[0]
        #expect(reply == .array([.bulk(Array("first".utf8)), .bulk(Array("-42".utf8)), .bulk([0, 13, 10, 255]), .bulk([]),
                                 .bulk(Array("last".utf8)), .bulk(Array("EVAL".utf8))]))
    }
}
