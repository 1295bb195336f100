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
        onRoundTrip: (@Sendable (_ requests: Int, _ elapsed: Duration) -> Void)? = nil,
        eventLoops: (any EventLoopGroup)? = nil
    ) {
        self.init(
            target: .server(endpoint), connections: connections, connectTimeoutMs: connectTimeoutMs, ioTimeoutMs: ioTimeoutMs,
            maxBatch: maxBatch, minBackoffMs: minBackoffMs, maxBackoffMs: maxBackoffMs, onRoundTrip: onRoundTrip,
            eventLoops: eventLoops)
    }

    /// Event loops whose requests go through connections of their own (`eventLoops`).
    public var eventLoops: (any EventLoopGroup)?

    /// On Redis Cluster, how long the slot map read with `CLUSTER SLOTS` is used before it is read
    /// again; a MOVED answer or a lost connection has it read again at once. Default 10 s.
    public var clusterMapMaxAge: Duration = .seconds(10)

    /// A configuration with production defaults.
    ///
    /// `eventLoops`: on a single server (not Cluster or Sentinel), each loop of this group gets a
    /// non-blocking connection of its own, and every request submitted `on:` one of its loops goes
    /// through it, its completion run on that loop, with no thread hand-off (`LoopConnections`).
    /// Requests submitted without a loop, or on another loop, go through the `connections` threads.
    public init(
        target: RedisTarget, connections: Int = 2, connectTimeoutMs: Int = 250, ioTimeoutMs: Int = 1000,
        maxBatch: Int = 512, minBackoffMs: Int = 10, maxBackoffMs: Int = 1000,
        onRoundTrip: (@Sendable (_ requests: Int, _ elapsed: Duration) -> Void)? = nil,
        eventLoops: (any EventLoopGroup)? = nil
    ) {
        self.eventLoops = eventLoops
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
    /// Replies saying Redis lacked a script or a library's function (NOSCRIPT, "Function not
    /// found"), handled by loading them all and running the refused commands again.
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
    /// Sentinel: masters resolved through the sentinels (asked, or announced by them).
    public let masterResolutions = Atomic<Int>(0)
    /// Sentinel: master switches the sentinels announced (`+switch-master`) for this master.
    public let masterSwitches = Atomic<Int>(0)
    /// Sheddable requests (CHECKs) failed unsent with `.shed` because they had waited in the
    /// queue past the queue-delay target while a standing queue lasted (CoDel).
    public let shedQueueDelay = Atomic<Int>(0)
    /// Sheddable requests failed unsent with `.shed` because what was left of their deadline
    /// could not cover the expected round trip: their answer would have come too late.
    public let shedDeadline = Atomic<Int>(0)
    /// The expected round trip, ns: a moving average of pipelined write-and-read times.
    public let expectedRoundTripNs = Atomic<Int>(0)
    /// The queue delay, ns, of the last request taken from the queue.
    public let lastQueueDelayNs = Atomic<Int>(0)
    init() {}

    /// Folds one round trip into `expectedRoundTripNs` (an average over about the last 8).
    func record(roundTrip: Duration) {
        let ns = Int(TimeAmount(roundTrip).nanoseconds)
        let old = expectedRoundTripNs.load(ordering: .relaxed)
        expectedRoundTripNs.store(old == 0 ? ns : old + (ns - old) / 8, ordering: .relaxed)
    }
}

/// Which queue a request waits in, and whether it may be shed.
public enum RedisLane: Sendable, Hashable {
    /// Work that carries money already reserved or resolves an outcome (SETTLE, RELEASE, VOID,
    /// delivery confirmations, replays): taken before anything else, never shed.
    case priority
    /// Ordinary work (metadata, reads): taken after the priority lane, never shed.
    case normal
    /// A CHECK: taken after the priority lane, and shed (failed unsent with `.shed`) when it has
    /// waited past the queue-delay target in a standing queue, or when its deadline can no longer
    /// cover the expected round trip.
    case sheddable
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
    /// Batch scripts by the SHA-1 (as sent, lowercase hex) of the script whose calls they merge.
    private let batches = BatchTable()
    private let logger: Logger
    /// Sentinel: the master the sentinels last announced.
    let announced = AnnouncedMaster()
    /// Requests waiting for a connection (none taken yet): for tests that need to know when a
    /// connection has taken what they submitted.
    var queuedRequests: Int { queue.count }
    private let switchWatcher: RedisSubscriber?
    /// The event loops' own connections (`RedisClientConfiguration.eventLoops`), if any.
    private let loops = LoopTable()

