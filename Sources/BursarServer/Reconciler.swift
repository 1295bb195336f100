import BursarRedis
import BursarStore
import BursarWire
import Logging
import NIOCore
import NIOPosix
public import Synchronization

/// This bursard's epoch and the reservation sequences it hands out (`ReservationSequence`).
///
/// The epoch comes from one Redis counter (`Keyspace.instanceEpochs`) and is registered in the
/// instance registry before the first sequence of it is used, so that a sweep can find what it
/// left if it dies. Until it has one, `next` returns nil and the caller waits on `whenReady`.
final class InstanceIdentity: Sendable {
    private struct State {
        var epoch: UInt64 = 0
        var counter: UInt64 = 0
        /// The installation's reservation key; nil until Redis gave it (before the first epoch).
        var seal: ReservationSeal?
        var acquiring = false
        var waiters: [@Sendable (Bool) -> Void] = []
    }

    private let state = Mutex(State())
    private let redis: RedisClient
    private let limiter: Limiter
    private let leaseMs: Int64
    private let logger: Logger

    init(redis: RedisClient, limiter: Limiter, leaseMs: Int64, logger: Logger) {
        self.redis = redis
        self.limiter = limiter
        self.leaseMs = leaseMs
        self.logger = logger
    }

    /// The epoch in use; 0 before the first is registered.
    var epoch: UInt64 { state.withLock { $0.epoch } }

    /// The installation's reservation key (SPEC §5); nil until Redis gave it, which happens
    /// before the first epoch: no reservation is chosen without it.
    var seal: ReservationSeal? { state.withLock { $0.seal } }

    /// The next sequence (`local` for a local admission; it holds the epoch), or nil while there
    /// is no epoch (an acquisition is then under way: wait with `whenReady`).
    func next(local: Bool = false) -> UInt64? {
        let taken = state.withLock { s -> (UInt64, UInt64)? in
            guard s.epoch != 0, s.counter < ReservationSequence.maxCounter else { return nil }
            s.counter += 1
            return (s.epoch, s.counter)
        }
        guard let (epoch, counter) = taken else {
            acquire()
            return nil
        }
        return ReservationSequence.make(epoch: epoch, counter: counter, local: local)
    }

    /// Calls `body` once an epoch is ready (true) or its acquisition failed (false), from a Redis
    /// thread or at once.
    func whenReady(_ body: @escaping @Sendable (Bool) -> Void) {
        let ready = state.withLock { s -> Bool in
            if s.epoch != 0 && s.counter < ReservationSequence.maxCounter { return true }
            s.waiters.append(body)
            return false
        }
        if ready { body(true) } else { acquire() }
    }

    /// Drops the epoch (a sweep took it for dead, or its counter ran out) and takes a new one.
    func rotate(from old: UInt64) {
        let dropped = state.withLock { s -> Bool in
            guard s.epoch == old else { return false }
            s.epoch = 0
            return true
        }
        if dropped {
            logger.warning("instance epoch given up; taking a new one", metadata: ["epoch": "\(old)"])
            acquire()
        }
    }

    /// Takes an epoch from Redis and registers it, unless that is already under way.
    func acquire() {
        let start = state.withLock { s -> Bool in
            guard !s.acquiring else { return false }
            s.acquiring = true
            return true
        }
        guard start else { return }
        let deadline = NIODeadline.now() + .seconds(2)
        // The reservation key first: written by the first bursard on this Redis, read by the
        // others. A bursard that already has one proposes it, so a Redis that lost its data
        // (restarted without persistence) gets back the key the running bursards use.
        let proposed = state.withLock { $0.seal?.text } ?? ReservationSeal.newKeyText()
        let key = [
            RedisCommand("SET", Keyspace.reservationKey, proposed, "NX"),
            RedisCommand("GET", Keyspace.reservationKey),
        ]
        redis.submit(key, deadline: deadline, lane: .priority) { [self] result in
            guard case .success(let replies) = result, replies.count == 2, let text = replies[1].string,
                  let seal = ReservationSeal(text: text)
            else {
                if case .success(let replies) = result, replies.count == 2, !replies[1].isNull {
                    logger.error("the reservation key in Redis is not base64 of 32 bytes; no reservation can be made", metadata: [
                        "key": "\(Keyspace.reservationKey)",
                    ])
                }
                return finish(nil)
            }
            let changed = state.withLock { s -> Bool in
                defer { s.seal = seal }
                return s.seal != nil && s.seal?.text != seal.text
            }
            if changed {
                logger.error("the reservation key in Redis changed (was it deleted?): ids this bursard issued before can no longer be settled", metadata: [
                    "key": "\(Keyspace.reservationKey)",
                ])
            }
            takeEpoch(deadline: deadline)
        }
    }

