import Foundation
public import Logging
public import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How a `RedisSubscriber` connects, watches its connection and reconnects.
public struct RedisSubscriberConfiguration: Sendable {
    /// The server, cluster (any node hears every PUBLISH) or sentinels.
    public var target: RedisTarget
    /// Time allowed to connect. `stop()` may wait this long if it lands mid-connect.
    public var connectTimeoutMs: Int
    /// Time allowed for any one read or write (the SUBSCRIBE handshake, the rest of a reply
    /// whose first bytes arrived, the answer to a PING) before the connection is declared lost.
    public var ioTimeoutMs: Int
    /// After this long with nothing received the subscriber sends PING; if nothing arrives
    /// within `ioTimeoutMs` the connection is declared lost. This catches a server that
    /// vanished without closing the socket (a paused process, a partition).
    public var pingIntervalMs: Int
    /// First reconnect delay after a failure; doubles on each failure up to `maxBackoffMs`.
    public var minBackoffMs: Int
    /// Largest reconnect delay.
    public var maxBackoffMs: Int

    /// A configuration with production defaults, for one server.
    public init(
        endpoint: RedisEndpoint, connectTimeoutMs: Int = 250, ioTimeoutMs: Int = 1000, pingIntervalMs: Int = 1000,
        minBackoffMs: Int = 10, maxBackoffMs: Int = 1000
    ) {
        self.init(
            target: .server(endpoint), connectTimeoutMs: connectTimeoutMs, ioTimeoutMs: ioTimeoutMs, pingIntervalMs: pingIntervalMs,
            minBackoffMs: minBackoffMs, maxBackoffMs: maxBackoffMs)
    }

    /// A configuration with production defaults.
    public init(
        target: RedisTarget, connectTimeoutMs: Int = 250, ioTimeoutMs: Int = 1000, pingIntervalMs: Int = 1000,
        minBackoffMs: Int = 10, maxBackoffMs: Int = 1000
    ) {
        self.target = target
        self.connectTimeoutMs = connectTimeoutMs
        self.ioTimeoutMs = ioTimeoutMs
        self.pingIntervalMs = pingIntervalMs
        self.minBackoffMs = minBackoffMs
        self.maxBackoffMs = maxBackoffMs
    }
}

/// Counters a subscriber keeps about itself.
public final class RedisSubscriberStats: Sendable {
    /// Messages delivered to the handler.
    public let messages = Atomic<Int>(0)
    /// Successful (re)subscriptions; each was followed by a call of `onReconnect`.
    public let connects = Atomic<Int>(0)
    /// Connection failures and losses.
    public let connectionErrors = Atomic<Int>(0)
    /// 1 while subscribed.
    public let connected = Atomic<Int>(0)
    init() {}
}

/// A Redis pub/sub subscriber on its own thread and its own hiredis connection.
///
/// The thread subscribes, then blocks in poll(2) and hiredis reads, delivering each message to
/// `onMessage`. When the connection breaks (or stays silent past a PING) it reconnects with
/// backoff, subscribes again, and calls `onReconnect`: messages published while it was away are
/// lost, so a caller that mirrors state must assume everything changed. `onReconnect` also runs
/// after the first subscription. Both handlers run on the subscriber's thread, one at a time,
/// and must be quick.
public final class RedisSubscriber: Sendable {
    /// One message received on a channel.
    public struct Message: Hashable, Sendable {
        /// The channel it was published on.
        public var channel: String
        /// The payload, byte for byte.
        public var payload: [UInt8]

        /// The payload decoded as UTF-8 (invalid sequences replaced).
        public var text: String { String(decoding: payload, as: UTF8.self) }
    }

    /// Configuration.
    public let configuration: RedisSubscriberConfiguration
    /// The channels subscribed to.
    public let channels: [String]
    /// Self-observation.
    public let stats = RedisSubscriberStats()
    private let control = Control()
    private let onMessage: @Sendable (Message) -> Void
    private let onReconnect: @Sendable () -> Void
    private let logger: Logger

    /// A subscriber to `channels`; nothing connects until `start()`.
    public init(
        configuration: RedisSubscriberConfiguration, channels: [String], logger: Logger,
        onReconnect: @escaping @Sendable () -> Void = {}, onMessage: @escaping @Sendable (Message) -> Void
    ) {
        precondition(!channels.isEmpty, "a subscriber needs at least one channel")
        self.configuration = configuration
        self.channels = channels
        self.logger = logger
        self.onReconnect = onReconnect
        self.onMessage = onMessage
    }

    deinit { stop() }

    /// Starts the thread. Calling it again, or after `stop()`, does nothing.
    public func start() {
        guard control.begin() else { return }
        let thread = Thread { [self] in
            control.enter()
            run()
            control.finish()
        }
        thread.name = "bursar-redis-sub"
        thread.start()
    }

    /// Stops the thread and waits for it to exit. A blocked read is woken by shutting the socket
    /// down; a connect in progress finishes first (at most `connectTimeoutMs`). Idempotent.
    /// Called from a handler, it does not wait (the thread exits after the handler returns).
    public func stop() {
        control.stop()
    }