    /// Starts the connection threads. Connections are made lazily and re-made after failures.
    ///
    /// Behind Sentinel, a subscriber on the sentinels also listens for the promotion
    /// (`+failover-state-send-slaveof-noone`) and `+switch-master`: a `SENTINEL FAILOVER`
    /// promotes the replica while the old master, still running, takes writes until the
    /// sentinels demote it (seconds later, on their next look at it). Those writes are lost in
    /// its resync, so every connection moves to the replica as soon as its promotion is
    /// announced, not when the old master starts refusing writes.
    public init(configuration: RedisClientConfiguration, logger: Logger) {
        self.configuration = configuration
        self.queue = WorkQueue()
        self.scripts = Mutex([:])
        self.logger = logger
        if case .sentinel(let sentinels, let name, let db) = configuration.target {
            let announced = announced
            let stats = stats
            let subscribed = Atomic<Bool>(false)
            // Any one sentinel will do (each announces the switches it learns of); the
            // subscriber tries the next one when one is away.
            switchWatcher = RedisSubscriber(
                configuration: RedisSubscriberConfiguration(
                    target: .cluster(seeds: sentinels), connectTimeoutMs: configuration.connectTimeoutMs, ioTimeoutMs: configuration.ioTimeoutMs,
                    minBackoffMs: configuration.minBackoffMs, maxBackoffMs: configuration.maxBackoffMs),
                channels: ["+failover-state-send-slaveof-noone", "+switch-master"], logger: logger,
                onReconnect: {
                    // A switch may have been announced while no sentinel was heard: every
                    // connection asks the sentinels again (not on the first subscription).
                    if subscribed.exchange(true, ordering: .relaxed) {
                        announced.switched(to: nil)
                    }
                },
                onMessage: { message in
                    let parts = message.text.split(separator: " ")
                    let endpoint: RedisEndpoint
                    if message.channel == "+switch-master" {
                        // "<master name> <old ip> <old port> <new ip> <new port>"
                        guard parts.count == 5, parts[0] == name, let port = Int(parts[4]) else { return }
                        endpoint = .tcp(host: String(parts[3]), port: port, db: db)
                    } else {
                        // The replica is being promoted: "slave <ip:port> <ip> <port> @ <master name> …".
                        // Moving now, not at the switch a second later, leaves the old master
                        // nothing to take that its resync would lose.
                        guard parts.count >= 6, parts[0] == "slave", parts[4] == "@", parts[5] == name, let port = Int(parts[3]) else { return }
                        endpoint = .tcp(host: String(parts[2]), port: port, db: db)
                    }
                    guard announced.switched(to: endpoint, promoting: message.channel != "+switch-master") else { return }
                    stats.masterSwitches.add(1, ordering: .relaxed)
                    logger.warning("the sentinels announced a new master; every connection moves to it", metadata: [
                        "master": "\(name)", "to": "\(endpoint)", "event": "\(message.channel)",
                    ])
                })
        } else {
            switchWatcher = nil
        }
        switchWatcher?.start()
        let topology: ClusterTopology?
        if case .cluster(let seeds) = configuration.target { topology = ClusterTopology(seeds: seeds, maxAge: configuration.clusterMapMaxAge) } else { topology = nil }
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
        if let group = configuration.eventLoops, case .server(let endpoint) = configuration.target {
            loops.connections = LoopConnections(group: group, endpoint: endpoint, client: self)
            loops.connections?.start()
        }
    }

    /// Registers scripts so that NOSCRIPT replies are healed by loading them.
    public func register(_ list: [RedisScript]) {
        scripts.withLock { for s in list { $0[s.sha1] = s } }
    }

    /// Registers script pairs (`RedisScriptBatch`): from now on, calls of a `single` script with
    /// one key and the same first argument that go out in the same round trip, each a request of
    /// its own, are sent as one call of its `batch` script (at most `maxMerged` at once), placed
    /// where the first of them was. Each request still gets its own reply. Requests sent
    /// together are concurrent (none waited for another's reply), so running them together, in
    /// order, is one of the orders they could have run in anyway. Not on Redis Cluster, whose
    /// connections send each command to its slot's owner.
    public func batch(_ list: [RedisScriptBatch]) {
        register(list.flatMap { [$0.single, $0.batch] })
        batches.add(list)
    }

    /// Most calls merged into one call of a batch script: a merged call runs atomically, so a
    /// bound on it bounds how long it holds Redis.
    public static let maxMerged = 64