    private func takeEpoch(deadline: NIODeadline) {
        redis.submit([RedisCommand("INCR", Keyspace.instanceEpochs)], deadline: deadline, lane: .priority) { [self] result in
            guard case .success(let replies) = result, let value = replies.first?.int else { return finish(nil) }
            let epoch = ReservationSequence.epoch(fromCounter: value)
            redis.submit([limiter.heartbeatCommand(epoch: epoch, .register, leaseMs: leaseMs)], deadline: deadline, lane: .priority) { [self] result in
                guard case .success(let replies) = result, (try? limiter.parseHeartbeat(replies[0]))?.registered == true else { return finish(nil) }
                finish(epoch)
            }
        }
    }

    private func finish(_ epoch: UInt64?) {
        let waiters = state.withLock { s -> [@Sendable (Bool) -> Void] in
            s.acquiring = false
            if let epoch {
                s.epoch = epoch
                s.counter = 0
            }
            defer { s.waiters.removeAll() }
            return s.waiters
        }
        if let epoch { logger.info("instance epoch registered", metadata: ["epoch": "\(epoch)"]) }
        for w in waiters { w(epoch != nil) }
    }
}

/// Counters of the reconciliation: what bursard did about outcomes it did not know.
public final class ReconcileStats: Sendable {
    /// Attempts voided that had been admitted: their counters given back.
    public let voidedAdmissions = Atomic<Int>(0)
    /// Attempts voided that had not run (or had been denied): a fence now keeps their id.
    public let voidedFences = Atomic<Int>(0)
    /// Admissions confirmed delivered (they left the undelivered set).
    public let confirmedDeliveries = Atomic<Int>(0)
    /// Redis commands those confirmations took (one per organization per batch).
    public let deliveryCommands = Atomic<Int>(0)
    /// Redis commands the instance registry sent (heartbeats, sweep claims and scans, sweeps).
    public let registryCommands = Atomic<Int>(0)
    /// Dead bursards' epochs swept, and the admissions of theirs a sweep voided.
    public let sweptEpochs = Atomic<Int>(0)
    /// See `sweptEpochs`.
    public let sweptAdmissions = Atomic<Int>(0)
    init() {}
}

/// Everything bursard still owes Redis about outcomes: attempts to void (their clients were told
/// they were refused, or got no answer, while Redis may have admitted them) and admissions to
/// confirm delivered. Both are retried until Redis has taken them, in batches: one submission
/// in flight for each, the next taking everything that queued meanwhile. Thread-safe.
final class Reconciler: Sendable {
    private struct State {
        var voids: [ReservationID] = []
        var voidsInFlight = 0
        var delivered: [UInt64: [UInt64]] = [:]
        var deliveredCount = 0
        var deliveredInFlight = 0
    }

    private let state = Mutex(State())
    private let redis: RedisClient
    private let limiter: Limiter
    private let logger: Logger
    let stats = ReconcileStats()
    static let batch = 512

    init(redis: RedisClient, limiter: Limiter, logger: Logger) {
        self.redis = redis
        self.limiter = limiter
        self.logger = logger
    }

    /// Voids still to be done or in flight.
    var pendingVoids: Int { state.withLock { $0.voids.count + $0.voidsInFlight } }
    /// Delivery confirmations still to be sent or in flight.
    var pendingDeliveries: Int { state.withLock { $0.deliveredCount + $0.deliveredInFlight } }

    /// Voids the attempt under `reservation` (SPEC §13.7), now or on a later retry.
    func void(_ reservation: ReservationID) {
        state.withLock { $0.voids.append(reservation) }
        pumpVoids()
    }

    /// Confirms that the admission under `reservation` was handed to its client.
    func delivered(_ reservation: ReservationID) {
        state.withLock { s in
            s.delivered[reservation.orgID, default: []].append(reservation.sequence)
            s.deliveredCount += 1
        }
        pumpDeliveries()
    }

    /// Sends what is queued unless a batch is already in flight. After a failure nothing is sent
    /// until the next call (the engine's maintenance calls it every tick), so a Redis outage
    /// costs one attempt a tick, not a loop.
    func pump() {
        pumpVoids()
        pumpDeliveries()
    }

