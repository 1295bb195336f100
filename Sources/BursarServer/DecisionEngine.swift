public import BursarRedis
public import BursarStore
public import BursarWire
public import Logging
public import NIOCore
public import Synchronization
public import ServiceLifecycle

/// How the decision engine behaves.
public struct EngineConfiguration: Sendable {
    /// The longest a decision may wait for Redis; past it the answer is `store_unavailable`.
    public var deadline: TimeAmount
    /// How long a resolved digest stays cached.
    public var cacheTTL: TimeAmount
    /// How long an unknown digest stays cached.
    public var negativeCacheTTL: TimeAmount
    /// Most digests cached.
    public var cacheCapacity: Int
    /// What a CHECK gets when Redis cannot decide it in time.
    public var storeFailure: StoreFailurePolicy
    /// How often admissions made locally are replayed into Redis while any are pending, and
    /// how often outcomes still owed to Redis (voids, delivery confirmations) are retried.
    public var replayInterval: Duration
    /// The adaptive limit on CHECKs waiting on Redis (SPEC §15.2); nil: the default for the
    /// deadline.
    public var admission: AdmissionConfiguration?
    /// How long a bursard may go without a heartbeat before another sweeps what it left
    /// undelivered (SPEC §13.7).
    public var instanceLease: TimeAmount

    /// Defaults: 50 ms deadline, 5 s cache, 1 s negative cache, 100,000 entries, deny on store
    /// failure, replay every 200 ms, the admission limit's defaults, a 10 s instance lease.
    public init(
        deadline: TimeAmount = .milliseconds(50), cacheTTL: TimeAmount = .seconds(5),
        negativeCacheTTL: TimeAmount = .seconds(1), cacheCapacity: Int = 100_000,
        storeFailure: StoreFailurePolicy = StoreFailurePolicy(), replayInterval: Duration = .milliseconds(200),
        admission: AdmissionConfiguration? = nil, instanceLease: TimeAmount = .seconds(10)
    ) {
        self.deadline = deadline
        self.cacheTTL = cacheTTL
        self.negativeCacheTTL = negativeCacheTTL
        self.cacheCapacity = cacheCapacity
        self.storeFailure = storeFailure
        self.replayInterval = replayInterval
        self.admission = admission
        self.instanceLease = instanceLease
    }
}

/// Why Redis did not make a decision its answer waited for (the answer then is
/// `store_unavailable`, or the store failure policy's).
public enum StoreFailureCause: Int, Sendable, CaseIterable {
    /// The deadline passed first: the step waited to be sent, or Redis answered too late.
    case deadline = 0
    /// No connection, or it broke with the step sent (the outcome unknown until resolved).
    case connection = 1
    /// Redis answered an error, or a reply of the wrong shape: a fault of the store or of bursar.
    case error = 2

    /// The metric label.
    public var label: String {
        switch self {
        case .deadline: "deadline"
        case .connection: "connection"
        case .error: "error"
        }
    }

    /// The cause of a failed Redis step.
    init(_ error: RedisError) {
        switch error.code {
        case .deadlineExceeded: self = .deadline
        case .server, .unexpectedReply: self = .error
        default: self = .connection
        }
    }
}

/// Decision counters.
public final class EngineStats: Sendable {
    /// CHECKs answered, by `DenyReason.rawValue` (0 = allowed).
    public let decisions: [Counter]
    /// SETTLEs and RELEASEs answered, by `ReservationStatus.rawValue`.
    public let settlements: [Counter]
    /// Late admissions (Redis answered after the deadline) that were voided again.
    public let lateAdmissionsReleased = Atomic<Int>(0)
    /// Budget alerts the limiter recorded on this instance's steps, by `BudgetAlerts` bit (key
    /// 50/80/100 %, project 50/80/100 %).
    public let budgetAlerts: [Counter] = (0..<6).map { _ in Counter() }

    /// Counts the alerts one step crossed.
    func note(_ alerts: BudgetAlerts) {
        guard !alerts.isEmpty else { return }
        for bit in 0..<6 where alerts.rawValue & (1 << bit) != 0 { budgetAlerts[bit].increment() }
    }
    /// Admissions whose client was gone before the answer could be written, voided again.
    public let orphanedAdmissionsReleased = Atomic<Int>(0)
    /// CHECKs whose Redis step failed after it may have run (connection lost or timed out): their
    /// outcome was unknown, and they were voided.
    public let unknownOutcomesVoided = Atomic<Int>(0)
    /// CHECKs answered (store failure, deadline) while their Redis step was still under way, and
    /// not yet come back: outcomes bursard does not know yet.
    public let awaitingLateOutcome = Atomic<Int>(0)
    /// Decisions (CHECK, SETTLE, RELEASE) Redis did not make for their answer, by
    /// `StoreFailureCause.rawValue`.
    public let storeFailures: [Counter] = StoreFailureCause.allCases.map { _ in Counter() }

    init() {
        decisions = (0...255).map { _ in Counter() }
        settlements = (0...255).map { _ in Counter() }
    }
}

/// A relaxed atomic counter that can live in an array.
public final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    init() {}
    /// Adds one.
    public func increment() { value.add(1, ordering: .relaxed) }
    /// The current count.
    public var count: Int { value.load(ordering: .relaxed) }
}

