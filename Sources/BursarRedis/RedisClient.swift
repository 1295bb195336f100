public import NIOCore
import Foundation
public import Logging
public import Synchronization

/// How a `RedisClient` connects and batches.
public struct RedisClientConfiguration: Sendable {
    /// The server, cluster or sentinels.
    public var target: RedisTarget
    /// Connections, each owned by its own thread. Two lets one batch be in flight while the next
    /// gathers; more rarely helps, Redis being single-threaded.
    public var connections: Int
    /// Time allowed to connect.
    public var connectTimeoutMs: Int
    /// Time allowed for any one read or write before the connection is declared lost.
    public var ioTimeoutMs: Int
    /// Most requests written in one round trip.
    public var maxBatch: Int
    /// First reconnect delay after a failure; doubles on each failure up to `maxBackoffMs`.
    public var minBackoffMs: Int
    /// Largest reconnect delay.
    public var maxBackoffMs: Int
    /// Called on the connection's thread after every pipelined round trip with the number of
    /// requests it carried and how long the write-and-read took (for histograms). Must not block.
    public var onRoundTrip: (@Sendable (_ requests: Int, _ elapsed: Duration) -> Void)?

    /// A configuration with production defaults, for one server.
    public init(
        endpoint: RedisEndpoint, connections: Int = 2, connectTimeoutMs: Int = 250, ioTimeoutMs: Int = 1000,
        maxBatch: Int = 512, minBackoffMs: Int = 10, maxBackoffMs: Int = 1000,
        onRoundTrip: (@Sendable (_ requests: Int, _ elapsed: Duration) -> Void)? = nil
    ) {
        self.init(
            target: .server(endpoint), connections: connections, connectTimeoutMs: connectTimeoutMs, ioTimeoutMs: ioTimeoutMs,
            maxBatch: maxBatch, minBackoffMs: minBackoffMs, maxBackoffMs: maxBackoffMs, onRoundTrip: onRoundTrip)
    }

    /// A configuration with production defaults.
    public init(
        target: RedisTarget, connections: Int = 2, connectTimeoutMs: Int = 250, ioTimeoutMs: Int = 1000,
        maxBatch: Int = 512, minBackoffMs: Int = 10, maxBackoffMs: Int = 1000,
        onRoundTrip: (@Sendable (_ requests: Int, _ elapsed: Duration) -> Void)? = nil
    ) {
        self.onRoundTrip = onRoundTrip
        self.target = target
        self.connections = connections
        self.connectTimeoutMs = connectTimeoutMs
        self.ioTimeoutMs = ioTimeoutMs
        self.maxBatch = maxBatch
        self.minBackoffMs = minBackoffMs
        self.maxBackoffMs = maxBackoffMs
    }
}

/// Counters a client keeps about itself (read by the metrics endpoint).
public final class RedisClientStats: Sendable {
    /// Pipelined writes made (one per batch).
    public let roundTrips = Atomic<Int>(0)
    /// Commands sent.
    public let commands = Atomic<Int>(0)
    /// Requests failed because their deadline passed before they could be sent.
    public let expiredBeforeSend = Atomic<Int>(0)
    /// Successful (re)connections.
    public let connects = Atomic<Int>(0)
    /// Connection failures and losses.
    public let connectionErrors = Atomic<Int>(0)
    /// NOSCRIPT replies handled by reloading scripts.
    public let scriptReloads = Atomic<Int>(0)
    /// 1 while at least one connection is up.
    public let connected = Atomic<Int>(0)
    /// Cluster: MOVED replies followed (the slot had a new owner).
    public let clusterMoved = Atomic<Int>(0)
    /// Cluster: ASK replies followed (the slot was migrating).
    public let clusterAsk = Atomic<Int>(0)
    /// Cluster: commands retried after TRYAGAIN, CLUSTERDOWN or a script refused mid-migration.
    public let clusterRetries = Atomic<Int>(0)
    /// Cluster: slot maps read (CLUSTER SLOTS).
    public let topologyRefreshes = Atomic<Int>(0)
    /// Sentinel: masters resolved through the sentinels.
    public let masterResolutions = Atomic<Int>(0)
    init() {}
}