    /// The commands of `items` as they go on the wire: calls of a batched script merged
    /// (see `batch(_:)`), and where each request's replies are found in the replies to them.
    func plan(_ items: [Pending]) -> WirePlan {
        var plan = WirePlan()
        plan.commands.reserveCapacity(items.count)
        // Which requests are one call of a batched script, grouped by script and first argument,
        // each group with the batch script that merges it. Runs once per round trip on the
        // connection's thread, so nothing here copies or hashes an argument byte by byte.
        var groups: [BatchGroup: Int] = [:]
        var merges: [(batch: RedisScript, members: [Int])] = []
        var groupOf = [Int](repeating: -1, count: items.count)
        let table = items.count > 1 ? batches.current : []
        if !table.isEmpty {
            for (i, item) in items.enumerated() {
                guard item.commands.count == 1 else { continue }
                let c = item.commands[0]
                guard c.count >= 5, c.argument(2).elementsEqual("1".utf8) else { continue }
                let verb = c.argument(0)
                guard verb.elementsEqual("FCALL".utf8) || verb.elementsEqual("EVALSHA".utf8) else { continue }
                let handle = c.argument(1)
                guard let script = table.firstIndex(where: { $0.single.elementsEqual(handle) }) else { continue }
                let key = BatchGroup(script: script, first: c.argument(4))
                if let g = groups[key] {
                    merges[g].members.append(i)
                    groupOf[i] = g
                } else {
                    groups[key] = merges.count
                    groupOf[i] = merges.count
                    merges.append((table[script].batch, [i]))
                }
            }
        }
        var route = [(wire: Int, element: Int)](repeating: (-1, -1), count: items.count)
        for (i, item) in items.enumerated() {
            if route[i].wire >= 0 { continue }
            let g = groupOf[i]
            guard g >= 0, merges[g].members.count > 1 else {
                route[i] = (plan.commands.count, -1)
                plan.commands.append(contentsOf: item.commands)
                continue
            }
            // The whole group goes out here, where its first request was, in chunks.
            let group = merges[g].members
            var start = 0
            while start < group.count {
                let chunk = group[start..<min(group.count, start + Self.maxMerged)]
                start = chunk.endIndex
                if chunk.count == 1 {
                    route[chunk.first!] = (plan.commands.count, -1)
                    plan.commands.append(items[chunk.first!].commands[0])
                    continue
                }
                var merged = RedisCommand(merges[g].batch.verb, merges[g].batch.handle)
                var bytes = 0
                var arguments = 0
                for m in chunk {
                    let c = items[m].commands[0]
                    bytes += c.byteCount + 20
                    arguments += c.count - 3
                }
                merged.reserveCapacity(bytes: bytes, arguments: arguments + 2)
                merged.append(decimal: UInt64(chunk.count))
                for m in chunk { merged.append(arguments: 3..<4, of: items[m].commands[0]) }
                merged.append(arguments: 4..<5, of: item.commands[0])
                for (element, m) in chunk.enumerated() {
                    let c = items[m].commands[0]
                    merged.append(decimal: UInt64(c.count - 5))
                    merged.append(arguments: 5..<c.count, of: c)
                    route[m] = (plan.commands.count, element)
                }
                plan.commands.append(merged)
            }
        }
        plan.routes = route
        return plan
    }

    /// Queues commands to be sent together, in order, in one round trip; `completion` gets one
    /// reply per command (error replies included) or a `RedisError` for the whole group. If the
    /// deadline passes before the group is written, it fails with `deadlineExceeded` unsent.
    ///
    /// With `on: loop`, `completion` runs on that event loop, and all completions of one round
    /// trip bound for the same loop run in one task (one wake-up of the loop, not one per request).
    /// Without it, `completion` runs on the connection's thread and must not block.
    ///
    /// `lane` says which queue it waits in and whether it may be shed (`RedisLane`).
    public func submit(
        _ commands: [RedisCommand], deadline: NIODeadline, on loop: (any EventLoop)? = nil, lane: RedisLane = .normal,
        completion: @escaping @Sendable (Result<[RedisValue], RedisError>) -> Void
    ) {
        let item = Pending(commands: commands, deadline: deadline, loop: loop, lane: lane, enqueued: .now(), completion: completion)
        if let loop, let connection = loops.connections?.connection(for: loop) {
            return connection.submit(item)
        }
        sendThroughThreads(item)
    }

    /// Queues `item` for the connection threads.
    func sendThroughThreads(_ item: Pending) {
        if !queue.push(item) {
            let failure = RedisError.clientShutDown
            if let loop = item.loop { loop.execute { item.completion(.failure(failure)) } } else { item.completion(.failure(failure)) }
        }
    }

    /// How many event loops' own connections are connected (`RedisClientConfiguration.eventLoops`).
    var loopConnectionsReady: Int { loops.connections?.ready ?? 0 }

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