/// Turns CHECK/SETTLE/RELEASE requests into atomic Redis steps, bounded by a deadline.
///
/// Callers get an `EventLoopFuture` on their own event loop; Redis work happens on the client's
/// threads and is pipelined with everyone else's.
public final class DecisionEngine: Service, Sendable {
    /// Configuration.
    public let configuration: EngineConfiguration
    /// The Redis client.
    public let redis: RedisClient
    /// The scripts and their replies.
    public let limiter: Limiter
    /// Counters.
    public let stats = EngineStats()
    let cache: IdentityCache
    private let logger: Logger
    /// One per event loop that has asked for decisions (loops are few and live as long as the engine).
    private let deadlineQueues = Mutex<[ObjectIdentifier: DeadlineQueue]>([:])

    /// An engine. Registers the limiter's scripts with the client.
    /// Latency histograms the data plane records into (nil: none).
    public let metrics: ServerMetrics?
    /// The local admissions of the store failure policy; nil when it never admits locally.
    let fallback: LocalFallback?
    /// False from a decision Redis failed to make in time until the next one it makes.
    private let storeAnswered = Atomic<Bool>(true)
    /// When Redis last answered anything (uptime ns).
    private let lastStoreAnswer = Atomic<UInt64>(NIODeadline.now().uptimeNanoseconds)
    /// The adaptive limit on CHECKs waiting on Redis.
    public let admission: AdmissionControl
    /// This bursard's epoch and the reservation sequences it chooses.
    let identity: InstanceIdentity
    /// Voids and delivery confirmations owed to Redis.
    let reconciler: Reconciler
    /// Heartbeats and sweeps of dead instances.
    let registry: InstanceRegistry
    /// The gateway credentials of the data-plane connections (SPEC §6.5).
    let gateways: GatewayAuthority
    private let stopped = Atomic<Bool>(false)

    /// An engine. With `metrics`, the data plane records frame latencies into it. Its
    /// maintenance (replays, retries of voids and confirmations, heartbeats, sweeps) is `run()`.
    public init(redis: RedisClient, limiter: Limiter, configuration: EngineConfiguration, logger: Logger, metrics: ServerMetrics? = nil) {
        self.metrics = metrics
        self.redis = redis
        self.limiter = limiter
        self.configuration = configuration
        self.logger = logger
        self.cache = IdentityCache(ttl: configuration.cacheTTL, negativeTTL: configuration.negativeCacheTTL, capacity: configuration.cacheCapacity)
        self.fallback = configuration.storeFailure.admitsLocally
            ? LocalFallback(
                policy: configuration.storeFailure, reservationTTL: .milliseconds(limiter.reservationTTLMs),
                capacity: configuration.cacheCapacity)
            : nil
        self.admission = AdmissionControl(
            configuration.admission ?? AdmissionConfiguration(deadline: configuration.deadline), deadline: configuration.deadline)
        let leaseMs = max(100, configuration.instanceLease.nanoseconds / 1_000_000)
        self.identity = InstanceIdentity(redis: redis, limiter: limiter, leaseMs: leaseMs, logger: logger)
        self.reconciler = Reconciler(redis: redis, limiter: limiter, logger: logger)
        self.gateways = GatewayAuthority(redis: redis, logger: logger)
        self.registry = InstanceRegistry(
            redis: redis, limiter: limiter, identity: identity, reconciler: reconciler, leaseMs: leaseMs, logger: logger)
        redis.register(limiter.scripts)
        redis.batch(limiter.batches)
        identity.acquire()
    }