/// A Redis client over hiredis. Requests from any thread are queued; each connection's thread
/// takes everything queued (up to `maxBatch`) and sends it as one pipelined round trip, so under
/// load one round trip serves many decisions. Nothing here ever blocks the caller.
public final class RedisClient: Sendable {
    /// Configuration.
    public let configuration: RedisClientConfiguration
    /// Self-observation.
    public let stats = RedisClientStats()
    private let queue: WorkQueue
    private let scripts: Mutex<[String: RedisScript]>
    private let logger: Logger

    /// Starts the connection threads. Connections are made lazily and re-made after failures.
    public init(configuration: RedisClientConfiguration, logger: Logger) {
        self.configuration = configuration
        self.queue = WorkQueue()
        self.scripts = Mutex([:])
        self.logger = logger
        let topology: ClusterTopology?
        if case .cluster(let seeds) = configuration.target { topology = ClusterTopology(seeds: seeds) } else { topology = nil }
        for i in 0..<max(1, configuration.connections) {
            let run: @Sendable () -> Void
            if let topology {
                let worker = ClusterWorker(client: self, topology: topology, index: i)
                run = { worker.run() }
            } else {
                let worker = Worker(client: self, index: i)
                run = { worker.run() }
            }
            let thread = Thread { run() }
            thread.name = "bursar-redis-\(i)"
            thread.start()
        }
    }

    /// Registers scripts so that NOSCRIPT replies are healed by loading them.
    public func register(_ list: [RedisScript]) {
        scripts.withLock { for s in list { $0[s.sha1] = s } }
    }

    /// Queues commands to be sent together, in order, in one round trip; `completion` gets one
    /// reply per command (error replies included) or a `RedisError` for the whole group. If the
    /// deadline passes before the group is written, it fails with `deadlineExceeded` unsent.
    ///
    /// With `on: loop`, `completion` runs on that event loop, and all completions of one round
    /// trip bound for the same loop run in one task (one wake-up of the loop, not one per request).
    /// Without it, `completion` runs on the connection's thread and must not block.
    public func submit(
        _ commands: [RedisCommand], deadline: NIODeadline, on loop: (any EventLoop)? = nil,
        completion: @escaping @Sendable (Result<[RedisValue], RedisError>) -> Void
    ) {
        if !queue.push(Pending(commands: commands, deadline: deadline, loop: loop, completion: completion)) {
            let failure = RedisError(.shutdown, "redis client is shut down")
            if let loop { loop.execute { completion(.failure(failure)) } } else { completion(.failure(failure)) }
        }
    }

    /// Sends commands in one round trip and completes a promise on its event loop.
    public func send(_ commands: [RedisCommand], deadline: NIODeadline, promise: EventLoopPromise<[RedisValue]>) {
        submit(commands, deadline: deadline) { promise.completeWith($0.mapError { $0 as any Error }) }
    }

    /// Sends commands in one round trip and returns their replies.
    public func send(_ commands: [RedisCommand], timeout: TimeAmount = .seconds(2)) async throws(RedisError) -> [RedisValue] {
        let result = await withCheckedContinuation { (c: CheckedContinuation<Result<[RedisValue], RedisError>, Never>) in
            submit(commands, deadline: .now() + timeout) { c.resume(returning: $0) }
        }
        return try result.get()
    }

    /// Sends one command and returns its reply; an error reply is thrown as `.server`.
    @discardableResult
    public func send(_ command: RedisCommand, timeout: TimeAmount = .seconds(2)) async throws(RedisError) -> RedisValue {
        let reply = try await send([command], timeout: timeout)[0]
        if case .error(let e) = reply { throw RedisError(.server, "\(command): \(e)") }
        return reply
    }

    /// Stops the threads after the queue drains; later submissions fail with `.shutdown`.
    public func shutdown() {
        queue.close()
    }

