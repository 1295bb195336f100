import CHiredis
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Redis connections that live on event loops: one non-blocking connection per loop of a group,
/// serving the requests submitted `on:` that loop (`RedisClient.submit`). A request goes from the
/// loop that read its frame to Redis and its completion runs there, with no thread hand-off and no
/// wake-up of another thread on the way. hiredis's reader parses the replies from the bytes NIO
/// read (`redisReaderFeed`); the commands are encoded as RESP straight into the channel's buffer.
///
/// Made once for a group, before any request: the table of loops is fixed from then on, so
/// finding a loop's connection takes no lock.
final class LoopConnections: Sendable {
    private let byLoop: [ObjectIdentifier: LoopConnection]

    /// Made by `client` at the end of its init (the connections refer back to it, unowned: the
    /// client owns them).
    init(group: any EventLoopGroup, endpoint: RedisEndpoint, client: RedisClient) {
        var byLoop: [ObjectIdentifier: LoopConnection] = [:]
        for (index, loop) in group.makeIterator().enumerated() {
            byLoop[ObjectIdentifier(loop)] = LoopConnection(loop: loop, endpoint: endpoint, client: client, index: index)
        }
        self.byLoop = byLoop
    }

    /// Connects every loop's connection now, ahead of the first request.
    func start() {
        for connection in byLoop.values { connection.start() }
    }

    /// The connection of `loop`, nil if `loop` is not one of the group's.
    func connection(for loop: any EventLoop) -> LoopConnection? { byLoop[ObjectIdentifier(loop)] }

    /// How many of the connections are connected.
    var ready: Int { byLoop.values.reduce(0) { $0 + ($1.isReady.load(ordering: .relaxed) ? 1 : 0) } }

    /// Sends what is queued, then closes every connection; later requests fail with `.shutdown`.
    func shutdown() {
        for connection in byLoop.values { connection.shutdown() }
    }
}

/// The life of one loop's connection to Redis: an explicit state, changed only on its loop.
enum LoopConnectionState {
    /// No connection: the next request starts making one (and goes through the client's threads).
    case idle
    /// The last attempt to connect failed: requests go through the client's threads, and the next
    /// one once the backoff is over (`ConnectBackoff`) connects again.
    case backingOff
    /// Connecting (and selecting the database): requests go through the client's threads.
    case connecting(generation: Int)
    /// Connected. At most one round trip is in flight; what arrives meanwhile waits in the queue and
    /// goes as the next round trip, all of it in one write.
    case ready(any Channel, generation: Int)
    /// Shut down: every request fails with `.shutdown`.
    case closed
}

/// One event loop's connection to Redis (see `LoopConnections`). Every property is touched only on
/// `loop`; requests submitted from another thread hop to it first.
final class LoopConnection: @unchecked Sendable {
    let loop: any EventLoop
    let endpoint: RedisEndpoint
    /// Unowned: the client owns its connections. Read only where the client is known to be
    /// alive: while connecting or ready (`retained`), or in a hop whose closure captured it.
    /// Events that can arrive after the client's last user let it go (a channel's end after a
    /// shutdown closed it, a late SELECT answer) check the state first.
    private unowned let client: RedisClient
    private let index: Int
    private var state = LoopConnectionState.idle {
        // While connecting or connected, channel events and timers may still call in after the
        // client's last user let it go: the connection keeps its client alive until then.
        didSet {
            switch state {
            case .connecting, .ready: retained = client
            case .idle, .backingOff, .closed: retained = nil
            }
            if case .ready = state { isReady.store(true, ordering: .relaxed) } else { isReady.store(false, ordering: .relaxed) }
        }
    }
    private var retained: RedisClient?
    /// Whether `state` is `ready`, for readers on other threads (tests, metrics).
    let isReady = Atomic<Bool>(false)
    /// Requests waiting to be sent.
    private var lanes = RequestLanes()
    /// The round trip written and not yet fully answered.
    private var inFlight: RoundTrip?
    /// A task to send what is queued is on the loop's queue: everything submitted in this pass of
    /// the loop (every frame of one read) goes out in one write.
    private var sendScheduled = false
    /// Shutting down: nothing more is taken; the connection closes once the queue is sent.
    private var draining = false
    /// Counts the channels made, so that an event of a channel already given up is ignored.
    private var generation = 0
    private var backoff = ConnectBackoff()
    /// The one timer watching the round trip in flight against the I/O timeout.
    private var ioTimer: Scheduled<Void>?
    /// hiredis's reader for the current channel, building replies with `builder`.
    private var reader: UnsafeMutablePointer<redisReader>?
    private let builder = ReplyBuilder()
    /// The RESP of a round trip, encoded here and written as one buffer.
    private var outgoing: [UInt8] = []