    private func pumpVoids() {
        let taken = state.withLock { s -> [ReservationID] in
            guard s.voidsInFlight == 0, !s.voids.isEmpty else { return [] }
            let n = min(Self.batch, s.voids.count)
            let out = Array(s.voids.prefix(n))
            s.voids.removeFirst(n)
            s.voidsInFlight = n
            return out
        }
        guard !taken.isEmpty else { return }
        redis.submit(taken.map(limiter.voidCommand), deadline: .now() + .seconds(2), lane: .priority) { [self] result in
            var failed: [ReservationID] = []
            switch result {
            case .success(let replies):
                for (reservation, reply) in zip(taken, replies) {
                    do {
                        if try limiter.parseVoid(reply) {
                            stats.voidedAdmissions.add(1, ordering: .relaxed)
                        } else {
                            stats.voidedFences.add(1, ordering: .relaxed)
                        }
                    } catch {
                        logger.warning("voiding an attempt failed; it is retried", metadata: ["error": "\(error)"])
                        failed.append(reservation)
                    }
                }
            case .failure:
                failed = taken
            }
            let again = state.withLock { s -> Bool in
                s.voidsInFlight = 0
                s.voids.insert(contentsOf: failed, at: 0)
                return failed.isEmpty && !s.voids.isEmpty
            }
            if again { pumpVoids() }
        }
    }

    private func pumpDeliveries() {
        let taken = state.withLock { s -> [UInt64: [UInt64]] in
            guard s.deliveredInFlight == 0, s.deliveredCount > 0 else { return [:] }
            let out = s.delivered
            s.deliveredInFlight = s.deliveredCount
            s.delivered.removeAll(keepingCapacity: true)
            s.deliveredCount = 0
            return out
        }
        guard !taken.isEmpty else { return }
        let orgs = Array(taken.keys)
        let commands = orgs.map { Limiter.deliveredCommand(org: $0, sequences: taken[$0]!) }
        stats.deliveryCommands.add(commands.count, ordering: .relaxed)
        // From an event loop (a CHECK's answer was just written), through that loop's own Redis
        // connection, with whatever else the loop sends: no thread hand-off.
        redis.submit(commands, deadline: .now() + .seconds(2), on: MultiThreadedEventLoopGroup.currentEventLoop, lane: .priority) {
            [self] result in
            var failed: [UInt64: [UInt64]] = [:]
            switch result {
            case .success(let replies):
                for (org, reply) in zip(orgs, replies) {
                    if case .error = reply { failed[org] = taken[org] } else { stats.confirmedDeliveries.add(taken[org]!.count, ordering: .relaxed) }
                }
            case .failure:
                failed = taken
            }
            let again = state.withLock { s -> Bool in
                s.deliveredInFlight = 0
                for (org, list) in failed {
                    s.delivered[org, default: []].append(contentsOf: list)
                    s.deliveredCount += list.count
                }
                return failed.isEmpty && s.deliveredCount > 0
            }
            if again { pumpDeliveries() }
        }
    }
}

/// The instance registry's side of bursard: heartbeats, and sweeps of what dead instances left.
///
/// Every `lease / 4` the engine's maintenance beats (`Limiter.heartbeatCommand`, on Redis's
/// clock). An epoch whose last beat is older than its own lease (each instance registers its
/// lease) is dead, but only once this bursard itself has beaten without a failure for that whole
/// lease: after a Redis outage every live instance beats again within that time, so none is
/// taken for dead because Redis was away. A
/// dead epoch is claimed (one sweeper at a time), every organization's undelivered admissions of
/// it are voided (`Limiter.sweepCommand`, a batch of organizations per round trip), and it leaves
/// the registry. A bursard that finds its own epoch gone (it was taken for dead while cut off
/// from Redis) takes a new one.
final class InstanceRegistry: Sendable {
    private struct State {
        /// Registering the epoch is its first beat.
        var lastBeat: NIODeadline = .now()
        var healthySinceMs: Int64?
        var sweeping = false
    }

    private let state = Mutex(State())
    private let redis: RedisClient
    private let limiter: Limiter
    private let identity: InstanceIdentity
    private let reconciler: Reconciler
    private let logger: Logger
    let leaseMs: Int64

    init(redis: RedisClient, limiter: Limiter, identity: InstanceIdentity, reconciler: Reconciler, leaseMs: Int64, logger: Logger) {
        self.redis = redis
        self.limiter = limiter
        self.identity = identity
        self.reconciler = reconciler
        self.leaseMs = leaseMs
        self.logger = logger
    }