    func registeredScripts() -> [RedisScript] { scripts.withLock { Array($0.values) } }

    /// Fails every request of `batch` whose deadline has passed (unsent: it never runs) and
    /// returns the others. Both kinds of connection thread start each batch with it.
    func unexpired(_ batch: [Pending], now: NIODeadline, into deliveries: inout Deliveries) -> [Pending] {
        var live: [Pending] = []
        live.reserveCapacity(batch.count)
        for item in batch {
            if item.deadline < now {
                stats.expiredBeforeSend.add(1, ordering: .relaxed)
                deliveries.add(item, .failure(RedisError(.deadlineExceeded, "deadline passed before the command was sent")))
            } else {
                live.append(item)
            }
        }
        return live
    }

    /// Heals NOSCRIPT replies in place: Redis lost its script cache (restart, SCRIPT FLUSH), so
    /// every registered script is loaded on `connection` and the refused commands run again. A
    /// NOSCRIPT reply means the command did not run. `commands[i]` is the command of `replies[i]`.
    func reloadScripts(for replies: inout [RedisValue], of commands: [RedisCommand], on connection: RedisConnection) throws(RedisError) {
        let missing = replies.indices.filter { if case .error(let e) = replies[$0] { e.hasPrefix("NOSCRIPT") } else { false } }
        guard !missing.isEmpty else { return }
        stats.scriptReloads.add(1, ordering: .relaxed)
        let loads = registeredScripts().map(\.loadCommand)
        let retried = try connection.pipeline(loads + missing.map { commands[$0] })
        for (i, index) in missing.enumerated() { replies[index] = retried[loads.count + i] }
    }
    var log: Logger { logger }
    var work: WorkQueue { queue }
}

struct Pending: Sendable {
    var commands: [RedisCommand]
    var deadline: NIODeadline
    var loop: (any EventLoop)?
    var completion: @Sendable (Result<[RedisValue], RedisError>) -> Void
}

/// Completions of one batch, grouped by the event loop they must run on.
struct Deliveries {
    private var direct: [(Pending, Result<[RedisValue], RedisError>)] = []
    private var byLoop: [ObjectIdentifier: (any EventLoop, [(Pending, Result<[RedisValue], RedisError>)])] = [:]

    mutating func add(_ item: Pending, _ result: Result<[RedisValue], RedisError>) {
        guard let loop = item.loop else {
            direct.append((item, result))
            return
        }
        byLoop[ObjectIdentifier(loop), default: (loop, [])].1.append((item, result))
    }

    /// Runs direct completions here and hops once to each loop for the rest.
    func deliver() {
        for (item, result) in direct { item.completion(result) }
        for (_, (loop, list)) in byLoop {
            loop.execute {
                for (item, result) in list { item.completion(result) }
            }
        }
    }
}

/// A closable multi-consumer queue.
final class WorkQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [Pending] = []
    private var closed = false

    /// False once closed.
    func push(_ item: Pending) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if closed { return false }
        items.append(item)
        condition.signal()
        return true
    }

    /// Blocks for work; nil once closed and drained.
    func take(max: Int) -> [Pending]? {
        condition.lock()
        defer { condition.unlock() }
        while items.isEmpty && !closed { condition.wait() }
        if items.isEmpty { return nil }
        if items.count <= max {
            var out: [Pending] = []
            swap(&out, &items)
            return out
        }
        let out = Array(items.prefix(max))
        items.removeFirst(max)
        return out
    }

    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }
}

/// One connection and the thread that owns it.
private final class Worker: @unchecked Sendable {
    let client: RedisClient
    let index: Int
    var connection: RedisConnection?
    var backoffMs: Int = 0
    var retryAt: NIODeadline = .distantPast

    init(client: RedisClient, index: Int) {
        self.client = client
        self.index = index
    }

