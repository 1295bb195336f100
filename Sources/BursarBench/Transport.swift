import BursarRedis
import BursarStore
import BursarWire
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Where one lane of the harness sends its decisions. Every request carries its lane's token, and
/// its answer is handed back with it to the lane (`Driver.answered(_:_:)`) on `eventLoop`: no
/// future, promise or closure is made per request, so the harness spends on a request little more
/// than its bytes (it shares the machine with what it measures).
protocol DecisionTransport: AnyObject, Sendable {
    /// The loop every answer arrives on (the driver of this lane runs there).
    var eventLoop: any EventLoop { get }
    /// Makes `driver` the one its answers go to; called on `eventLoop` before its first request.
    func attach(_ driver: Driver)
    /// A CHECK for the key `identity` (bursard resolves the digest itself and ignores it). False
    /// when it cannot be sent: the lane's connection is gone, and no answer will come.
    func check(_ request: CheckRequest, identity: KeyIdentity, token: Driver.Token) -> Bool
    /// A SETTLE; false as for `check`.
    func settle(_ request: SettleRequest, token: Driver.Token) -> Bool
    /// A RELEASE; false as for `check`.
    func release(_ reservation: ReservationID, token: Driver.Token) -> Bool
    /// Closes the lane; every request still outstanding fails.
    func close() async
    /// Sends what the requests above left buffered. A transport may hold requests until then, so
    /// that a lane sending many in one event-loop pass writes them together.
    func flush()
    /// True when `error` (a failed request) means the lane's connection is gone: the request got
    /// no answer, and the lane may carry on over a new connection.
    func isConnectionLoss(_ error: any Error) -> Bool
}

extension DecisionTransport {
    /// Sends at once.
    func flush() {}
    /// A transport without connections of its own never loses one.
    func isConnectionLoss(_ error: any Error) -> Bool { false }
}

/// An answer that does not fit its request: an ERROR frame (the server refused the request and
/// closes the connection) or an answer of another type. A fault of the target or the harness,
/// counted in `errors`, never a lost connection.
struct UnexpectedAnswer: Error, CustomStringConvertible {
    /// The answer.
    var frame: Frame
    var description: String { "unexpected answer: \(frame.body)" }
}

/// The lane's connection closed (or could not be written) with the request outstanding: it got no
/// answer.
struct LaneConnectionLost: Error, CustomStringConvertible {
    var description: String { "connection to the target lost" }
}

/// A lane's connection to bursard's data plane, the harness's own: one handler that writes the
/// lane's requests into one buffer, flushed once per event-loop pass, and reads the answers in
/// place, handing each to the lane with its token. The answers are matched by request id, so any
/// number may be outstanding, answered in any order. (`BursarConnection`, the Swift client, gives
/// each request a future; profiled under closed-1x, its promises, boxed frames and generic
/// metadata lookups were a third of the harness's CPU.)
final class BursardTransport: DecisionTransport, @unchecked Sendable {
    // Only `channel` and `handler` are touched off the loop (`close`); the handler itself only on it.
    private let channel: any Channel
    private let handler: LaneHandler

    private init(channel: any Channel, handler: LaneHandler) {
        self.channel = channel
        self.handler = handler
    }

    /// Connects to `target` on `loop`, so that a lane reconnecting stays on its own loop.
    static func connect(_ target: BenchTarget, on loop: any EventLoop) -> EventLoopFuture<any DecisionTransport> {
        let bootstrap = ClientBootstrap(group: loop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(LaneHandler()) }
            }
        let connected = switch target {
        case .tcp(let host, let port): bootstrap.connect(host: host, port: port)
        case .unix(let path): bootstrap.connect(unixDomainSocketPath: path)
        }
        return connected.flatMapThrowing { channel in
            BursardTransport(channel: channel, handler: try channel.pipeline.syncOperations.handler(type: LaneHandler.self))
        }
    }

    var eventLoop: any EventLoop { channel.eventLoop }

    func attach(_ driver: Driver) { handler.driver = driver }

    func check(_ request: CheckRequest, identity: KeyIdentity, token: Driver.Token) -> Bool {
        handler.send(.check(request), expecting: .checkResult, token: token)
    }

    func settle(_ request: SettleRequest, token: Driver.Token) -> Bool {
        handler.send(.settle(request), expecting: .settleResult, token: token)
    }

    func release(_ reservation: ReservationID, token: Driver.Token) -> Bool {
        handler.send(.release(ReleaseRequest(reservation: reservation)), expecting: .releaseResult, token: token)
    }

    func flush() { handler.flush() }

    /// Requests outstanding when the connection closes fail with `LaneConnectionLost` (and are not
    /// sent after it); answers that do not fit are `UnexpectedAnswer`.
    func isConnectionLoss(_ error: any Error) -> Bool { error is LaneConnectionLost }

    func close() async { try? await channel.close() }
}