    private func run() {
        var backoffMs = 0
        var attempt = 0
        reconnecting: while !control.isStopping {
            do throws(RedisError) {
                let endpoint: RedisEndpoint
                switch configuration.target {
                case .server(let e): endpoint = e
                case .cluster(let seeds):
                    // A cluster delivers every PUBLISH to every node, and each sentinel announces
                    // the switches it learns of (RedisClient's watcher): any seed that answers will do.
                    endpoint = seeds[attempt % seeds.count]
                    attempt += 1
                case .sentinel(let sentinels, let master, let db):
                    endpoint = try SentinelResolver.master(
                        sentinels: sentinels, name: master, db: db, connectTimeoutMs: configuration.connectTimeoutMs,
                        ioTimeoutMs: configuration.ioTimeoutMs)
                }
                let connection = try RedisConnection(
                    endpoint: endpoint, connectTimeoutMs: configuration.connectTimeoutMs,
                    ioTimeoutMs: configuration.ioTimeoutMs)
                defer {
                    connection.close()
                    control.forgetSocket()
                }
                guard control.watch(connection.fileDescriptor) else { break reconnecting }
                try subscribe(connection)
                backoffMs = 0
                stats.connects.add(1, ordering: .relaxed)
                stats.connected.store(1, ordering: .relaxed)
                logger.info("redis subscriber connected", metadata: ["endpoint": "\(connection.endpoint)", "channels": "\(channels)"])
                onReconnect()
                try listen(connection)
                stats.connected.store(0, ordering: .relaxed)
            } catch {
                stats.connected.store(0, ordering: .relaxed)
                if control.isStopping { break reconnecting }
                stats.connectionErrors.add(1, ordering: .relaxed)
                backoffMs = backoffMs == 0 ? configuration.minBackoffMs : min(backoffMs * 2, configuration.maxBackoffMs)
                logger.warning("redis subscriber disconnected", metadata: ["error": "\(error)", "retry_in_ms": "\(backoffMs)"])
                control.sleep(milliseconds: backoffMs)
            }
        }
    }

    /// SUBSCRIBE and its confirmations: one `subscribe` reply per channel.
    private func subscribe(_ connection: RedisConnection) throws(RedisError) {
        try connection.send([RedisCommand(["SUBSCRIBE"] + channels)])
        for _ in channels {
            let reply = try connection.readReply()
            guard let parts = reply.array, parts.count == 3, parts[0].string == "subscribe" else {
                if case .error(let e) = reply { throw RedisError(.server, "SUBSCRIBE: \(e)") }
                throw RedisError(.unexpectedReply, "SUBSCRIBE was not confirmed")
            }
        }
    }

    /// Delivers messages until the connection breaks (throws) or `stop()` is called (returns).
    private func listen(_ connection: RedisConnection) throws(RedisError) {
        var pinged = false
        while !control.isStopping {
            if let reply = try connection.bufferedReply() {
                pinged = false
                try handle(reply)
                continue
            }
            // Idle: PING after `pingIntervalMs` of silence. Pinged: the answer may take up to
            // `ioTimeoutMs` (a busy machine or Redis stalls longer than one ping interval without
            // the connection being lost; reconnecting would flush every bursard's cache).
            var pfd = pollfd(fd: connection.fileDescriptor, events: Int16(POLLIN), revents: 0)
            let n = poll(&pfd, 1, Int32(clamping: pinged ? configuration.ioTimeoutMs : configuration.pingIntervalMs))
            if control.isStopping { return }
            if n < 0 {
                if errno == EINTR { continue }
                throw RedisError(.connectionLost, "poll on \(connection.endpoint): errno \(errno)")
            }
            if n == 0 {
                if pinged { throw RedisError(.connectionLost, "\(connection.endpoint) did not answer PING within \(configuration.ioTimeoutMs) ms") }
                try connection.send([RedisCommand("PING")])
                pinged = true
                continue
            }
            // Readable, closed or failed: hiredis reads and reports which.
            let reply = try connection.readReply()
            pinged = false
            try handle(reply)
        }
    }

    private func handle(_ reply: RedisValue) throws(RedisError) {
        switch reply {
        case .array(let parts) where parts.count == 3 && parts[0].string == "message":
            guard case .bulk(let payload) = parts[2], let channel = parts[1].string else {
                throw RedisError(.unexpectedReply, "pub/sub message has the wrong shape")
            }
            stats.messages.add(1, ordering: .relaxed)
            onMessage(Message(channel: channel, payload: payload))
        case .error(let e):
            throw RedisError(.server, e)
        default:
            break  // PING's "pong", and anything else that is not a message
        }
    }
}

/// The state `stop()` shares with the subscriber's thread.
private final class Control: @unchecked Sendable {
    private let condition = NSCondition()
    private var started = false
    private var stopping = false
    private var finished = false
    private var thread: pthread_t?
    /// A duplicate of the connection's socket, closed only under the lock, so that `stop()`
    /// can shut the socket down without racing the thread closing (and the kernel reusing) it.
    private var socket: Int32 = -1

    /// False if already started or stopped.
    func begin() -> Bool {
        condition.withLock {
            if started || stopping { return false }
            started = true
            return true
        }
    }

    func enter() {
        condition.withLock { thread = pthread_self() }
    }

    func finish() {
        condition.withLock {
            finished = true
            condition.broadcast()
        }
    }

    var isStopping: Bool { condition.withLock { stopping } }

    /// Remembers the connection's socket; false if stopping (the caller then closes it).
    func watch(_ fd: Int32) -> Bool {
        condition.withLock {
            if stopping { return false }
            socket = dup(fd)
            return true
        }
    }

    func forgetSocket() {
        condition.withLock {
            if socket >= 0 { close(socket) }
            socket = -1
        }
    }

    /// Sleeps unless stopped first.
    func sleep(milliseconds: Int) {
        let until = Date().addingTimeInterval(Double(milliseconds) / 1000)
        condition.withLock {
            while !stopping && condition.wait(until: until) {}
        }
    }

    func stop() {
        condition.withLock {
            stopping = true
            if socket >= 0 { _ = shutdown(socket, Int32(SHUT_RDWR)) }
            condition.broadcast()
            if let thread, pthread_equal(thread, pthread_self()) != 0 { return }
            while started && !finished { condition.wait() }
        }
    }
}
