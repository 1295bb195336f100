public import BursarRedis
import BursarStore
public import Logging
public import ServiceLifecycle
public import Synchronization

/// Invalidation counters.
public final class InvalidationStats: Sendable {
    /// Messages received on the invalidation channel (counted once applied).
    public let received = Atomic<Int>(0)
    /// Messages that were not a valid invalidation (ignored).
    public let malformed = Atomic<Int>(0)
    /// Whole-cache drops after a (re)subscription, when messages may have been missed (counted once done).
    public let flushes = Atomic<Int>(0)
    init() {}
}

/// Keeps one engine's digest cache in step with changes made through any bursard: subscribes to
/// `Invalidation.channel` on its own connection and thread, applies each message to the cache,
/// and drops the whole cache whenever it (re)subscribes. Run it as a `Service`, or call
/// `start()` and `stop()`.
public final class InvalidationListener: Service, Sendable {
    /// The engine whose cache is kept.
    public let engine: DecisionEngine
    /// The subscription (its configuration and connection counters).
    public let subscriber: RedisSubscriber
    /// Counters.
    public let stats: InvalidationStats
    private let logger: Logger

    /// A listener for `engine`. Without a configuration it subscribes on the engine's Redis
    /// endpoint with the engine client's connect and I/O timeouts.
    public init(engine: DecisionEngine, configuration: RedisSubscriberConfiguration? = nil, logger: Logger) {
        let client = engine.redis.configuration
        let configuration = configuration ?? RedisSubscriberConfiguration(
            target: client.target, connectTimeoutMs: client.connectTimeoutMs, ioTimeoutMs: client.ioTimeoutMs,
            minBackoffMs: client.minBackoffMs, maxBackoffMs: client.maxBackoffMs)
        let stats = InvalidationStats()
        self.engine = engine
        self.stats = stats
        self.logger = logger
        self.subscriber = RedisSubscriber(
            configuration: configuration, channels: [Invalidation.channel], logger: logger,
            // Counted after the cache is changed (releasing), so whoever sees a count sees its effect.
            onReconnect: { [engine, stats] in
                engine.applyInvalidation(.all)
                stats.flushes.add(1, ordering: .releasing)
            },
            onMessage: { [engine, stats, logger] message in
                if let invalidation = Invalidation(payload: message.payload) {
                    engine.applyInvalidation(invalidation)
                } else {
                    stats.malformed.add(1, ordering: .relaxed)
                    logger.warning("ignoring a malformed invalidation", metadata: ["bytes": "\(message.payload.count)"])
                }
                stats.received.add(1, ordering: .releasing)
            })
    }

    /// Subscribes in the background; returns at once.
    public func start() {
        subscriber.start()
    }

    /// Unsubscribes and waits for the subscriber's thread to exit.
    public func stop() {
        subscriber.stop()
    }

    /// Subscribes, listens until graceful shutdown is requested (or the task is cancelled), then stops.
    public func run() async throws {
        start()
        try? await gracefulShutdown()
        logger.info("invalidation listener stopping")
        stop()
    }
}