    /// Beats if a beat is due, and sweeps the dead epochs it learns of.
    func maintain() async {
        let now = NIODeadline.now()
        let due = state.withLock { s -> Bool in
            guard now - s.lastBeat >= .milliseconds(max(50, leaseMs / 4)), !s.sweeping else { return false }
            s.lastBeat = now
            return true
        }
        guard due else { return }
        let epoch = identity.epoch
        guard epoch != 0 else {
            identity.acquire()
            return
        }
        let reply: Limiter.HeartbeatReply
        reconciler.stats.registryCommands.add(1, ordering: .relaxed)
        do {
            reply = try limiter.parseHeartbeat(
                try await redis.send([limiter.heartbeatCommand(epoch: epoch, .beat, leaseMs: leaseMs)], timeout: .seconds(1))[0])
        } catch {
            state.withLock { $0.healthySinceMs = nil }
            return
        }
        guard reply.registered else {
            state.withLock { $0.healthySinceMs = nil }
            identity.rotate(from: epoch)
            return
        }
        let healthyFor = state.withLock { s -> Int64 in
            if s.healthySinceMs == nil { s.healthySinceMs = reply.nowMs }
            return reply.nowMs - s.healthySinceMs!
        }
        // An epoch is swept only by a bursard that has itself beaten without a failure for that
        // epoch's whole lease: had Redis been away, its owner has had the time to beat again.
        let dead = reply.dead.filter { $0.epoch != epoch && healthyFor >= $0.leaseMs }
        guard !dead.isEmpty else { return }
        state.withLock { $0.sweeping = true }
        defer { state.withLock { $0.sweeping = false } }
        for e in dead { await sweep(epoch: e.epoch, by: epoch) }
    }

    /// Voids everything `epoch` left undelivered in every organization, then removes it.
    private func sweep(epoch dead: UInt64, by me: UInt64) async {
        do {
            reconciler.stats.registryCommands.add(1, ordering: .relaxed)
            let claim = try await redis.send(
                RedisCommand("SET", Keyspace.sweepClaim(dead), String(me), "NX", "PX", "60000"), timeout: .seconds(1))
            guard claim.string == "OK" else { return }
            logger.warning("sweeping what a dead bursard left", metadata: ["epoch": "\(dead)"])
            var cursor = "0"
            var voided = 0
            repeat {
                reconciler.stats.registryCommands.add(1, ordering: .relaxed)
                let page = try await redis.send(RedisCommand("SSCAN", Keyspace.orgs, cursor, "COUNT", "256"), timeout: .seconds(2))
                guard let parts = page.array, parts.count == 2, let next = parts[0].string else {
                    throw RedisError(.unexpectedReply, "SSCAN reply has the wrong shape")
                }
                cursor = next
                var orgs = (parts[1].array ?? []).compactMap { $0.string.flatMap(UInt64.init) }
                // Each org until its sweep comes back short of the limit (nothing of the epoch left).
                while !orgs.isEmpty {
                    reconciler.stats.registryCommands.add(orgs.count, ordering: .relaxed)
                    let replies = try await redis.send(orgs.map { limiter.sweepCommand(org: $0, epoch: dead) }, timeout: .seconds(5))
                    var again: [UInt64] = []
                    for (org, reply) in zip(orgs, replies) {
                        guard let n = reply.int else { throw RedisError(.unexpectedReply, "sweep of org \(org): \(reply)") }
                        voided += Int(n)
                        if n >= 256 { again.append(org) }
                    }
                    orgs = again
                }
            } while cursor != "0"
            reconciler.stats.registryCommands.add(1, ordering: .relaxed)
            _ = try await redis.send(limiter.heartbeatCommand(epoch: dead, .leave, leaseMs: leaseMs), timeout: .seconds(1))
            reconciler.stats.sweptEpochs.add(1, ordering: .relaxed)
            reconciler.stats.sweptAdmissions.add(voided, ordering: .relaxed)
            logger.warning("swept what a dead bursard left", metadata: ["epoch": "\(dead)", "undelivered_admissions": "\(voided)"])
        } catch {
            logger.warning("sweeping a dead bursard failed; it is retried", metadata: ["epoch": "\(dead)", "error": "\(error)"])
        }
    }

    /// Leaves the registry (a graceful exit with nothing left to resolve).
    func leave() async {
        let epoch = identity.epoch
        guard epoch != 0 else { return }
        _ = try? await redis.send([limiter.heartbeatCommand(epoch: epoch, .leave, leaseMs: leaseMs)], timeout: .seconds(1))
    }
}