    init(loop: any EventLoop, endpoint: RedisEndpoint, client: RedisClient, index: Int) {
        self.loop = loop
        self.endpoint = endpoint
        self.client = client
        self.index = index
    }

    deinit {
        if let reader { redisReaderFree(reader) }
    }

    /// Takes a request; its completion runs on this loop. Until the connection is made (at start,
    /// after a loss, while Redis cannot be reached) the request goes through the client's threads
    /// instead, which have connections of their own: a request never waits for this connection
    /// to be made, nor fails because it is not.
    func submit(_ item: Pending) {
        if loop.inEventLoop {
            enqueue(item)
        } else {
            // The client, held until the request is queued: its caller may let it go meanwhile.
            loop.execute { [client] in
                withExtendedLifetime(client) { self.enqueue(item) }
            }
        }
    }

    func shutdown() {
        loop.execute { [client] in
            withExtendedLifetime(client) {}
            self.draining = true
            self.closeIfDrained()
        }
    }

    private func enqueue(_ item: Pending) {
        if draining {
            return item.completion(.failure(.clientShutDown))
        }
        switch state {
        case .closed:
            return item.completion(.failure(.clientShutDown))
        case .ready:
            lanes.push(item)
            scheduleSend()
        case .backingOff where backoff.waiting(now: .now(), stats: client.stats):
            client.sendThroughThreads(item)
        case .idle, .backingOff:
            connect()
            client.sendThroughThreads(item)
        case .connecting:
            client.sendThroughThreads(item)
        }
    }

    /// Starts connecting, if nothing has yet.
    func start() {
        loop.execute { [client] in
            withExtendedLifetime(client) {}
            if case .idle = self.state, !self.draining { self.connect() }
        }
    }

    private func scheduleSend() {
        guard inFlight == nil, !sendScheduled else { return }
        sendScheduled = true
        loop.execute {
            self.sendScheduled = false
            self.sendQueued()
        }
    }

    // MARK: Connecting

