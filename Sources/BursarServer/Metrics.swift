import BursarRedis
import BursarWire
import Foundation
public import Prometheus
import Synchronization

/// bursard's Prometheus metrics (swift-prometheus).
///
/// Two kinds of source feed it. Histograms (frame latency, Redis batch size and round-trip time)
/// are recorded where the event happens. Counts that the hot path already keeps as relaxed atomics
/// (decisions by reason, cache lookups, Redis round trips, protocol errors…) are not counted twice:
/// at each scrape the difference since the last scrape is added to the Prometheus counter, so the
/// exported counters are monotonic and exact, and the hot path pays nothing extra.
public final class ServerMetrics: Sendable {
    /// The registry `/metrics` renders.
    public let registry = PrometheusCollectorRegistry()

    /// CHECK latency as seen by bursard: frame decoded → answer written.
    public let checkDuration: DurationHistogram
    /// SETTLE latency, frame in → frame out.
    public let settleDuration: DurationHistogram
    /// RELEASE latency, frame in → frame out.
    public let releaseDuration: DurationHistogram
    /// Requests carried by one pipelined Redis round trip.
    public let redisBatchSize: ValueHistogram
    /// Time of one pipelined Redis round trip (write all, read all).
    public let redisRoundTrip: DurationHistogram

    private let started = ContinuousClock.now
    private let uptime: Gauge
    private let exports = Mutex<[Export]>([])