    /// Redis's clock (`TIME`), Unix ms.
    public func timeMs() async throws(RedisError) -> Int64 {
        let t = try await send(RedisCommand("TIME")).array ?? []
        guard t.count == 2, let s = t[0].string.flatMap({ Int64($0) }), let us = t[1].string.flatMap({ Int64($0) }) else {
            throw RedisError(.unexpectedReply, "TIME answered \(t)")
        }
        return s * 1000 + us / 1000
    }

    /// Stops the threads after the queue drains; later submissions fail with `.shutdown`.
    public func shutdown() {
        queue.close()
        loops.connections?.shutdown()
        switchWatcher?.stop()
    }

    func registeredScripts() -> [RedisScript] { scripts.withLock { Array($0.values) } }

    /// Fails every request of `batch` whose deadline has passed (unsent: it never runs), sheds
    /// the sheddable ones that should not be sent (`RedisLane.sheddable`; unsent too), and returns
    /// the others. Both kinds of connection thread start each batch with it.
    func unexpired(_ batch: Batch, now: NIODeadline, into deliveries: inout Deliveries) -> [Pending] {
        let (live, refused) = unexpired(batch, now: now)
        for (item, error) in refused { deliveries.add(item, .failure(error)) }
        return live
    }

    /// The requests of `batch` to send, and those refused unsent with the reason (deadline passed,
    /// or shed): what every kind of connection does first with what it took from its queue.
    func unexpired(_ batch: Batch, now: NIODeadline) -> (live: [Pending], refused: [(Pending, RedisError)]) {
        var live: [Pending] = []
        var refused: [(Pending, RedisError)] = []
        live.reserveCapacity(batch.items.count)
        let expected = TimeAmount.nanoseconds(Int64(stats.expectedRoundTripNs.load(ordering: .relaxed)))
        // A deadline never has to cover more than half of itself: were every request shed because
        // one slow round trip raised the average, no round trip would bring it down again.
        for item in batch.items {
            if item.deadline < now {
                stats.expiredBeforeSend.add(1, ordering: .relaxed)
                refused.append((item, RedisError(.deadlineExceeded, "deadline passed before the command was sent")))
            } else if item.lane == .sheddable && batch.dropping && now - item.enqueued > Swift.max(batch.target, item.queueTarget) {
                stats.shedQueueDelay.add(1, ordering: .relaxed)
                refused.append((item, RedisError(.shed, "shed: waited past the queue-delay target in a standing queue")))
            } else if item.lane == .sheddable && item.deadline - now < min(expected, .nanoseconds((item.deadline - item.enqueued).nanoseconds / 2)) {
                stats.shedDeadline.add(1, ordering: .relaxed)
                refused.append((item, RedisError(.shed, "shed: the deadline cannot cover the expected round trip")))
            } else {
                live.append(item)
            }
        }
        return (live, refused)
    }

    /// Heals NOSCRIPT replies in place: Redis lost its script cache (restart, SCRIPT FLUSH), so
    /// every registered script is loaded on `connection` and the refused commands run again. A
    /// NOSCRIPT reply means the command did not run. `commands[i]` is the command of `replies[i]`.
    func reloadScripts(for replies: inout [RedisValue], of commands: [RedisCommand], on connection: RedisConnection) throws(RedisError) {
        guard let reload = scriptReload(for: replies, of: commands) else { return }
        reload.apply(try connection.pipeline(reload.commands), to: &replies)
    }

    /// What heals the NOSCRIPT replies among `replies` (the replies to `commands`), nil if there
    /// are none: the commands to send (every registered script loaded, then the refused commands
    /// again), and where their replies go. Every kind of connection heals them this way.
    func scriptReload(for replies: [RedisValue], of commands: [RedisCommand]) -> ScriptReload? {
        let refused = replies.indices.filter { if case .error(let e) = replies[$0] { RedisScript.isMissing(e) } else { false } }
        guard !refused.isEmpty else { return nil }
        stats.scriptReloads.add(1, ordering: .relaxed)
        let loads = registeredScripts().map(\.loadCommand)
        return ScriptReload(refused: refused, commands: loads + refused.map { commands[$0] }, loads: loads.count)
    }
    var log: Logger { logger }
    var work: WorkQueue { queue }
}

extension RedisError {
    /// A request submitted after `RedisClient.shutdown()`, or still queued when it came.
    static var clientShutDown: RedisError { RedisError(.shutdown, "redis client is shut down") }
}

/// NOSCRIPT replies to heal (`RedisClient.scriptReload`): the commands that load the scripts and
/// run the refused commands again, and where the second run's replies go.
struct ScriptReload {
    /// Indices of the refused commands among the first run's replies.
    let refused: [Int]
    /// The scripts' loads, then the refused commands.
    let commands: [RedisCommand]
    /// How many of `commands` are loads.
    let loads: Int