    private func connect() {
        generation += 1
        let generation = generation
        state = .connecting(generation: generation)
        let config = client.configuration
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.milliseconds(Int64(config.connectTimeoutMs)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(LoopConnectionHandler(connection: self, generation: generation))
                }
            }
        let connected: EventLoopFuture<any Channel>
        switch endpoint {
        case .tcp(let host, let port, _):
            connected = bootstrap
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelOption(.socketOption(.so_keepalive), value: 1)
                .connect(host: host, port: port)
        case .unix(let path, _):
            connected = bootstrap.connect(unixDomainSocketPath: path)
        }
        connected.hop(to: loop).whenComplete { result in
            switch result {
            case .success(let channel): self.connected(channel, generation: generation)
            case .failure(let error): self.connectFailed("\(error)", generation: generation)
            }
        }
    }

    private func connected(_ channel: any Channel, generation: Int) {
        guard case .connecting(let current) = state, current == generation else {
            // Shut down (or given up) while connecting.
            channel.close(promise: nil)
            return
        }
        if let reader { redisReaderFree(reader) }
        builder.reset()
        reader = redisReaderCreateWithFunctions(ReplyBuilder.functions)
        if let reader { builder.install(on: reader) }
        state = .ready(channel, generation: generation)
        guard endpoint.db != 0 else { return established() }
        // The database first, before any request: a SELECT of its own.
        let select = RoundTrip(
            commands: 1,
            completion: { replies in
                if case .error(let e) = replies[0] {
                    self.connectFailed("SELECT \(self.endpoint.db): \(e)", generation: generation)
                } else {
                    self.established()
                }
            },
            failure: { error in self.connectFailed("SELECT \(self.endpoint.db): \(error)", generation: generation) })
        write([RedisCommand("SELECT", String(endpoint.db))], as: select)
    }

    private func established() {
        // A SELECT answered after the connection was given up or shut down: nothing to do (and
        // the client may be gone: see `client`).
        guard case .ready = state else { return }
        backoff.succeeded()
        client.stats.connects.add(1, ordering: .relaxed)
        client.stats.connected.store(1, ordering: .relaxed)
        client.log.info("redis connected", metadata: ["endpoint": "\(endpoint)", "loop": "\(index)"])
        sendQueued()
    }

    /// The connection could not be made: requests go through the client's threads until the
    /// backoff has passed.
    private func connectFailed(_ reason: String, generation: Int) {
        switch state {
        case .connecting(let current) where current == generation: break
        case .ready(let channel, let current) where current == generation: channel.close(promise: nil)
        default: return
        }
        // Read only now: connecting or ready, the connection holds its client (`retained`). A
        // late event of a connection already closed must not touch a client that may be gone.
        let client = self.client  // alive to the end, whatever the state becomes
        inFlight = nil
        ioTimer?.cancel()
        ioTimer = nil
        backoff.failed(now: .now(), configuration: client.configuration, stats: client.stats)
        state = .backingOff
        client.stats.connectionErrors.add(1, ordering: .relaxed)
        client.log.warning("redis connect failed", metadata: ["error": "\(reason)", "retry_in_ms": "\(backoff.delayMs)", "loop": "\(index)"])
        if draining {
            failQueued(.clientShutDown)
        } else {
            for item in lanes.removeAll() { client.sendThroughThreads(item) }
        }
        closeIfDrained()
    }

    // MARK: Round trips

    /// Sends everything queued (up to the batch size) as one round trip, if none is in flight.
    private func sendQueued() {
        guard case .ready = state, inFlight == nil else { return }
        if lanes.isEmpty { return closeIfDrained() }
        let batch = lanes.take(max: client.configuration.maxBatch, stats: client.stats)
        let (live, refused) = client.unexpired(batch, now: .now())
        for (item, error) in refused { item.completion(.failure(error)) }
        guard !live.isEmpty else { return sendQueued() }
        let plan = client.plan(live)
        let commands = plan.commands
        client.stats.roundTrips.add(1, ordering: .relaxed)
        client.stats.commands.add(commands.count, ordering: .relaxed)
        let started = ContinuousClock.now
        let trip = RoundTrip(
            commands: commands.count,
            completion: { replies in
                let elapsed = ContinuousClock.now - started
                self.client.stats.record(roundTrip: elapsed)
                self.client.configuration.onRoundTrip?(live.count, elapsed)
                self.reloadingScripts(replies, of: commands) { replies in
                    for (i, item) in live.enumerated() {
                        item.completion(.success(plan.replies(of: i, count: item.commands.count, in: replies)))
                    }
                }
            },
            failure: { error in
                for item in live { item.completion(.failure(error)) }
            })
        write(commands, as: trip)
    }

    /// Heals NOSCRIPT replies (Redis lost its script cache: restart, SCRIPT FLUSH): every
    /// registered script is loaded and the refused commands run again, in one more round trip,
    /// before `deliver` gets the replies. A NOSCRIPT reply means the command did not run.
    private func reloadingScripts(_ replies: [RedisValue], of commands: [RedisCommand], deliver: @escaping ([RedisValue]) -> Void) {
        guard let reload = client.scriptReload(for: replies, of: commands) else { return deliver(replies) }
        let again = RoundTrip(
            commands: reload.commands.count,
            completion: { retried in
                var replies = replies
                reload.apply(retried, to: &replies)
                deliver(replies)
            },
            failure: { error in
                // The first round trip's other commands ran; the refused ones may have run now.
                deliver(replies.indices.map { reload.refused.contains($0) ? .error("ERR \(error)") : replies[$0] })
            })
        write(reload.commands, as: again)
    }

    /// Writes `commands` as one buffer; `trip` gets their replies.
    private func write(_ commands: [RedisCommand], as trip: RoundTrip) {
        guard case .ready(let channel, _) = state else { return trip.failure(RedisError(.connectionFailed, "not connected")) }
        outgoing.removeAll(keepingCapacity: true)
        for command in commands { command.encodeRESP(into: &outgoing) }
        var buffer = channel.allocator.buffer(capacity: outgoing.count)
        buffer.writeBytes(outgoing)
        inFlight = trip
        armTimer()
        channel.writeAndFlush(buffer, promise: nil)
    }

    /// Bytes read from Redis: every reply they complete goes to the round trip in flight.
    fileprivate func received(_ bytes: ByteBuffer, generation: Int) {
        guard case .ready(_, let current) = state, current == generation, let reader else { return }
        let fed = bytes.withUnsafeReadableBytes { raw in
            redisReaderFeed(reader, raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count)
        }
        guard fed == REDIS_OK else { return lost("reply unreadable", generation: generation) }
        while true {
            var raw: UnsafeMutableRawPointer?
            guard redisReaderGetReply(reader, &raw) == REDIS_OK else { return lost("reply unreadable", generation: generation) }
            guard raw != nil, let reply = builder.take() else { return }
            guard let trip = inFlight else { return lost("a reply nobody asked for", generation: generation) }
            trip.replies.append(reply)
            if trip.replies.count == trip.commands {
                inFlight = nil
                trip.completion(trip.replies)
                // The completion may have sent a round trip of its own (scripts reloaded).
                if inFlight == nil { sendQueued() }
            }
            // A completion may have lost or replaced the connection.
            guard case .ready(_, let now) = state, now == generation else { return }
        }
    }

    /// The connection broke, timed out or answered nonsense: the round trip in flight fails with
    /// `connectionLost` (it may or may not have run); what is queued goes through the client's
    /// threads while a new connection is made.
    fileprivate func lost(_ reason: String, generation: Int) {
        // The channel's end arrives after a shutdown closed it (state `.closed`, the client
        // possibly gone): the state is checked before the client is read.
        guard case .ready(let channel, let current) = state, current == generation else { return }
        let client = self.client  // alive to the end, whatever the state becomes
        channel.close(promise: nil)
        state = .idle
        ioTimer?.cancel()
        ioTimer = nil
        client.stats.connected.store(0, ordering: .relaxed)
        client.stats.connectionErrors.add(1, ordering: .relaxed)
        client.log.warning("redis connection lost", metadata: ["error": "\(reason)", "endpoint": "\(endpoint)", "loop": "\(index)"])
        if let trip = inFlight {
            inFlight = nil
            trip.failure(RedisError(.connectionLost, "\(reason) on \(endpoint)"))
        }
        if draining {
            failQueued(.clientShutDown)
            state = .closed
        } else {
            // What was waiting behind the lost round trip was never sent: the threads send it.
            for item in lanes.removeAll() { client.sendThroughThreads(item) }
            connect()
        }
    }

    private func failQueued(_ error: RedisError) {
        for item in lanes.removeAll() { item.completion(.failure(error)) }
    }

    /// One timer per connection, not per round trip: it fires when the round trip in flight could
    /// first have outlived the I/O timeout, and re-arms for the one in flight then.
    private func armTimer() {
        guard ioTimer == nil, let trip = inFlight else { return }
        let timeout = TimeAmount.milliseconds(Int64(client.configuration.ioTimeoutMs))
        ioTimer = loop.scheduleTask(deadline: trip.started + timeout) {
            self.ioTimer = nil
            guard let trip = self.inFlight, case .ready(_, let generation) = self.state else { return }
            if NIODeadline.now() - trip.started >= timeout {
                self.lost("timed out", generation: generation)
            } else {
                self.armTimer()
            }
        }
    }

    private func closeIfDrained() {
        guard draining, inFlight == nil, lanes.isEmpty else { return }
        if case .ready(let channel, _) = state {
            let client = self.client  // held by `retained` while ready
            channel.close(promise: nil)
            client.stats.connected.store(0, ordering: .relaxed)
        }
        ioTimer?.cancel()
        ioTimer = nil
        state = .closed
    }
}

/// A round trip written and waiting for its replies, one per command, in order.
private final class RoundTrip {
    let commands: Int
    let started = NIODeadline.now()
    var replies: [RedisValue] = []
    let completion: ([RedisValue]) -> Void
    let failure: (RedisError) -> Void

    init(commands: Int, completion: @escaping ([RedisValue]) -> Void, failure: @escaping (RedisError) -> Void) {
        self.commands = commands
        self.completion = completion
        self.failure = failure
        replies.reserveCapacity(commands)
    }
}

/// Passes a channel's reads and its end to its `LoopConnection`, tagged with the channel's
/// generation.
private final class LoopConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let connection: LoopConnection
    let generation: Int

    init(connection: LoopConnection, generation: Int) {
        self.connection = connection
        self.generation = generation
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        connection.received(unwrapInboundIn(data), generation: generation)
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.lost("connection closed by the server", generation: generation)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        connection.lost("\(error)", generation: generation)
        context.close(promise: nil)
    }
}
