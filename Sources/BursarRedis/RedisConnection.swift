import CHiredis
#if canImport(Glibc)
import Glibc
#endif

/// One synchronous hiredis connection. Blocking: it lives on a dedicated thread, never on an
/// event loop. Not thread-safe; exactly one thread uses an instance.
package final class RedisConnection {
    private var context: UnsafeMutablePointer<redisContext>?
    let endpoint: RedisEndpoint
    /// The RESP encoding of the commands being written, reused from one write to the next.
    private var outgoing: [UInt8] = []
    /// Where hiredis's reader builds the replies.
    private let builder = ReplyBuilder()

    /// Connects, selects the database, and applies `ioTimeoutMs` to every read and write.
    package init(endpoint: RedisEndpoint, connectTimeoutMs: Int, ioTimeoutMs: Int) throws(RedisError) {
        self.endpoint = endpoint
        let connectTV = timeval(tv_sec: connectTimeoutMs / 1000, tv_usec: (connectTimeoutMs % 1000) * 1000)
        let ctx: UnsafeMutablePointer<redisContext>?
        switch endpoint {
        case .tcp(let host, let port, _): ctx = redisConnectWithTimeout(host, Int32(port), connectTV)
        case .unix(let path, _): ctx = redisConnectUnixWithTimeout(path, connectTV)
        }
        guard let ctx else { throw RedisError(.connectionFailed, "cannot allocate a hiredis context") }
        if ctx.pointee.err != 0 {
            let message = Self.errorText(ctx)
            redisFree(ctx)
            throw RedisError(.connectionFailed, "\(endpoint): \(message)")
        }
        builder.install(on: ctx)
        let ioTV = timeval(tv_sec: ioTimeoutMs / 1000, tv_usec: (ioTimeoutMs % 1000) * 1000)
        _ = redisSetTimeout(ctx, ioTV)
        if case .tcp = endpoint { _ = redisEnableKeepAlive(ctx) }
        context = ctx
        if endpoint.db != 0 {
            let reply = try pipeline([RedisCommand("SELECT", String(endpoint.db))])
            if case .error(let e) = reply[0] {
                close()
                throw RedisError(.connectionFailed, "SELECT \(endpoint.db): \(e)")
            }
        }
    }

    deinit { close() }

    /// Closes the socket.
    func close() {
        if let context { redisFree(context) }
        context = nil
        builder.reset()
    }

    /// True while the connection is usable.
    var isOpen: Bool { context != nil }

    /// True when the server has closed (or reset) the connection while it was idle, found
    /// without blocking: between round trips nothing is owed, so anything readable (the end of the
    /// stream, an error) means the server is gone, e.g. restarted. Checked before a round trip
    /// on a connection that may have sat idle, so that the round trip goes to a new connection
    /// instead of failing with its outcome unknown.
    var isStale: Bool {
        guard let context else { return true }
        var fd = pollfd(fd: context.pointee.fd, events: Int16(POLLIN), revents: 0)
        return poll(&fd, 1, 0) != 0
    }

    /// Sends all commands in one write, then reads one reply per command, in order.
    /// On an I/O error the connection is closed and `connectionLost` is thrown: the commands may
    /// or may not have run.
    package func pipeline(_ commands: [RedisCommand]) throws(RedisError) -> [RedisValue] {
        guard let ctx = context else { throw RedisError(.connectionLost, "connection is closed") }
        try writeDirect(commands, ctx)
        var replies: [RedisValue] = []
        replies.reserveCapacity(commands.count)
        for _ in commands {
            replies.append(try readReply(ctx))
        }
        return replies
    }

    /// Writes commands without reading (the first half of a pipeline whose replies `read(count:)` takes).
    func write(_ commands: [RedisCommand]) throws(RedisError) { try send(commands) }

    /// Reads `count` replies, in order.
    func read(count: Int) throws(RedisError) -> [RedisValue] {
        var replies: [RedisValue] = []
        replies.reserveCapacity(count)
        for _ in 0..<count { replies.append(try readReply()) }
        return replies
    }

    /// Writes commands without waiting for replies (a subscriber's SUBSCRIBE and PING).
    func send(_ commands: [RedisCommand]) throws(RedisError) {
        guard let ctx = context else { throw RedisError(.connectionLost, "connection is closed") }
        try writeDirect(commands, ctx)
    }

    /// Reads the next reply, first flushing anything still unwritten; waits at most the I/O
    /// timeout. On an I/O error the connection is closed and `connectionLost` is thrown.
    func readReply() throws(RedisError) -> RedisValue {
        guard let ctx = context else { throw RedisError(.connectionLost, "connection is closed") }
        return try readReply(ctx)
    }

    private func readReply(_ ctx: UnsafeMutablePointer<redisContext>) throws(RedisError) -> RedisValue {
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(ctx, &raw) == REDIS_OK, raw != nil, let reply = builder.take() else { throw fail("read") }
        return reply
    }

    /// A reply already received and parsed from earlier reads, without touching the socket;
    /// nil when none is complete.
    func bufferedReply() throws(RedisError) -> RedisValue? {
        guard let ctx = context else { throw RedisError(.connectionLost, "connection is closed") }
        var raw: UnsafeMutableRawPointer?
        if redisGetReplyFromReader(ctx, &raw) != REDIS_OK { throw fail("parse") }
        guard raw != nil else { return nil }
        guard let reply = builder.take() else { throw fail("parse") }
        return reply
    }

    /// The socket, for poll(2) by the owning thread; -1 once closed.
    var fileDescriptor: Int32 { context?.pointee.fd ?? -1 }

    /// Writes `commands` to the socket, encoded here as RESP into one reused buffer (no
    /// per-command argv arrays or hiredis formatting), not through hiredis's output buffer (which
    /// would copy every byte once more): every write goes this way, so that buffer stays empty
    /// and hiredis only reads. A write that makes no progress within the I/O timeout (the
    /// socket's send timeout) loses the connection.
    private func writeDirect(_ commands: [RedisCommand], _ ctx: UnsafeMutablePointer<redisContext>) throws(RedisError) {
        outgoing.removeAll(keepingCapacity: true)
        for command in commands { command.encodeRESP(into: &outgoing) }
        let fd = ctx.pointee.fd
        let failure: Int32 = outgoing.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                // MSG_NOSIGNAL: a peer gone is an error here, never a SIGPIPE.
                let n = Glibc.send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
                if n > 0 {
                    offset += n
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    return n < 0 ? errno : EPIPE
                }
            }
            return 0
        }
        if failure != 0 {
            let reason = failure == EAGAIN || failure == EWOULDBLOCK ? "timed out" : String(cString: strerror(failure))
            close()
            throw RedisError(.connectionLost, "write on \(endpoint): \(reason)")
        }
    }

    private func fail(_ what: String) -> RedisError {
        let message = context.map(Self.errorText) ?? "closed"
        close()
        return RedisError(.connectionLost, "\(what) on \(endpoint): \(message)")
    }

    private static func errorText(_ ctx: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: ctx.pointee.errstr) { raw in
            let bytes = raw.prefix { $0 != 0 }
            let text = String(decoding: bytes, as: UTF8.self)
            return text.isEmpty ? "error \(ctx.pointee.err)" : text
        }
    }
}