    /// Puts the replies of the refused commands, from `retried` (the replies to `commands`), in
    /// their places in `replies`.
    func apply(_ retried: [RedisValue], to replies: inout [RedisValue]) {
        for (i, index) in refused.enumerated() { replies[index] = retried[loads + i] }
    }
}

/// How a connection waits after failing to connect: the delay doubles on each failure (from
/// `minBackoffMs` up to `maxBackoffMs`) and is over early once another connection of the client
/// has connected since (Redis is back).
struct ConnectBackoff {
    /// The last delay, ms (0 after a success).
    private(set) var delayMs = 0
    private var retryAt: NIODeadline = .distantPast
    /// The client's count of connections made at the last failure.
    private var connects = 0

    /// Whether a connect should wait still.
    func waiting(now: NIODeadline, stats: RedisClientStats) -> Bool {
        now < retryAt && stats.connects.load(ordering: .relaxed) == connects
    }

    mutating func failed(now: NIODeadline, configuration: RedisClientConfiguration, stats: RedisClientStats) {
        delayMs = delayMs == 0 ? configuration.minBackoffMs : min(delayMs * 2, configuration.maxBackoffMs)
        retryAt = now + .milliseconds(Int64(delayMs))
        connects = stats.connects.load(ordering: .relaxed)
    }

    mutating func succeeded() { delayMs = 0 }

    /// The next connect goes at once (the connection was closed on purpose, not refused).
    mutating func retryNow() { retryAt = .distantPast }
}

/// Where a client keeps its loops' connections: set once, at the end of its init, before any
/// request can be submitted, and only read after.
final class LoopTable: @unchecked Sendable {
    var connections: LoopConnections?
}

/// Sentinel: the master the sentinels last announced (a promotion or `+switch-master`), and
/// how many switches were announced. Each connection made before the latest switch is re-made before its next
/// round trip.
final class AnnouncedMaster: Sendable {
    private let state = Mutex<(generation: Int, endpoint: RedisEndpoint?, promoting: Bool)>((0, nil, false))
    /// The switch count, read without the lock on every round trip.
    let generation = Atomic<Int>(0)

    /// The switch count and the announced master (nil: ask the sentinels).
    var current: (Int, RedisEndpoint?) { state.withLock { ($0.generation, $0.endpoint) } }

    /// A switch to `endpoint` (nil: one may have been missed, ask the sentinels), `promoting` if
    /// it is a replica being promoted; false if `endpoint` is already the announced master (its
    /// promotion was announced, then the switch).
    @discardableResult
    func switched(to endpoint: RedisEndpoint?, promoting: Bool = false) -> Bool {
        state.withLock {
            if let endpoint, $0.endpoint == endpoint {
                $0.promoting = $0.promoting && promoting
                return false
            }
            $0 = ($0.generation + 1, endpoint, promoting)
            generation.store($0.generation, ordering: .releasing)
            return true
        }
    }

    /// Whether `endpoint` is the replica the sentinels announced they are promoting.
    func isPromoting(_ endpoint: RedisEndpoint) -> Bool {
        state.withLock { $0.promoting && $0.endpoint == endpoint }
    }

    /// `endpoint` refused writes: stale (a later switch was missed, or the promotion was
    /// abandoned), the sentinels are asked.
    func forget(_ endpoint: RedisEndpoint) {
        state.withLock { if $0.endpoint == endpoint { ($0.endpoint, $0.promoting) = (nil, false) } }
    }
}

/// A queued request. A class: it passes from the caller to the queue, a batch and the deliveries,
/// and a reference is cheaper to hand on than its fields (an array, an existential, a closure).
final class Pending: Sendable {
    let commands: [RedisCommand]
    let deadline: NIODeadline
    let loop: (any EventLoop)?
    let lane: RedisLane
    /// When it was queued (its queue delay runs from here).
    let enqueued: NIODeadline
    let completion: @Sendable (Result<[RedisValue], RedisError>) -> Void

    init(
        commands: [RedisCommand], deadline: NIODeadline, loop: (any EventLoop)?, lane: RedisLane, enqueued: NIODeadline,
        completion: @escaping @Sendable (Result<[RedisValue], RedisError>) -> Void
    ) {
        self.commands = commands
        self.deadline = deadline
        self.loop = loop
        self.lane = lane
        self.enqueued = enqueued
        self.completion = completion
    }

    /// The queue delay it may take in a standing queue before it is shed (sheddable only): a
    /// fifth of its deadline, at least the queue's own target.
    var queueTarget: TimeAmount {
        .nanoseconds((deadline - enqueued).nanoseconds / 5)
    }
}

