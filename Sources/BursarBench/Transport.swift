import BursarClient
import BursarRedis
import BursarStore
import BursarWire
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Where one lane of the harness sends its decisions. Every future completes on `eventLoop`.
protocol DecisionTransport: Sendable {
    /// The loop every answer arrives on (the driver of this lane runs there).
    var eventLoop: any EventLoop { get }
    /// A CHECK for the key `identity` (bursard resolves the digest itself and ignores it).
    func check(_ request: CheckRequest, identity: KeyIdentity) -> EventLoopFuture<CheckResult>
    /// A SETTLE.
    func settle(_ request: SettleRequest) -> EventLoopFuture<ReservationResult>
    /// A RELEASE.
    func release(_ reservation: ReservationID) -> EventLoopFuture<ReservationResult>
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

/// A connection to bursard's data plane. Requests are written unflushed; the lane flushes once
/// per event-loop pass.
struct BursardTransport: DecisionTransport {
    let connection: BursarConnection

    /// Connects to `target` on `loop`, so that a lane reconnecting stays on its own loop.
    static func connect(_ target: BenchTarget, on loop: any EventLoop) -> EventLoopFuture<any DecisionTransport> {
        let promise = loop.makePromise(of: (any DecisionTransport).self)
        promise.completeWithTask {
            switch target {
            case .tcp(let host, let port): BursardTransport(connection: try await BursarConnection.connect(host: host, port: port, group: loop))
            case .unix(let path): BursardTransport(connection: try await BursarConnection.connect(unixSocketPath: path, group: loop))
            }
        }
        return promise.futureResult
    }

    var eventLoop: any EventLoop { connection.channel.eventLoop }

    func check(_ request: CheckRequest, identity: KeyIdentity) -> EventLoopFuture<CheckResult> {
        connection.request(.check(request), flush: false).flatMapThrowing { frame in
            guard case .checkResult(let r) = frame.body else { throw UnexpectedAnswer(frame: frame) }
            return r
        }
    }

    func settle(_ request: SettleRequest) -> EventLoopFuture<ReservationResult> {
        connection.request(.settle(request), flush: false).flatMapThrowing { frame in
            guard case .settleResult(let r) = frame.body else { throw UnexpectedAnswer(frame: frame) }
            return r
        }
    }

    func release(_ reservation: ReservationID) -> EventLoopFuture<ReservationResult> {
        connection.request(.release(ReleaseRequest(reservation: reservation)), flush: false).flatMapThrowing { frame in
            guard case .releaseResult(let r) = frame.body else { throw UnexpectedAnswer(frame: frame) }
            return r
        }
    }

    func flush() { connection.flush() }

    /// The client fails every outstanding request with `BursarClientError` when the connection
    /// closes (and a write on a closed one at once); answers that do not fit are `UnexpectedAnswer`.
    func isConnectionLoss(_ error: any Error) -> Bool { error is BursarClientError }

    func close() async { await connection.close() }
}

/// The floor: the same atomic steps bursard would run, sent by the harness straight to Redis with
/// bursar's own scripts, through a Redis client configured like bursard's (same connections,
/// same coalescing of everything queued into one pipelined round trip). Key identities are known
/// from seeding, as bursard knows them from its cache after the first CHECK of each key.
struct DirectTransport: DecisionTransport {
    let redis: RedisClient
    let limiter: Limiter
    let eventLoop: any EventLoop
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

    func check(_ request: CheckRequest, identity: KeyIdentity) -> EventLoopFuture<CheckResult> {
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

    func settle(_ request: SettleRequest) -> EventLoopFuture<ReservationResult> {
        submit(limiter.settleCommand(request)) { [limiter] in try limiter.parseSettle($0) }
    }

    func release(_ reservation: ReservationID) -> EventLoopFuture<ReservationResult> {
        submit(limiter.releaseCommand(reservation)) { [limiter] in try limiter.parseSettle($0) }
    }

    /// The client is shared by every lane and shut down by the runner.
    func close() async {}
}