    /// Frame latency buckets: 25 µs … 1 s.
    static let latencyBuckets: [Duration] = [
        .microseconds(25), .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1),
    ]

    /// Metrics with the build's identity in `bursar_build_info`.
    public init(version: String) {
        let frame = Self.name("frame_duration", "seconds", "Time from a request frame decoded to its answer written, by operation.")
        checkDuration = registry.makeDurationHistogram(descriptor: frame, labels: [("op", "check")], buckets: Self.latencyBuckets)
        settleDuration = registry.makeDurationHistogram(descriptor: frame, labels: [("op", "settle")], buckets: Self.latencyBuckets)
        releaseDuration = registry.makeDurationHistogram(descriptor: frame, labels: [("op", "release")], buckets: Self.latencyBuckets)
        redisBatchSize = registry.makeValueHistogram(
            descriptor: Self.name("redis_batch", "requests", "Requests carried by one pipelined Redis round trip."),
            buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512])
        redisRoundTrip = registry.makeDurationHistogram(
            descriptor: Self.name("redis_round_trip", "seconds", "Duration of one pipelined Redis round trip."), buckets: Self.latencyBuckets)
        uptime = registry.makeGauge(descriptor: Self.name("uptime", "seconds", "Seconds since bursard started."))
        registry.makeGauge(descriptor: Self.name("build", "info", "Always 1; the labels name the build."), labels: [("version", version)])
            .set(Int64(1))
    }

    /// A `RedisClientConfiguration.onRoundTrip` that records into the Redis histograms.
    public var roundTripObserver: @Sendable (Int, Duration) -> Void {
        { [redisBatchSize, redisRoundTrip] requests, elapsed in
            redisBatchSize.record(Double(requests))
            redisRoundTrip.record(elapsed)
        }
    }

    // MARK: Counts kept elsewhere

    private struct Export: @unchecked Sendable {
        let read: @Sendable () -> Int
        let apply: (Int) -> Void
        var last = 0
    }

    /// `bursar_<base>_<unit>` with its help text.
    static func name(_ base: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "bursar", metricName: base, unitName: unit, helpText: help)
    }

    /// Exports a monotonic atomic count as the Prometheus counter `bursar_<name>_total`.
    public func counter(_ name: String, labels: [(String, String)] = [], help: String, _ read: @escaping @Sendable () -> Int) {
        let c = registry.makeCounter(descriptor: Self.name(name, "total", help), labels: labels)
        exports.withLock { $0.append(Export(read: read, apply: { c.increment(by: Int64($0)) })) }
    }

    /// Exports a current value as the Prometheus gauge `bursar_<name>`.
    public func gauge(_ name: String, labels: [(String, String)] = [], help: String, _ read: @escaping @Sendable () -> Int) {
        let g = registry.makeGauge(descriptor: Self.name(name, "", help), labels: labels)
        exports.withLock { $0.append(Export(read: read, apply: { g.set(Int64($0)) }, last: Int.min)) }
    }

    /// Registers what a data-plane server, its engine and its Redis client count.
    public func observe(engine: DecisionEngine, server: DataPlaneServer?, invalidation: InvalidationListener?) {
        let decisions = engine.stats.decisions
        counter("decisions", labels: [("outcome", "allowed")], help: "CHECKs answered, by outcome.") { decisions[0].count }
        counter("decisions", labels: [("outcome", "denied")], help: "CHECKs answered, by outcome.") {
            decisions.dropFirst().reduce(0) { $0 + $1.count }
        }
        for reason in DenyReason.allCases where reason != .none {
            let c = decisions[Int(reason.rawValue)]
            counter("denials", labels: [("reason", reason.description)], help: "CHECKs denied, by deny reason.") { c.count }
        }
        let settlements = engine.stats.settlements
        for status in ReservationStatus.allCases {
            let c = settlements[Int(status.rawValue)]
            counter("settlements", labels: [("status", status.description)], help: "SETTLEs and RELEASEs answered, by reservation status.") { c.count }
        }
        counter("reservations_expired_unsettled", help: "SETTLEs and RELEASEs that found their reservation past its TTL, unsettled (its estimate stood).") {
            settlements[Int(ReservationStatus.expired.rawValue)].count
        }
        let stats = engine.stats
        for (bit, (scope, percent)) in [("key", 50), ("key", 80), ("key", 100), ("project", 50), ("project", 80), ("project", 100)].enumerated() {
            let c = stats.budgetAlerts[bit]
            counter("budget_alerts", labels: [("scope", scope), ("threshold", String(percent))], help: "Budget alerts recorded by this instance's steps: a key's or project's window spend reaching 50, 80 or 100 % of its budget, once per window.") { c.count }
        }
        counter("late_admissions_released", help: "Admissions Redis made after the deadline, voided again.") { stats.lateAdmissionsReleased.load(ordering: .relaxed) }
        counter("orphaned_admissions_released", help: "Admissions whose client was gone, voided again.") { stats.orphanedAdmissionsReleased.load(ordering: .relaxed) }
        counter("unknown_outcomes_voided", help: "CHECKs whose Redis step failed after it may have run (connection lost or timed out), voided.") {
            stats.unknownOutcomesVoided.load(ordering: .relaxed)
        }
        for cause in StoreFailureCause.allCases {
            let c = stats.storeFailures[cause.rawValue]
            counter("store_failures", labels: [("cause", cause.label)], help: "CHECKs, SETTLEs and RELEASEs Redis did not decide for their answer (store_unavailable, or the store failure policy's), by why: the deadline passed first, the connection failed or broke, Redis answered an error or an unreadable reply.") { c.count }
        }
        gauge("unresolved_attempts", help: "Outcomes this bursard still has to resolve: attempts answered before Redis came back about them, and voids Redis has not taken yet.") {
            engine.unresolvedAttempts
        }
        gauge("undelivered_confirmations_pending", help: "Admissions handed to clients whose delivery Redis has not been told of yet.") {
            engine.pendingDeliveryConfirmations
        }
        let reconcile = engine.reconcileStats
        counter("voids", labels: [("result", "admission")], help: "Voided attempts, by what Redis held: an admission given back, or nothing (a fence left).") {
            reconcile.voidedAdmissions.load(ordering: .relaxed)
        }
        counter("voids", labels: [("result", "fence")], help: "Voided attempts, by what Redis held: an admission given back, or nothing (a fence left).") {
            reconcile.voidedFences.load(ordering: .relaxed)
        }
        counter("deliveries_confirmed", help: "Admissions confirmed delivered to their clients (removed from the undelivered set).") {
            reconcile.confirmedDeliveries.load(ordering: .relaxed)
        }
        counter("swept_epochs", help: "Dead bursard instances whose undelivered admissions this bursard swept.") { reconcile.sweptEpochs.load(ordering: .relaxed) }
        counter("swept_admissions", help: "Undelivered admissions of dead instances this bursard's sweeps looked at and voided.") {
            reconcile.sweptAdmissions.load(ordering: .relaxed)
        }
        gauge("instance_epoch", help: "The epoch this bursard's reservation ids carry (0 until Redis gave one).") { Int(engine.epoch) }

        let admission = engine.admission
        gauge("admission_limit", help: "The adaptive limit on CHECKs waiting on Redis at once.") { admission.limit }
        gauge("admission_in_flight", help: "CHECKs waiting on Redis now (what the adaptive limit bounds).") { admission.inFlight }
        gauge("admission_latency_target_microseconds", help: "The latency a CHECK's Redis step should stay under (the adaptive limit's target), µs.") {
            Int(admission.configuration.latencyTarget.nanoseconds / 1000)
        }
        gauge("overloaded_retry_after_milliseconds", help: "What an overloaded answer tells its client to wait at least (retry_after_ms: the retry hint), ms.") {
            Int(admission.retryHint.nanoseconds / 1_000_000)
        }
        for reason in ShedReason.allCases {
            let c = admission.shed[reason.rawValue]
            counter("shed", labels: [("reason", reason.label)], help: "CHECKs answered overloaded without Redis, by why: the fixed in-flight bound, the adaptive limit, the queue-delay target (CoDel), a deadline too short for a round trip.") { c.count }
        }

        gauge("store_available", help: "1 while Redis decides in time; 0 from a decision it failed to make until the next it makes.") {
            engine.storeMode == .available ? 1 : 0
        }
        let policy = engine.configuration.storeFailure
        for (limitClass, mode) in [("rate", policy.rateLimits), ("spend", policy.spendLimits)] {
            gauge("store_failure_policy", labels: [("limits", limitClass), ("mode", mode.rawValue)], help: "Always 1; the labels name what a CHECK gets, per limit class, when Redis cannot decide it.") { 1 }
        }
        gauge("local_admissions_pending", help: "Local admissions (store failure policy allow) awaiting replay into Redis.") { engine.pendingReplay }
        if let fallback = engine.fallbackStats {
            counter("local_admissions", help: "CHECKs admitted locally while Redis could not decide (store failure policy allow).") { fallback.admitted.load(ordering: .relaxed) }
            counter("local_settlements", help: "SETTLEs and RELEASEs of local admissions answered before their replay.") { fallback.settledLocally.load(ordering: .relaxed) }
            counter("local_admissions_replayed", help: "Local admissions recorded in Redis by a replay.") { fallback.replayed.load(ordering: .relaxed) }
            counter("local_admissions_dropped", help: "Local admissions whose key was gone when replayed (their debit could not be placed).") { fallback.dropped.load(ordering: .relaxed) }
        }

        let cache = engine.cacheStats
        counter("cache_lookups", labels: [("result", "hit")], help: "Key digest cache lookups, by result.") { cache.hits.load(ordering: .relaxed) }
        counter("cache_lookups", labels: [("result", "miss")], help: "Key digest cache lookups, by result.") { cache.misses.load(ordering: .relaxed) }
        counter("cache_lookups", labels: [("result", "negative_hit")], help: "Key digest cache lookups, by result.") { cache.negativeHits.load(ordering: .relaxed) }
        gauge("cache_entries", help: "Digests in the cache, known and unknown.") { engine.cachedDigestCount }

        let redis = engine.redis.stats
        counter("redis_round_trips", help: "Pipelined Redis round trips.") { redis.roundTrips.load(ordering: .relaxed) }
        counter("redis_commands", help: "Redis commands sent.") { redis.commands.load(ordering: .relaxed) }
        counter("redis_expired_before_send", help: "Requests failed because their deadline passed before they reached Redis.") { redis.expiredBeforeSend.load(ordering: .relaxed) }
        counter("redis_connects", help: "Successful Redis (re)connections.") { redis.connects.load(ordering: .relaxed) }
        counter("redis_connection_errors", help: "Redis connection failures and losses.") { redis.connectionErrors.load(ordering: .relaxed) }
        counter("redis_script_reloads", help: "Replies saying Redis lacked a script or library function (NOSCRIPT, Function not found) healed by loading them.") { redis.scriptReloads.load(ordering: .relaxed) }
        gauge("redis_connected", help: "1 while a Redis connection is up.") { redis.connected.load(ordering: .relaxed) }
        let redirectHelp = "Redis Cluster redirections and retries followed, by kind."
        counter("redis_cluster_redirections", labels: [("kind", "moved")], help: redirectHelp) { redis.clusterMoved.load(ordering: .relaxed) }
        counter("redis_cluster_redirections", labels: [("kind", "ask")], help: redirectHelp) { redis.clusterAsk.load(ordering: .relaxed) }
        counter("redis_cluster_redirections", labels: [("kind", "retry")], help: redirectHelp) { redis.clusterRetries.load(ordering: .relaxed) }
        counter("redis_cluster_slot_map_reads", help: "Redis Cluster slot maps read (CLUSTER SLOTS).") { redis.topologyRefreshes.load(ordering: .relaxed) }
        counter("redis_sentinel_master_resolutions", help: "Masters found through Sentinel.") { redis.masterResolutions.load(ordering: .relaxed) }
        counter("redis_sentinel_master_switches", help: "Master switches the sentinels announced (+switch-master); each moves every connection.") {
            redis.masterSwitches.load(ordering: .relaxed)
        }
        gauge("redis_queue_delay_microseconds", help: "How long the last request taken from the Redis queue had waited, µs.") {
            redis.lastQueueDelayNs.load(ordering: .relaxed) / 1000
        }
        gauge("redis_expected_round_trip_microseconds", help: "The expected pipelined Redis round trip (a moving average), µs.") {
            redis.expectedRoundTripNs.load(ordering: .relaxed) / 1000
        }

        if let server {
            let connections = server.connectionStats
            gauge("connections_open", help: "Open data-plane connections.") { connections.open.load(ordering: .relaxed) }
            for code in ProtocolErrorCode.allCases {
                let c = connections.protocolErrors[code]
                counter("protocol_errors", labels: [("code", code.description)], help: "Connections closed for a protocol error, by code.") { c.count }
            }
            gauge("in_flight", help: "CHECKs, SETTLEs and RELEASEs in flight across all data-plane connections.") {
                connections.inFlight.load(ordering: .relaxed)
            }
            for (kind, name) in ["check", "settle", "release"].enumerated() {
                let c = connections.overloaded[kind]
                counter("overloaded", labels: [("frame", name)], help: "Requests answered overloaded at the in-flight bound, by frame type.") { c.count }
            }
            let refused = connections.refused
            counter("connections_refused", help: "Connections refused at the connection limit (ERROR too_many_connections).") { refused.count }
            let idle = connections.protocolErrors[.idleTimeout]
            let frame = connections.protocolErrors[.frameTimeout]
            let write = connections.writeTimeouts
            let closedHelp = "Data-plane connections closed by a timeout, by reason."
            counter("connections_timed_out", labels: [("reason", "idle_timeout")], help: closedHelp) { idle.count }
            counter("connections_timed_out", labels: [("reason", "frame_timeout")], help: closedHelp) { frame.count }
            counter("connections_timed_out", labels: [("reason", "write_timeout")], help: closedHelp) { write.count }
            let throttled = connections.throttledLookups
            counter("key_lookups_throttled", help: "CHECKs answered key_lookups_throttled by the per-connection unknown-digest throttle.") { throttled.count }
        }
        if let invalidation {
            let s = invalidation.stats
            counter("invalidations_received", help: "Cache invalidations received over Redis pub/sub.") { s.received.load(ordering: .relaxed) }
            counter("invalidation_flushes", help: "Whole-cache flushes on (re)subscribing.") { s.flushes.load(ordering: .relaxed) }
        }
    }

    /// The Prometheus text exposition, with every exported count brought up to date.
    public func render() -> String {
        uptime.set(Double((ContinuousClock.now - started).components.seconds))
        exports.withLock { exports in
            for i in exports.indices {
                let value = exports[i].read()
                if exports[i].last == Int.min {
                    exports[i].apply(value)  // a gauge: the value as it is
                } else if value > exports[i].last {
                    exports[i].apply(value - exports[i].last)
                    exports[i].last = value
                }
            }
        }
        return registry.emitToString()
    }
}