/// What a connection thread takes from the queue at once, and the queue's CoDel verdict on it.
struct Batch {
    var items: [Pending]
    /// A standing queue: sheddable items that waited longer than `target` are shed.
    var dropping: Bool
    /// The queue-delay target.
    var target: TimeAmount
}

/// The batch scripts registered with a client (`RedisClient.batch`), each beside the SHA-1 (as
/// sent, lowercase hex) of the script whose calls it merges. A handful at most: looked up by
/// comparing bytes, cheaper than hashing 40 of them.
final class BatchTable: @unchecked Sendable {
    private let lock = NSLock()
    private var table: [(single: [UInt8], batch: RedisScript)] = []

    func add(_ list: [RedisScriptBatch]) {
        lock.lock()
        defer { lock.unlock() }
        for b in list {
            let handle = Array(b.single.handle.utf8)
            table.removeAll { $0.single == handle }
            table.append((handle, b.batch))
        }
    }

    var current: [(single: [UInt8], batch: RedisScript)] {
        lock.lock()
        defer { lock.unlock() }
        return table
    }
}

/// Requests merged into one call of a batch script: the script's place in the `BatchTable` and
/// the requests' first argument (the organization), a slice of the request's own command (not a
/// copy), hashed in one pass over its bytes.
struct BatchGroup: Hashable {
    let script: Int
    let first: ArraySlice<UInt8>

    func hash(into hasher: inout Hasher) {
        hasher.combine(script)
        first.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    static func == (a: BatchGroup, b: BatchGroup) -> Bool {
        a.script == b.script && a.first.elementsEqual(b.first)
    }
}

/// The commands of one round trip as written (`RedisClient.plan`), and for each request where
/// its replies are: from `wire` on, one per command, or, for a request merged into a batch
/// script's call, element `element` of that call's reply.
struct WirePlan {
    var commands: [RedisCommand] = []
    var routes: [(wire: Int, element: Int)] = []

    /// The replies of request `index` (which sent `count` commands) among `replies`, the replies
    /// to `commands`.
    func replies(of index: Int, count: Int, in replies: [RedisValue]) -> [RedisValue] {
        let (wire, element) = routes[index]
        guard element >= 0 else { return Array(replies[wire..<wire + count]) }
        switch replies[wire] {
        case .array(let elements) where element < elements.count: return [elements[element]]
        case .error: return [replies[wire]]
        default: return [.error("ERR a batched script call answered \(replies[wire]) instead of one reply per request")]
        }
    }
}

/// Completions of one batch, grouped by the event loop they must run on.
struct Deliveries {
    private var direct: [(Pending, Result<[RedisValue], RedisError>)] = []
    private var byLoop: [ObjectIdentifier: (any EventLoop, [(Pending, Result<[RedisValue], RedisError>)])] = [:]
    /// How many completions a loop's list is made room for at once (the batch's size).
    private let expected: Int

    init(expected: Int = 0) {
        self.expected = expected
    }

    mutating func add(_ item: Pending, _ result: Result<[RedisValue], RedisError>) {
        guard let loop = item.loop else {
            direct.append((item, result))
            return
        }
        byLoop[ObjectIdentifier(loop), default: (loop, Self.list(reserving: expected))].1.append((item, result))
    }

    private static func list(reserving capacity: Int) -> [(Pending, Result<[RedisValue], RedisError>)] {
        var list: [(Pending, Result<[RedisValue], RedisError>)] = []
        list.reserveCapacity(capacity)
        return list
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

/// CoDel on a queue's delay: once the smallest queue delay seen has stayed above the target for a
/// whole interval (a standing queue, not a burst), the queue is dropping, until a request comes
/// out within the target. Kept by whoever owns the queue, under its lock or on its event loop.
struct QueueDelayWatch {
    /// The queue-delay target (CoDel's target) and how long it may be exceeded (its interval).
    let target: TimeAmount
    let interval: TimeAmount
    private var firstAbove: NIODeadline?
    private var dropping = false

    init(target: TimeAmount = .milliseconds(5), interval: TimeAmount = .milliseconds(100)) {
        self.target = target
        self.interval = interval
    }

    /// `items` taken from the queue as a batch with the verdict: `oldest` is the head of what
    /// was waiting in the ordinary lanes (nil if none was taken).
    mutating func batch(_ items: [Pending], oldest: Pending?, now: NIODeadline, stats: RedisClientStats) -> Batch {
        // Every request waits for a connection to finish its round trip, so the target is never
        // below the expected round trip: only a delay beyond it is a queue.
        var target = Swift.max(self.target, TimeAmount.nanoseconds(Int64(stats.expectedRoundTripNs.load(ordering: .relaxed))))
        if let oldest {
            let delay = now - oldest.enqueued
            // A request with a long deadline tolerates a longer queue (a fifth of its deadline).
            if oldest.lane == .sheddable { target = Swift.max(target, oldest.queueTarget) }
            stats.lastQueueDelayNs.store(Int(delay.nanoseconds), ordering: .relaxed)
            if delay <= target {
                firstAbove = nil
                dropping = false
            } else if let first = firstAbove {
                if now >= first { dropping = true }
            } else {
                firstAbove = now + interval
            }
        }
        return Batch(items: items, dropping: dropping, target: target)
    }
}

/// A closable multi-consumer queue with two lanes: everything in the priority lane is taken
/// before anything else. It watches the delay of what it hands out, CoDel-style: once the
/// smallest queue delay seen has stayed above `target` for a whole `interval` (a standing queue,
/// not a burst), it is dropping, and sheddable requests that waited longer than the target are
/// shed instead of sent, until a request comes out within the target or the queue runs empty.
final class WorkQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private var lanes: RequestLanes
    private var closed = false

    init(target: TimeAmount = .milliseconds(5), interval: TimeAmount = .milliseconds(100)) {
        lanes = RequestLanes(watch: QueueDelayWatch(target: target, interval: interval))
    }

    /// False once closed.
    func push(_ item: Pending) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if closed { return false }
        lanes.push(item)
        condition.signal()
        return true
    }