/// The pipeline's one handler of a `BursardTransport`; every member is touched on its loop only.
final class LaneHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The lane answers go to (strong until the connection closes, then released).
    var driver: Driver?
    private var context: ChannelHandlerContext?
    /// Requests outstanding by request id: the lane's token and the answer type that fits.
    private var waiting: [UInt64: (token: Driver.Token, expected: FrameType)] = [:]
    private var nextID: UInt64 = 1
    /// Requests encoded and not yet flushed.
    private var output: ByteBuffer?
    /// The answers read, decoded as bursard's own frame decoder does, with the bytes of one not
    /// yet complete kept for the next read.
    private let answers = NIOSingleStepByteToMessageProcessor(FrameDecoder(direction: .toClient))
    private var closed = false

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        waiting.reserveCapacity(256)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        failWaiting()
    }

    /// Encodes a request behind the ones not yet flushed; false on a closed connection.
    func send(_ body: Frame.Body, expecting: FrameType, token: Driver.Token) -> Bool {
        guard !closed, let context else { return false }
        let id = nextID
        nextID &+= 1
        waiting[id] = (token, expecting)
        if output == nil { output = context.channel.allocator.buffer(capacity: 4096) }
        Frame(requestID: id, body: body).encode(into: &output!)
        return true
    }

    func flush() {
        guard let context, let bytes = output, bytes.readableBytes > 0 else { return }
        // Handed over whole; the next request starts a new buffer (the channel holds this one
        // until it is written). A write that fails closes the connection, which fails what waits.
        output = nil
        context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        do {
            try answers.process(buffer: unwrapInboundIn(data)) { answered($0) }
        } catch {
            context.close(promise: nil)
        }
    }

    private func answered(_ frame: Frame) {
        guard let (token, expected) = waiting.removeValue(forKey: frame.requestID), let driver else { return }
        switch (frame.body, expected) {
        case (.checkResult(let r), .checkResult): driver.answered(token, .check(r))
        case (.settleResult(let r), .settleResult), (.releaseResult(let r), .releaseResult): driver.answered(token, .reservation(r))
        default: driver.answered(token, .failed(UnexpectedAnswer(frame: frame)))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failWaiting()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// The connection is gone: every outstanding request fails, and no later one is sent. The
    /// lane is let go (it holds this connection).
    private func failWaiting() {
        closed = true
        output = nil
        let outstanding = waiting
        waiting = [:]
        if let driver {
            for (_, entry) in outstanding { driver.answered(entry.token, .failed(LaneConnectionLost())) }
        }
        driver = nil
    }
}

/// The floor: the same atomic steps bursard would run, sent by the harness straight to Redis with
/// bursar's own scripts, through a Redis client configured like bursard's (same connections,
/// same coalescing of everything queued into one pipelined round trip). Key identities are known
/// from seeding, as bursard knows them from its cache after the first CHECK of each key.
final class DirectTransport: DecisionTransport, @unchecked Sendable {
    let redis: RedisClient
    let limiter: Limiter
    let eventLoop: any EventLoop
    /// Set on `eventLoop` before the first request; read there when answers arrive.
    private var driver: Driver?

    init(redis: RedisClient, limiter: Limiter, eventLoop: any EventLoop) {
        self.redis = redis
        self.limiter = limiter
        self.eventLoop = eventLoop
    }

    func attach(_ driver: Driver) { self.driver = driver }
    /// The deadline given to each request (long: the floor measures Redis, not timeouts).
    static let deadline = TimeAmount.seconds(5)

    /// A Redis client configured like bursard's default, with the limiter's scripts registered.
    static func client(url: String) throws -> (RedisClient, Limiter) {
        var logger = Logger(label: "bursar-bench.direct")
        logger.logLevel = .error
        let client = RedisClient(
            configuration: RedisClientConfiguration(target: try RedisTarget(url: url), eventLoops: MultiThreadedEventLoopGroup.singleton), logger: logger)
        let limiter = Limiter()
        client.register(limiter.scripts)
        client.batch(limiter.batches)
        return (client, limiter)
    }

    private func submit<T: Sendable>(_ command: RedisCommand, _ parse: @escaping @Sendable (RedisValue) throws -> T) -> EventLoopFuture<T> {
        let promise = eventLoop.makePromise(of: T.self)
        redis.submit([command], deadline: .now() + Self.deadline, on: eventLoop) { result in
            promise.completeWith(Result { try parse(result.get()[0]) })
        }
        return promise.futureResult
    }

    /// The floor chooses reservation sequences as bursard does, under an epoch of its own: it
    /// runs on an organization of its own, so no bursard's sequence can meet one of these.
    static let epoch = ReservationSequence.maxEpoch
    static let counter = Atomic<UInt64>(0)

    /// Hands `answer`'s outcome to the lane, on the lane's loop.
    private func deliver<T>(_ answer: EventLoopFuture<T>, token: Driver.Token, _ wrap: @escaping @Sendable (T) -> Driver.Answer) {
        answer.whenComplete { [self] result in
            switch result {
            case .success(let value): driver?.answered(token, wrap(value))
            case .failure(let error): driver?.answered(token, .failed(error))
            }
        }
    }

    func check(_ request: CheckRequest, identity: KeyIdentity, token: Driver.Token) -> Bool {
        deliver(check(request, identity: identity), token: token) { .check($0) }
        return true
    }

    func settle(_ request: SettleRequest, token: Driver.Token) -> Bool {
        deliver(submit(limiter.settleCommand(request)) { [limiter] in try limiter.parseSettle($0) }, token: token) { .reservation($0) }
        return true
    }

    func release(_ reservation: ReservationID, token: Driver.Token) -> Bool {
        deliver(submit(limiter.releaseCommand(reservation)) { [limiter] in try limiter.parseSettle($0) }, token: token) { .reservation($0) }
        return true
    }

    private func check(_ request: CheckRequest, identity: KeyIdentity) -> EventLoopFuture<CheckResult> {
        let reservation = ReservationID(
            orgID: identity.orgID,
            sequence: ReservationSequence.make(epoch: Self.epoch, counter: Self.counter.wrappingAdd(1, ordering: .relaxed).newValue))
        let command = limiter.checkCommand(request, identity: identity, sequence: reservation.sequence)
        let answer = submit(command) { [limiter] reply -> CheckResult in
            guard case .decided(let result) = try limiter.parseCheck(reply, identity: identity, reservation: reservation) else {
                throw RedisError(.unexpectedReply, "a fresh sequence was found taken")
            }
            return result
        }
        // Delivered, as bursard confirms each admission it hands to a client: batched the same
        // way (one command per organization for whatever queued while the last was in flight).
        return answer.map { [redis] result in
            if result.allowed { Self.confirmations.add(reservation, redis: redis) }
            return result
        }
    }

    /// The floor's delivery confirmations, batched like bursard's.
    static let confirmations = Confirmations()

    final class Confirmations: Sendable {
        private struct State {
            var pending: [UInt64: [UInt64]] = [:]
            var sending = false
        }
        private let state = Mutex(State())

        func add(_ reservation: ReservationID, redis: RedisClient) {
            state.withLock { $0.pending[reservation.orgID, default: []].append(reservation.sequence) }
            send(redis)
        }

        private func send(_ redis: RedisClient) {
            let batch = state.withLock { s -> [UInt64: [UInt64]] in
                guard !s.sending, !s.pending.isEmpty else { return [:] }
                s.sending = true
                defer { s.pending.removeAll() }
                return s.pending
            }
            guard !batch.isEmpty else { return }
            let commands = batch.map { Limiter.deliveredCommand(org: $0.key, sequences: $0.value) }
            redis.submit(commands, deadline: .now() + DirectTransport.deadline, lane: .priority) { [self] _ in
                state.withLock { $0.sending = false }
                send(redis)
            }
        }
    }

    /// The client is shared by every lane and shut down by the runner.
    func close() async {}
}