    func run() {
        let config = client.configuration
        while let batch = client.work.take(max: config.maxBatch) {
            let now = NIODeadline.now()
            var deliveries = Deliveries()
            let live = client.unexpired(batch, now: now, into: &deliveries)
            if !live.isEmpty {
                if let connection = connect(now: now) {
                    execute(live, on: connection, into: &deliveries)
                } else {
                    for item in live { deliveries.add(item, .failure(RedisError(.connectionFailed, "redis at \(config.target) is unreachable"))) }
                }
            }
            deliveries.deliver()
        }
        connection?.close()
        if connection != nil { client.stats.connected.store(0, ordering: .relaxed) }
    }

    private func connect(now: NIODeadline) -> RedisConnection? {
        if let connection, connection.isOpen { return connection }
        connection = nil
        if now < retryAt { return nil }
        let config = client.configuration
        do {
            let endpoint: RedisEndpoint
            switch config.target {
            case .server(let e): endpoint = e
            case .sentinel(let sentinels, let master, let db):
                endpoint = try SentinelResolver.master(
                    sentinels: sentinels, name: master, db: db, connectTimeoutMs: config.connectTimeoutMs, ioTimeoutMs: config.ioTimeoutMs)
                client.stats.masterResolutions.add(1, ordering: .relaxed)
            case .cluster: preconditionFailure("a cluster is served by ClusterWorker")
            }
            let c = try RedisConnection(endpoint: endpoint, connectTimeoutMs: config.connectTimeoutMs, ioTimeoutMs: config.ioTimeoutMs)
            connection = c
            backoffMs = 0
            client.stats.connects.add(1, ordering: .relaxed)
            client.stats.connected.store(1, ordering: .relaxed)
            client.log.info("redis connected", metadata: ["endpoint": "\(c.endpoint)", "target": "\(config.target)", "connection": "\(index)"])
            return c
        } catch {
            backoffMs = backoffMs == 0 ? config.minBackoffMs : min(backoffMs * 2, config.maxBackoffMs)
            retryAt = now + .milliseconds(Int64(backoffMs))
            client.stats.connectionErrors.add(1, ordering: .relaxed)
            client.log.warning("redis connect failed", metadata: ["error": "\(error)", "retry_in_ms": "\(backoffMs)"])
            return nil
        }
    }

    private func execute(_ items: [Pending], on connection: RedisConnection, into deliveries: inout Deliveries) {
        var commands: [RedisCommand] = []
        commands.reserveCapacity(items.count)
        for item in items { commands.append(contentsOf: item.commands) }
        do {
            client.stats.roundTrips.add(1, ordering: .relaxed)
            client.stats.commands.add(commands.count, ordering: .relaxed)
            let started = ContinuousClock.now
            var replies = try connection.pipeline(commands)
            client.configuration.onRoundTrip?(items.count, ContinuousClock.now - started)
            try client.reloadScripts(for: &replies, of: commands, on: connection)
            let readOnly = replies.indices.filter { if case .error(let e) = replies[$0] { return e.hasPrefix("READONLY") } else { return false } }
            if !readOnly.isEmpty {
                // The server was demoted to a replica (a Sentinel failover): the refused commands did
                // not run. Find the new master and send them there once.
                client.log.warning("redis server is now a replica; finding the master again", metadata: ["endpoint": "\(connection.endpoint)"])
                connection.close()
                self.connection = nil
                client.stats.connected.store(0, ordering: .relaxed)
                retryAt = .distantPast
                if let next = connect(now: .now()) {
                    let retried = try next.pipeline(readOnly.map { commands[$0] })
                    for (i, index) in readOnly.enumerated() { replies[index] = retried[i] }
                }
            }
            var offset = 0
            for item in items {
                let n = item.commands.count
                deliveries.add(item, .success(Array(replies[offset..<offset + n])))
                offset += n
            }
        } catch {
            self.connection = nil
            client.stats.connected.store(0, ordering: .relaxed)
            client.stats.connectionErrors.add(1, ordering: .relaxed)
            client.log.warning("redis connection lost", metadata: ["error": "\(error)"])
            for item in items { deliveries.add(item, .failure(error)) }
        }
    }
}