    /// Requests in both lanes.
    var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return lanes.count
    }

    /// Blocks for work; nil once closed and drained.
    func take(max: Int, stats: RedisClientStats) -> Batch? {
        condition.lock()
        defer { condition.unlock() }
        while lanes.isEmpty && !closed { condition.wait() }
        if lanes.isEmpty { return nil }
        return lanes.take(max: max, stats: stats)
    }

    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }
}

/// The requests waiting for a connection, in two lanes (`RedisLane`: the priority lane is taken
/// before the others), with CoDel watching the ordinary lanes' delay. Kept under a lock by the
/// threads' `WorkQueue`, and on its loop by a `LoopConnection`.
struct RequestLanes {
    private var priority: [Pending] = []
    private var items: [Pending] = []
    private var watch: QueueDelayWatch

    init(watch: QueueDelayWatch = QueueDelayWatch()) {
        self.watch = watch
    }

    var isEmpty: Bool { priority.isEmpty && items.isEmpty }
    var count: Int { priority.count + items.count }

    mutating func push(_ item: Pending) {
        if item.lane == .priority { priority.append(item) } else { items.append(item) }
    }

    /// Takes up to `max` requests, the priority lane first, with the CoDel verdict on them.
    mutating func take(max: Int, stats: RedisClientStats) -> Batch {
        var out: [Pending] = []
        if priority.count <= max {
            swap(&out, &priority)
        } else {
            out = Array(priority.prefix(max))
            priority.removeFirst(max)
        }
        let room = max - out.count
        var oldest: Pending?
        if room > 0 && !items.isEmpty {
            oldest = items[0]
            if items.count <= room {
                if out.isEmpty { swap(&out, &items) } else { out.append(contentsOf: items); items.removeAll(keepingCapacity: true) }
            } else {
                out.append(contentsOf: items.prefix(room))
                items.removeFirst(room)
            }
        }
        return watch.batch(out, oldest: oldest, now: .now(), stats: stats)
    }

    /// Takes everything, for failing it.
    mutating func removeAll() -> [Pending] {
        defer {
            priority.removeAll()
            items.removeAll()
        }
        return priority + items
    }
}

/// One connection and the thread that owns it.
private final class Worker: @unchecked Sendable {
    let client: RedisClient
    let index: Int
    var connection: RedisConnection?
    var backoff = ConnectBackoff()
    /// Sentinel: the announced-switch count when `connection` was made.
    var generation = 0

    init(client: RedisClient, index: Int) {
        self.client = client
        self.index = index
    }