    /// The engine's maintenance (replays of local admissions, retries of voids and delivery
    /// confirmations, the heartbeat and any sweep it calls for, the recheck of gateway
    /// credentials), every `replayInterval`, until `shutdown()`, a graceful shutdown of its
    /// service group, or cancellation. bursard runs it as a service of its group, started before
    /// the data plane so that it is asked to stop after it (the data plane's own shutdown runs
    /// `shutdown()` first); tests run it in a task.
    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !self.stopped.load(ordering: .relaxed) {
                try await Task.sleep(for: self.configuration.replayInterval)
                guard !self.stopped.load(ordering: .relaxed) else { return }
                await self.maintain()
            }
        }
    }

    /// One round of maintenance: retries of voids and confirmations, the replay of local
    /// admissions, the heartbeat and any sweep it calls for.
    func maintain() async {
        admission.tick(now: .now())
        reconciler.pump()
        if fallback != nil { await replayLocalAdmissions() }
        await registry.maintain()
        await gateways.recheck()
    }

    /// Outcomes this bursard still has to resolve: attempts answered before Redis came back
    /// about them, and voids not yet taken by Redis.
    public var unresolvedAttempts: Int { stats.awaitingLateOutcome.load(ordering: .relaxed) + reconciler.pendingVoids }

    /// Admissions handed to clients whose delivery Redis has not been told of yet.
    public var pendingDeliveryConfirmations: Int { reconciler.pendingDeliveries }

    /// Counters of the reconciliation.
    public var reconcileStats: ReconcileStats { reconciler.stats }

    /// The epoch this bursard's reservation sequences carry (0 before Redis gave it one).
    public var epoch: UInt64 { identity.epoch }

    /// The id a client is given for `reservation` (SPEC §5): sealed under the installation's
    /// reservation key. An admission always has one (its sequence needed an epoch, which comes
    /// after the key); the all-zero id stays zero.
    public func clientID(for reservation: ReservationID) -> ReservationID {
        guard reservation != .none else { return .none }
        guard let seal = identity.seal else {
            logger.critical("an admission without the reservation key; its id is withheld", metadata: ["reservation": "\(reservation)"])
            return .none
        }
        return seal.seal(reservation)
    }

    /// The reservation a client's id names; nil when it names none this installation issued
    /// (answered `unknown`, nothing asked of Redis).
    public func reservation(fromClient id: ReservationID) -> ReservationID? {
        identity.seal?.open(id)
    }

    /// Takes this bursard's epoch and loads the scripts before the first CHECK; waits up to
    /// `timeout`. Optional: a CHECK arriving first waits for the epoch within its deadline.
    public func prepare(timeout: Duration = .seconds(2)) async {
        try? await preloadScripts()
        let clock = ContinuousClock()
        let until = clock.now + timeout
        while identity.epoch == 0 && clock.now < until {
            identity.acquire()
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Resolves what can be before the process goes: replays local admissions, sends the voids
    /// and confirmations still owed (for up to `timeout`), and leaves the instance registry if
    /// nothing is left, so no sweep is needed. Returns how many local admissions were not replayed.
    /// Stops the maintenance.
    @discardableResult
    public func shutdown(timeout: Duration = .seconds(5)) async -> Int {
        let unreplayed = await replayLocalAdmissions()
        let clock = ContinuousClock()
        let until = clock.now + timeout
        while (unresolvedAttempts > 0 || pendingDeliveryConfirmations > 0) && clock.now < until {
            reconciler.pump()
            try? await Task.sleep(for: .milliseconds(10))
        }
        stopped.store(true, ordering: .relaxed)
        if unresolvedAttempts == 0 && pendingDeliveryConfirmations == 0 && pendingReplay == 0 {
            await registry.leave()
        } else {
            logger.warning("outcomes left unresolved at exit; another bursard sweeps them after the instance lease", metadata: [
                "unresolved": "\(unresolvedAttempts)", "unconfirmed_deliveries": "\(pendingDeliveryConfirmations)",
            ])
        }
        return unreplayed
    }

    // MARK: Store failure policy

    /// Where this engine stands with Redis: answering, or not and what CHECKs get meanwhile.
    public var storeMode: StoreMode {
        if storeAnswered.load(ordering: .relaxed) { return .available }
        return fallback == nil ? .unavailableDenying : .unavailableAdmittingLocally
    }

    /// Local admissions awaiting replay into Redis.
    public var pendingReplay: Int { fallback?.pendingCount ?? 0 }

    /// Counters of local admissions (all zero when the policy never admits locally).
    public var fallbackStats: FallbackStats? { fallback?.stats }

    fileprivate func noteStore(answered: Bool) {
        if storeAnswered.load(ordering: .relaxed) != answered { storeAnswered.store(answered, ordering: .relaxed) }
        if answered { lastStoreAnswer.store(NIODeadline.now().uptimeNanoseconds, ordering: .relaxed) }
    }

    /// False only while Redis is away: a decision failed to come back in time and Redis has
    /// answered nothing for a whole deadline since. A CHECK finding the admission limit full is
    /// then a store failure (the store failure policy answers), else `overloaded` (Redis is busy).
    /// An idle bursard is not "away": nothing failed.
    var storeRecentlyAnswered: Bool {
        if storeAnswered.load(ordering: .relaxed) { return true }
        let last = lastStoreAnswer.load(ordering: .relaxed)
        let now = NIODeadline.now().uptimeNanoseconds
        return now < last || now - last < UInt64(max(0, configuration.deadline.nanoseconds))
    }

    /// What a CHECK gets when Redis failed to decide it: a local admission or standing deny
    /// under the store failure policy, else `store_unavailable`. On the attempt's loop.
    fileprivate func storeFailed(_ request: CheckRequest, serving organizations: Set<UInt64>? = nil) -> CheckResult {
        guard let fallback, let known = cache.lastKnown(request.digest) else { return .deny(.storeUnavailable) }
        if let organizations, !organizations.contains(known.orgID) { return .deny(.unknownKey) }
        return fallback.decide(request, identity: known, now: .now(), sequence: { self.identity.next(local: true) })
            ?? .deny(.storeUnavailable)
    }

    /// Replays the pending local admissions into Redis, oldest first, in pipelined batches, until
    /// none are left or Redis fails (the rest wait for the next call). Runs every
    /// `replayInterval` on its own while admissions are pending; also called on shutdown.
    /// Returns how many are still pending.
    @discardableResult
    public func replayLocalAdmissions(batch: Int = 256) async -> Int {
        guard let fallback else { return 0 }
        while true {
            let items = fallback.replayBatch(limit: batch)
            if items.isEmpty { return 0 }
            let now = NIODeadline.now()
            var commands: [RedisCommand] = []
            commands.reserveCapacity(2 * items.count)
            for item in items {
                let a = item.admission
                let reservation = ReservationID(orgID: a.identity.orgID, sequence: item.sequence)
                commands.append(limiter.replayCommand(
                    a.request, identity: a.identity, sequence: item.sequence, remainingTTLMs: fallback.remainingTTLMs(a, now: now)))
                switch a.settlement {
                case .open: break
                case .settled(var settle):
                    settle.reservation = reservation
                    commands.append(limiter.settleCommand(settle))
                case .released:
                    commands.append(limiter.releaseCommand(reservation))
                }
            }
            let replies: [RedisValue]
            do {
                replies = try await redis.send(commands, timeout: .seconds(2))
            } catch {
                return fallback.pendingCount
            }
            var confirmed: [LocalFallback.ReplayItem] = []
            var dropped: [LocalFallback.ReplayItem] = []
            var index = 0
            for item in items {
                let reply = replies[index]
                index += 1
                let followed = item.admission.settlement != .open
                let followUp = followed ? replies[index] : nil
                if followed { index += 1 }
                do {
                    // Recorded now or by an earlier replay whose answer was lost: either way it is
                    // counted once, when it is forgotten here.
                    if try limiter.parseReplay(reply) != .keyGone {
                        if let followUp { _ = try limiter.parseSettle(followUp) }
                        confirmed.append(item)
                    } else {
                        logger.warning("a local admission's key no longer exists; its debit could not be replayed", metadata: [
                            "org": "\(item.admission.identity.orgID)", "key": "\(item.admission.identity.keyID)",
                        ])
                        dropped.append(item)
                    }
                } catch {
                    logger.warning("replaying a local admission failed; it is retried", metadata: ["error": "\(error)"])
                }
            }
            fallback.stats.replayed.add(fallback.confirm(confirmed), ordering: .relaxed)
            fallback.stats.dropped.add(fallback.confirm(dropped), ordering: .relaxed)
            noteStore(answered: true)
            if confirmed.count + dropped.count < items.count { return fallback.pendingCount }
        }
    }

    /// Cache counters.
    public var cacheStats: CacheStats { cache.stats }

    /// Digests cached, known and unknown (expired ones count until they are swept).
    public var cachedDigestCount: Int { cache.count }

    /// Whether `digest` is cached and unexpired. Does not count as a cache hit or miss.
    @_spi(Testing)
    public func isCached(_ digest: KeyDigest) -> Bool { cache.contains(digest, now: .now()) }

    /// Whether `digest` is cached and unexpired (known or unknown), without counting a hit or a
    /// miss: a CHECK for it is answered without a Redis lookup of the key.
    func isDigestCached(_ digest: KeyDigest) -> Bool { cache.contains(digest, now: .now()) }

    /// Drops what `invalidation` names from the digest cache (see `InvalidationListener`).
    public func applyInvalidation(_ invalidation: Invalidation) {
        // What the store failure policy learnt of a key goes with it: a changed key is learnt
        // again from Redis's next decision before it can be admitted locally.
        switch invalidation {
        case .digest(let digest):
            if let fallback, let identity = cache.lastKnown(digest) { fallback.forget { $0 == identity } }
            cache.invalidate(digest)
        case .org(let org):
            fallback?.forget { $0.orgID == org }
            cache.invalidate(org: org)
        case .all:
            fallback?.forget { _ in true }
            cache.invalidateAll()
        case .gateway(let digest):
            gateways.revoked(digest)
        }
    }

    /// Loads the limiter scripts and libraries into Redis ahead of the first CHECK. Optional: a
    /// missing one is loaded when a call finds it missing anyway; this only takes that round trip
    /// off a request.
    public func preloadScripts() async throws {
        let replies = try await redis.send(limiter.scripts.map(\.loadCommand))
        for (script, reply) in zip(limiter.scripts, replies) where !script.isLoaded(by: reply) {
            throw RedisError(.unexpectedReply, "\(script.function == nil ? "SCRIPT" : "FUNCTION") LOAD answered \(reply)")
        }
    }

    /// Whether this engine can decide now: nil when Redis answers and the limiter scripts are
    /// loaded (they are loaded here if Redis lost them), else the reason it cannot.
    public func readiness(timeout: TimeAmount = .seconds(1)) async -> String? {
        // The scripts in one SCRIPT EXISTS, then each library by name.
        let scripts = limiter.scripts.filter { $0.function == nil }
        let libraries = limiter.scripts.compactMap(\.function)
        var command = RedisCommand("SCRIPT", "EXISTS")
        for script in scripts { command.append(script.sha1) }
        let loaded: Bool
        do {
            let replies = try await redis.send([command] + libraries.map { RedisCommand("FUNCTION", "LIST", "LIBRARYNAME", $0) }, timeout: timeout)
            let exists = replies.first?.array ?? []
            loaded = exists.count == scripts.count && exists.allSatisfy { $0.int == 1 }
                && replies.dropFirst().allSatisfy { ($0.array?.count ?? 0) == 1 }
        } catch {
            noteStore(answered: false)
            return "redis unreachable: \(error.code)"
        }
        noteStore(answered: true)
        if identity.epoch == 0 {
            identity.acquire()
            return "instance epoch not registered yet"
        }
        if loaded { return nil }
        do {
            try await preloadScripts()
            return nil
        } catch {
            return "limiter scripts not loaded: \(error)"
        }
    }

    /// Decides a CHECK. Always completes by the deadline. Handing the answer to the caller counts
    /// as its delivery (an admission is confirmed to Redis as delivered).
    public func check(_ request: CheckRequest, on loop: any EventLoop) -> EventLoopFuture<CheckResult> {
        let promise = loop.makePromise(of: CheckResult.self)
        check(request, on: loop) { [self] result in
            delivered(result)
            promise.succeed(result)
        }
        return promise.futureResult
    }

    /// The answer `result` was handed to its client: if it is an admission, Redis is told, so that
    /// no sweep ever voids it (SPEC §13.7). Denials and local admissions (never in Redis's
    /// undelivered set) need nothing.
    public func delivered(_ result: CheckResult) {
        guard result.allowed, !result.admittedLocally, ReservationSequence.epoch(of: result.reservation.sequence) != nil else { return }
        reconciler.delivered(result.reservation)
    }

    /// Decides a CHECK and calls `completion` with the answer on `loop`, exactly once, by the
    /// deadline. The data plane's path: no promise, no future.
    ///
    /// A CHECK that needs Redis first takes a slot of the adaptive limit (`AdmissionControl`):
    /// with none free it is answered at once, `overloaded` while Redis answers, or as a store
    /// failure (the store failure policy) while it does not. Its reservation sequence is chosen
    /// before it is sent, so if its outcome cannot be learnt in time it is voided afterwards.
    ///
    /// `organizations`: the organizations the caller's connection serves (its gateway
    /// credential's, SPEC §6.5), nil for all. A key of another is answered `unknown_key`, as a
    /// digest no key has: nothing evaluated, nothing counted.
    func check(
        _ request: CheckRequest, serving organizations: Set<UInt64>? = nil, on loop: any EventLoop,
        completion: @escaping (CheckResult) -> Void
    ) {
        let now = NIODeadline.now()
        let deadline = now + configuration.deadline
        switch cache.lookup(request.digest, now: now) {
        case .unknown:
            stats.decisions[Int(DenyReason.unknownKey.rawValue)].increment()
            completion(.deny(.unknownKey))
        case .known(let identity):
            if let organizations, !organizations.contains(identity.orgID) {
                stats.decisions[Int(DenyReason.unknownKey.rawValue)].increment()
                return completion(.deny(.unknownKey))
            }
            guard let attempt = admitted(request, serving: organizations, on: loop, deadline: deadline, completion: completion) else { return }
            runCheck(request, identity, attempt)
        case .miss:
            guard let attempt = admitted(request, serving: organizations, on: loop, deadline: deadline, completion: completion) else { return }
            let generation = cache.generation
            redis.submit([Limiter.resolveCommand(request.digest)], deadline: deadline, on: loop, lane: .sheddable) { [self] result in
                switch result {
                case .success(let replies):
                    noteStore(answered: true)
                    do {
                        let identity = try Limiter.parseResolve(replies[0])
                        cache.store(request.digest, identity, now: .now(), resolvedAt: generation)
                        if let identity, organizations?.contains(identity.orgID) ?? true {
                            runCheck(request, identity, attempt)
                        } else {
                            attempt.releaseSlot(missed: false)
                            attempt.finishFromAnyThread(.deny(.unknownKey))
                        }
                    } catch {
                        logger.error("digest index reply unreadable", metadata: ["error": "\(error)"])
                        attempt.releaseSlot(missed: false)
                        attempt.failFromAnyThread(.error, .deny(.storeUnavailable))
                    }
                case .failure(let error):
                    attempt.storeStepFailed(error)
                }
            }
        }
    }

    /// A slot of the admission limit for a CHECK that needs Redis, as an attempt holding it; nil
    /// when none is free, `completion` then called at once: `overloaded` while Redis answers, a
    /// store failure (the store failure policy) while it does not — the CHECKs holding the slots
    /// are waiting on it, and this one would only queue behind them.
    private func admitted(
        _ request: CheckRequest, serving organizations: Set<UInt64>?, on loop: any EventLoop, deadline: NIODeadline,
        completion: @escaping (CheckResult) -> Void
    ) -> Attempt<CheckResult>? {
        guard admission.tryAcquire() else {
            let result: CheckResult
            if storeRecentlyAnswered {
                result = overloaded(.limit)
            } else {
                result = storeFailed(request, serving: organizations)
            }
            result.record(in: stats)
            completion(result)
            return nil
        }
        let attempt = Attempt<CheckResult>(engine: self, loop: loop, deadline: deadline, fallback: .deny(.storeUnavailable), completion: completion)
        attempt.holdsSlot = true
        if fallback != nil { attempt.onStoreFailure = { [self] in storeFailed(request, serving: organizations) } }
        return attempt
    }

    /// An attempt whose CHECK may have run but whose outcome was not learnt: voided as soon as
    /// Redis answers again (SPEC §13.7).
    private func voidUnknown(_ reservation: ReservationID) {
        reconciler.void(reservation)
        stats.unknownOutcomesVoided.add(1, ordering: .relaxed)
    }

    /// The `overloaded` answer, counted as shed for `reason`: nothing evaluated, retry after the
    /// admission control's hint.
    func overloaded(_ reason: ShedReason) -> CheckResult {
        var result = CheckResult.deny(.overloaded)
        result.retryAfterMs = admission.refused(reason)
        return result
    }

    private func runCheck(_ request: CheckRequest, _ identity: KeyIdentity, _ attempt: Attempt<CheckResult>) {
        guard let sequence = self.identity.next() else {
            // No epoch yet (Redis has not given one since start): wait for it within the deadline.
            self.identity.whenReady { [self] ready in
                attempt.loop.execute {
                    guard !attempt.done else { return attempt.releaseSlot(missed: true) }
                    if ready {
                        self.runCheck(request, identity, attempt)
                    } else {
                        attempt.releaseSlot(missed: true)
                        attempt.storeFailedFromAnyThread(.connection)
                    }
                }
            }
            return
        }
        let reservation = ReservationID(orgID: identity.orgID, sequence: sequence)
        let submitted = NIODeadline.now()
        attempt.awaitingStore = true
        redis.submit(
            [limiter.checkCommand(request, identity: identity, sequence: sequence)], deadline: attempt.deadline, on: attempt.loop,
            lane: .sheddable
        ) { [self] result in
            attempt.storeStepEnded()
            switch result {
            case .success(let replies):
                noteStore(answered: true)
                attempt.releaseSlot(latency: .now() - submitted, missed: attempt.done)
                do {
                    switch try limiter.parseCheck(replies[0], identity: identity, reservation: reservation) {
                    case .decided(let decision):
                        if decision.reason == .unknownKey { cache.invalidate(request.digest) }  // rotated or deleted
                        if decision.allowed { stats.note(limiter.checkAlerts(replies[0])) }
                        fallback?.learn(decision, request: request, identity: identity)
                        attempt.finishFromAnyThread(decision)
                    case .fenced:
                        // Voided before it ran: it did nothing. Only an attempt already answered is
                        // ever voided, so this is a late arrival.
                        attempt.finishFromAnyThread(.deny(.storeUnavailable))
                    }
                } catch {
                    // Whether it admitted is unknown: void it, as for a broken connection.
                    logger.error("limiter reply unreadable; the attempt is voided", metadata: ["error": "\(error)"])
                    voidUnknown(reservation)
                    attempt.failFromAnyThread(.error, .deny(.storeUnavailable))
                }
            case .failure(let error):
                // The script may have run: Redis may hold an admission nobody was told of.
                if !error.certainlyNotExecuted { voidUnknown(reservation) }
                attempt.storeStepFailed(error)
            }
        }
    }

    /// Settles a reservation. Idempotent; always completes by the deadline.
    public func settle(_ request: SettleRequest, on loop: any EventLoop) -> EventLoopFuture<ReservationResult> {
        let promise = loop.makePromise(of: ReservationResult.self)
        settle(request, on: loop) { promise.succeed($0) }
        return promise.futureResult
    }

    /// Releases a reservation. Idempotent; always completes by the deadline.
    public func release(_ request: ReleaseRequest, on loop: any EventLoop) -> EventLoopFuture<ReservationResult> {
        let promise = loop.makePromise(of: ReservationResult.self)
        release(request, on: loop) { promise.succeed($0) }
        return promise.futureResult
    }

    /// Settles a reservation and calls `completion` with the answer on `loop`, exactly once, by
    /// the deadline.
    func settle(_ request: SettleRequest, on loop: any EventLoop, completion: @escaping (ReservationResult) -> Void) {
        if let local = settleLocally(request.reservation, settle: request) { return completion(local) }
        reservationStep(limiter.settleCommand(request), local: LocalFallback.isLocal(request.reservation), on: loop, completion: completion)
    }

    /// Releases a reservation and calls `completion` with the answer on `loop`, exactly once, by
    /// the deadline.
    func release(_ request: ReleaseRequest, on loop: any EventLoop, completion: @escaping (ReservationResult) -> Void) {
        if let local = settleLocally(request.reservation, settle: nil) { return completion(local) }
        reservationStep(limiter.releaseCommand(request.reservation), local: LocalFallback.isLocal(request.reservation), on: loop, completion: completion)
    }

    /// Answers a SETTLE (`settle` given) or RELEASE of a local admission this engine still holds.
    private func settleLocally(_ reservation: ReservationID, settle: SettleRequest?) -> ReservationResult? {
        guard let fallback, LocalFallback.isLocal(reservation),
              let result = fallback.settle(reservation, settle: settle, now: .now()) else { return nil }
        result.record(in: stats)
        return result
    }

    /// `local`: the reservation is a local admission (of this or another bursard) whose replay may
    /// not have reached Redis yet, so `unknown` from Redis is answered `store_unavailable` (retry).
    private func reservationStep(_ command: RedisCommand, local: Bool, on loop: any EventLoop, completion: @escaping (ReservationResult) -> Void) {
        let deadline = NIODeadline.now() + configuration.deadline
        let attempt = Attempt<ReservationResult>(
            engine: self, loop: loop, deadline: deadline, fallback: ReservationResult(status: .storeUnavailable), completion: completion)
        redis.submit([command], deadline: deadline, on: loop) { [self] result in
            switch result {
            case .success(let replies):
                noteStore(answered: true)
                do {
                    let result = try limiter.parseSettle(replies[0])
                    stats.note(limiter.settleAlerts(replies[0]))
                    attempt.finishFromAnyThread(local && result.status == .unknown ? ReservationResult(status: .storeUnavailable) : result)
                } catch {
                    logger.error("settle reply unreadable", metadata: ["error": "\(error)"])
                    attempt.failFromAnyThread(.error, ReservationResult(status: .storeUnavailable))
                }
            case .failure(let error):
                attempt.failFromAnyThread(StoreFailureCause(error), ReservationResult(status: .storeUnavailable))
            }
        }
    }

    /// The deadline queue of `loop` (made on first use).
    fileprivate func deadlines(on loop: any EventLoop) -> DeadlineQueue {
        let id = ObjectIdentifier(loop)
        return deadlineQueues.withLock { queues in
            if let queue = queues[id] { return queue }
            let queue = DeadlineQueue(loop: loop)
            queues[id] = queue
            return queue
        }
    }

    /// Gives back an admission nobody will use (its answer could not be delivered): voided,
    /// every counter it moved given back, its request included (SPEC §13.7).
    public func releaseOrphan(_ reservation: ReservationID) {
        stats.orphanedAdmissionsReleased.add(1, ordering: .relaxed)
        if LocalFallback.isLocal(reservation) {
            _ = settleLocally(reservation, settle: nil)
        } else {
            voidLater(reservation)
        }
    }

    /// Voids an attempt whose client was told it was refused (a local admission was never in
    /// Redis: there is nothing to void).
    fileprivate func voidLater(_ reservation: ReservationID) {
        guard !ReservationSequence.isLocal(reservation.sequence) else { return }
        reconciler.void(reservation)
    }
}

/// What an `Attempt` does with its result: count it, and handle one that arrives too late.
protocol AttemptResult: Sendable {
    /// Counts an answer given.
    func record(in stats: EngineStats)
    /// Handles a result that arrived after the fallback was already given.
    func arrivedLate(engine: DecisionEngine)
}

extension CheckResult: AttemptResult {
    func record(in stats: EngineStats) { stats.decisions[Int(reason.rawValue)].increment() }

    /// Redis admitted it after we answered "store unavailable" or "overloaded": void it at once.
    func arrivedLate(engine: DecisionEngine) {
        guard allowed, !admittedLocally else { return }
        engine.stats.lateAdmissionsReleased.add(1, ordering: .relaxed)
        engine.voidLater(reservation)
    }
}

extension ReservationResult: AttemptResult {
    func record(in stats: EngineStats) { stats.settlements[Int(status.rawValue)].increment() }

    /// A late SETTLE or RELEASE simply took effect; its idempotent retry learns so.
    func arrivedLate(engine: DecisionEngine) {}
}

/// An entry of a `DeadlineQueue`. Confined to the queue's loop.
class Deadlined: @unchecked Sendable {
    /// When the entry must be answered by.
    let deadline: NIODeadline
    /// Set once answered; the queue then drops the entry.
    final var done = false

    init(deadline: NIODeadline) { self.deadline = deadline }

    /// Answers the entry with its fallback; called on the loop once the deadline has passed
    /// with the entry not yet done.
    func expire() {}
}

/// The deadlines of everything one engine has in flight on one event loop: a FIFO and at most
/// one scheduled task, instead of a scheduled task per request (an allocation, a heap insert
/// and a linear-time cancel each). Confined to `loop`.
///
/// Every entry gets the engine's one deadline allowance from the time it was made, so on one
/// loop the deadlines come in the order the entries are added and the FIFO is sorted: the timer
/// only ever needs to wait for its head. Answered entries leave from the front as soon as they
/// reach it; the timer, when it fires, expires every entry past its deadline and re-arms for the
/// next unanswered one. Under steady load it fires about once per deadline allowance. (An entry
/// made off the loop is added after a hop, so it may sit behind a later deadline and expire up
/// to that hop late; the data plane always makes its entries on the loop.)
final class DeadlineQueue: @unchecked Sendable {
    let loop: any EventLoop
    private var entries = CircularBuffer<Deadlined>(initialCapacity: 64)
    private var timerArmed = false

    init(loop: any EventLoop) { self.loop = loop }

    /// Watches `entry` (on `loop`) until it is done or expired.
    func add(_ entry: Deadlined) {
        loop.assertInEventLoop()
        guard !entry.done else { return }
        entries.append(entry)
        if !timerArmed { arm(entry.deadline) }
    }

    /// Drops the answered entries at the front (on `loop`, after an entry is marked done).
    func dropAnswered() {
        while let head = entries.first, head.done { entries.removeFirst() }
    }

    private func arm(_ deadline: NIODeadline) {
        timerArmed = true
        loop.scheduleTask(deadline: deadline) { self.fire() }
    }

    private func fire() {
        let now = NIODeadline.now()
        // `timerArmed` stays set while expiring, so nothing added meanwhile arms a second timer.
        while let head = entries.first, head.done || head.deadline <= now {
            entries.removeFirst()
            if !head.done { head.expire() }
        }
        timerArmed = false
        if let head = entries.first { arm(head.deadline) }
    }
}

/// One decision racing its deadline. Confined to `loop`: every mutation happens there.
final class Attempt<Result: AttemptResult>: Deadlined, @unchecked Sendable {
    let engine: DecisionEngine
    let loop: any EventLoop
    private let fallback: Result
    private let completion: (Result) -> Void
    private let queue: DeadlineQueue

    init(engine: DecisionEngine, loop: any EventLoop, deadline: NIODeadline, fallback: Result, completion: @escaping (Result) -> Void) {
        self.engine = engine
        self.loop = loop
        self.fallback = fallback
        self.completion = completion
        self.queue = engine.deadlines(on: loop)
        super.init(deadline: deadline)
        if loop.inEventLoop {
            queue.add(self)
        } else {
            loop.execute { self.queue.add(self) }
        }
    }

    /// Computes the answer when Redis failed or the deadline passed (else `fallback`); set right
    /// after init, on the loop or before the attempt is shared.
    var onStoreFailure: (() -> Result)?

    /// The attempt holds a slot of the engine's admission limit until its Redis step ends.
    var holdsSlot = false
    /// Its Redis step is under way (set on the loop when submitted, cleared when it ends).
    var awaitingStore = false
    /// It was answered while its Redis step was under way: counted in `awaitingLateOutcome`.
    private var countedLate = false

    /// The deadline passed unanswered: the same answer as a store failure.
    override func expire() {
        if awaitingStore && !countedLate {
            countedLate = true
            engine.stats.awaitingLateOutcome.add(1, ordering: .relaxed)
        }
        storeFailed(.deadline)
    }

    /// Its Redis step came back (on the loop).
    func storeStepEnded() {
        loop.assertInEventLoop()
        awaitingStore = false
        if countedLate {
            countedLate = false
            engine.stats.awaitingLateOutcome.subtract(1, ordering: .relaxed)
        }
    }

    /// Gives the admission slot back (once), with the Redis step's latency as a sample unless
    /// it `missed` its deadline or never ran.
    ///
    /// A miss while Redis answers nothing at all is Redis being away, not overload: it is not
    /// held against the limit, so the limit is where it was when Redis comes back.
    func releaseSlot(latency: TimeAmount = .zero, missed: Bool) {
        guard holdsSlot else { return }
        holdsSlot = false
        if missed && !engine.storeRecentlyAnswered {
            engine.admission.release(now: .now())
        } else {
            engine.admission.release(latency: latency, missed: missed, now: .now())
        }
    }


    /// Completes with the store-failure answer unless already completed.
    func storeFailedFromAnyThread(_ cause: StoreFailureCause) {
        if loop.inEventLoop {
            storeFailed(cause)
        } else {
            loop.execute { self.storeFailed(cause) }
        }
    }

    private func storeFailed(_ cause: StoreFailureCause) {
        guard !done else { return }
        engine.noteStore(answered: false)
        engine.stats.storeFailures[cause.rawValue].increment()
        finish(onStoreFailure?() ?? fallback)
    }

    /// Completes with `result`, the answer to a Redis step that failed for `cause` (counted),
    /// unless already completed.
    func failFromAnyThread(_ cause: StoreFailureCause, _ result: Result) {
        guard loop.inEventLoop else { return loop.execute { self.failFromAnyThread(cause, result) } }
        if !done { engine.stats.storeFailures[cause.rawValue].increment() }
        finish(result)
    }

    /// Completes with `result` unless already completed (must run on `loop`).
    func finish(_ result: Result) {
        loop.assertInEventLoop()
        if done {
            result.arrivedLate(engine: engine)
            return
        }
        done = true
        queue.dropAnswered()
        result.record(in: engine.stats)
        completion(result)
    }

    func finishFromAnyThread(_ result: Result) {
        if loop.inEventLoop { finish(result) } else { loop.execute { self.finish(result) } }
    }
}

extension Attempt where Result == CheckResult {
    /// Its Redis step failed: the slot goes back, and the CHECK is answered `overloaded` if the
    /// client shed it unsent, else as a store failure.
    func storeStepFailed(_ error: RedisError) {
        releaseSlot(missed: true)
        if error.code == .shed { shed(error) } else { storeFailedFromAnyThread(StoreFailureCause(error)) }
    }

    /// The Redis client shed it unsent (queue delay, or a deadline too short for a round trip):
    /// answered `overloaded` at once.
    ///
    /// Unless Redis has not answered anything for a deadline: then the queue is Redis being
    /// away, not overload, and the CHECK gets the store failure policy's answer.
    func shed(_ error: RedisError) {
        guard engine.storeRecentlyAnswered else { return storeFailedFromAnyThread(.connection) }
        let reason: ShedReason = error.message.contains("queue-delay") ? .queueDelay : .deadline
        finishFromAnyThread(engine.overloaded(reason))
    }
}