    func run() {
        let config = client.configuration
        while let batch = client.work.take(max: config.maxBatch, stats: client.stats) {
            let now = NIODeadline.now()
            var deliveries = Deliveries(expected: batch.items.count)
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
        if let connection, connection.isOpen {
            // Behind Sentinel, a connection made before the latest announced switch moves.
            if generation != client.announced.generation.load(ordering: .acquiring) {
                connection.close()
                client.log.info("redis connection moves to the announced master", metadata: ["endpoint": "\(connection.endpoint)", "connection": "\(index)"])
                backoff.retryNow()
            } else if connection.isStale {
                // The server closed it while it was idle (restarted, or the connection reset):
                // a new one, instead of a round trip whose outcome could not be known.
                connection.close()
                client.log.info("redis connection closed by the server while idle; reconnecting", metadata: ["endpoint": "\(connection.endpoint)", "connection": "\(index)"])
                backoff.retryNow()
            } else {
                return connection
            }
        }
        connection = nil
        if backoff.waiting(now: now, stats: client.stats) { return nil }
        let config = client.configuration
        do {
            let endpoint: RedisEndpoint
            var made = 0
            switch config.target {
            case .server(let e): endpoint = e
            case .sentinel(let sentinels, let master, let db):
                let (number, announced) = client.announced.current
                made = number
                if let e = announced {
                    endpoint = e
                } else {
                    endpoint = try SentinelResolver.master(
                        sentinels: sentinels, name: master, db: db, connectTimeoutMs: config.connectTimeoutMs, ioTimeoutMs: config.ioTimeoutMs)
                }
                client.stats.masterResolutions.add(1, ordering: .relaxed)
            case .cluster: preconditionFailure("a cluster is served by ClusterWorker")
            }
            let c = try RedisConnection(endpoint: endpoint, connectTimeoutMs: config.connectTimeoutMs, ioTimeoutMs: config.ioTimeoutMs)
            generation = made
            connection = c
            backoff.succeeded()
            client.stats.connects.add(1, ordering: .relaxed)
            client.stats.connected.store(1, ordering: .relaxed)
            client.log.info("redis connected", metadata: ["endpoint": "\(c.endpoint)", "target": "\(config.target)", "connection": "\(index)"])
            return c
        } catch {
            backoff.failed(now: now, configuration: config, stats: client.stats)
            client.stats.connectionErrors.add(1, ordering: .relaxed)
            client.log.warning("redis connect failed", metadata: ["error": "\(error)", "retry_in_ms": "\(backoff.delayMs)"])
            return nil
        }
    }

    private static func isReadOnly(_ reply: RedisValue) -> Bool {
        if case .error(let e) = reply { e.hasPrefix("READONLY") } else { false }
    }

    private static func readOnly(_ replies: [RedisValue]) -> [Int] { replies.indices.filter { isReadOnly(replies[$0]) } }

    private func execute(_ items: [Pending], on connection: RedisConnection, into deliveries: inout Deliveries) {
        let plan = client.plan(items)
        let commands = plan.commands
        do {
            client.stats.roundTrips.add(1, ordering: .relaxed)
            client.stats.commands.add(commands.count, ordering: .relaxed)
            let started = ContinuousClock.now
            var replies = try connection.pipeline(commands)
            let elapsed = ContinuousClock.now - started
            client.stats.record(roundTrip: elapsed)
            client.configuration.onRoundTrip?(items.count, elapsed)
            try client.reloadScripts(for: &replies, of: commands, on: connection)
            var readOnly = Self.readOnly(replies)
            var waits = 0
            var askedSentinels = false
            while !readOnly.isEmpty {
                // The server is a replica: demoted (a Sentinel failover), or the one the sentinels
                // are promoting, whose promotion takes a moment. The refused commands did not
                // run: they go to the master, after waiting out a promotion (5 ms at a time, at
                // most a second: the sentinels announce it a timer tick, ≤ 100 ms, before they
                // send it), else to the master the sentinels name (once).
                let current = self.connection?.endpoint ?? connection.endpoint
                self.connection?.close()
                connection.close()
                self.connection = nil
                client.stats.connected.store(0, ordering: .relaxed)
                backoff.retryNow()
                if client.announced.isPromoting(current) && waits < 200 {
                    if waits == 0 {
                        client.log.warning("redis server is being promoted; waiting for it", metadata: ["endpoint": "\(current)"])
                    }
                    waits += 1
                    usleep(5_000)
                } else {
                    if askedSentinels { break }
                    client.log.warning("redis server is a replica; finding the master again", metadata: ["endpoint": "\(current)"])
                    // An announced master that refuses writes is stale (a later switch was
                    // missed, or its promotion was abandoned): the sentinels are asked.
                    client.announced.forget(current)
                    askedSentinels = true
                }
                guard let next = connect(now: .now()) else { break }
                // The new master may not have the scripts (SCRIPT LOAD is not replicated).
                let again = readOnly.map { commands[$0] }
                var retried = try next.pipeline(again)
                try client.reloadScripts(for: &retried, of: again, on: next)
                for (i, index) in readOnly.enumerated() { replies[index] = retried[i] }
                readOnly = zip(readOnly, retried).filter { Self.isReadOnly($0.1) }.map(\.0)
            }
            for (i, item) in items.enumerated() {
                deliveries.add(item, .success(plan.replies(of: i, count: item.commands.count, in: replies)))
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
