import ArgumentParser
import BursarAdmin
import BursarConsole
import BursarEnvoy
import BursarRedis
import BursarServer
import BursarWire
@_spi(Testing) import BursarStore
import Dispatch
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Starts bursard's services from a resolved configuration and runs them until SIGTERM/SIGINT.
///
/// The service group stops services in the reverse of their order here, each after the one
/// before has finished: the data plane first (stop accepting, answer what was received, close),
/// then the ops port, the invalidation listener, and last the embedded redis-server, which the
/// data plane needed until its last answer.
struct BursardMain {
    let settings: BursardConfiguration
    let logger = Logger(label: "bursard")

    /// The stored provider secrets against the keyring, before anything is served: sealed
    /// secrets without the keys that sealed them stop start-up, naming the key ids; with keys,
    /// what is plaintext (from before secrets were sealed) or under an older key is sealed again
    /// under the current one. If Redis cannot be read yet, the check is skipped with a warning.
    func reviewSecrets(_ store: MetadataStore, _ keyring: SecretKeyring?) async throws {
        let review: SecretsReview
        do {
            review = try await store.reviewSecrets(rewrap: keyring != nil)
        } catch {
            logger.warning("could not check the stored provider secrets against the key-encryption keys (Redis not readable yet)", metadata: ["error": "\(error)"])
            return
        }
        let missing = review.sealed.keys.filter { !(keyring?.holds($0) ?? false) }.sorted()
        if !missing.isEmpty {
            let count = missing.reduce(0) { $0 + review.sealed[$1]! }
            logger.critical(
                "\(count) provider secrets in Redis are sealed under key ids \(missing.joined(separator: ", ")), which bursard was not given: start it with the key-encryption keys that sealed them (--secrets-key-file, or BURSARD_SECRETS_KEYS)")
            throw ExitCode(1)
        }
        if !review.unopenable.isEmpty {
            logger.critical("provider secrets do not open with the key-encryption keys given", metadata: ["secrets": "\(review.unopenable.joined(separator: "; "))"])
            throw ExitCode(1)
        }
        if keyring == nil, review.plaintext > 0 {
            logger.warning("\(review.plaintext) provider secrets are stored in plain text (from before secrets were sealed): give bursard key-encryption keys (--secrets-key-file) and they are sealed at its next start")
        }
        if review.rewrapped > 0 {
            logger.info("provider secrets sealed again under the current key", metadata: ["count": "\(review.rewrapped)", "key_id": "\(keyring!.currentID)"])
        }
    }

    func run() async throws {
        logger.info("bursard starting", metadata: [
            "pid": "\(getpid())", "config_file": "\(settings.configFile ?? "none")",
            "redis": "\(settings.redis.map { "\($0)" } ?? "embedded")",
            "on_store_failure": "rate=\(settings.storeFailure.rateLimits.rawValue) spend=\(settings.storeFailure.spendLimits.rawValue) local_allowance=\(settings.storeFailure.localAllowancePerKeyPerMinute)",
            "shutdown_timeout_ms": "\(TimeAmount(settings.shutdownTimeout).nanoseconds / 1_000_000)",
        ])
        logger.debug("configuration", metadata: .init(uniqueKeysWithValues: settings.sources.map { ($0.key, .string("\($0.value)")) }))
        if let tls = settings.opsTLS {
            do {
                try OpsServer.checkTLS(OpsTLS(certificatePath: tls.certificate, keyPath: tls.key))
            } catch {
                logger.critical("cannot serve the ops port over TLS", metadata: ["error": "\(error)"])
                throw ExitCode(1)
            }
        }

        let listenTLS = settings.listenTLS.map { DataPlaneTLS(certificatePath: $0.certificate, keyPath: $0.key, clientCAPath: $0.clientCA) }
        if let listenTLS {
            do {
                try listenTLS.check()
            } catch {
                logger.critical("cannot serve the data plane over mutual TLS", metadata: ["error": "\(error)"])
                throw ExitCode(1)
            }
        }

        let keyring: SecretKeyring?
        do {
            keyring = try settings.secretKeyring()
        } catch {
            logger.critical("cannot read the key-encryption keys", metadata: ["error": "\(error.message)"])
            throw ExitCode(1)
        }

        var services: [any Service] = []
        let target: RedisTarget
        var embedded: EmbeddedRedisService?
        if let redis = settings.redis {
            target = redis
        } else {
            let child = try startEmbeddedRedis()
            embedded = EmbeddedRedisService(server: child, logger: logger)
            services.append(embedded!)
            target = .server(child.endpoint)
        }

        let metrics = ServerMetrics(version: bursarVersion)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: settings.threads)
        // The data plane's requests go to Redis from the loop that read their frame, each loop
        // through a connection of its own; the rest (admin, reconciler) through the threads.
        let redisClient = RedisClient(
            configuration: RedisClientConfiguration(
                target: target, connections: settings.redisConnections, onRoundTrip: metrics.roundTripObserver, eventLoops: group),
            logger: Logger(label: "bursard.redis"))
        let engine = DecisionEngine(
            redis: redisClient,
            limiter: Self.limiter(reservationTTLMs: TimeAmount(settings.reservationTTL).nanoseconds / 1_000_000, history: settings.historyRetention),
            configuration: EngineConfiguration(
                deadline: TimeAmount(settings.deadline), cacheTTL: TimeAmount(settings.cacheTTL),
                negativeCacheTTL: TimeAmount(settings.negativeCacheTTL), storeFailure: settings.storeFailure,
                admission: settings.latencyTarget.map { AdmissionConfiguration(latencyTarget: TimeAmount($0)) },
                instanceLease: TimeAmount(settings.instanceLease)),
            logger: logger, metrics: metrics)
        // The scripts and this instance's epoch, ahead of the first CHECK (which would otherwise
        // wait for them); if Redis is not there yet, they come on first use.
        await engine.prepare()
        if engine.epoch == 0 {
            logger.warning("Redis did not give this bursard its instance epoch yet; CHECKs wait for it")
        }
        let server = DataPlaneServer(
            configuration: ListenerConfiguration(
                host: settings.listen.host, port: settings.listen.port, unixSocketPath: settings.unixSocketPath,
                shutdownTimeout: settings.shutdownTimeout,
                limits: ConnectionLimits(
                    maxConnections: settings.maxConnections, maxInFlight: settings.maxInFlight,
                    maxInFlightPerConnection: settings.maxInFlightPerConnection, idleTimeout: settings.idleTimeout,
                    frameTimeout: settings.frameTimeout, writeTimeout: settings.writeTimeout,
                    maxUnknownKeysPerMinute: settings.maxUnknownKeysPerMinute, requireAuthentication: settings.dataPlaneAuthRequired),
                tls: listenTLS),
            engine: engine, group: group, logger: logger)

        let store = MetadataStore(redis: redisClient, secrets: keyring)
        try await reviewSecrets(store, keyring)
        let admin = AdminService(store: store, audit: AuditLog(redis: redisClient), logger: Logger(label: "bursard.admin"))
        metrics.counter(
            "admin_outsider_refusals",
            help: "Admin API requests refused for someone with no standing in the organization they named: counted here, never written into that organization's audit log."
        ) { [counters = admin.counters] in counters.outsiderRefusals.load(ordering: .relaxed) }
        let ops = settings.ops
        let invalidation = InvalidationListener(engine: engine, logger: Logger(label: "bursard.invalidation"))
        metrics.observe(engine: engine, server: server, invalidation: invalidation)
        let probes = OpsProbes(
            metrics: { metrics.render() }, readiness: { await engine.readiness() },
            store: {
                let mode = engine.storeMode
                return StoreStatus(mode: mode.rawValue, admitsLocally: mode == .unavailableAdmittingLocally, pendingReplay: engine.pendingReplay)
            })
        let opsTLS = settings.opsTLS.map { OpsTLS(certificatePath: $0.certificate, keyPath: $0.key) }
        // Cookies are Secure when the browser reaches the ops port over TLS: bursard's own, or a
        // TLS-terminating proxy's (the reason --ops-allow-insecure-remote exists).
        let console = Console(
            service: admin,
            configuration: ConsoleConfiguration(
                sessionTTLSeconds: Int(TimeAmount(settings.consoleSessionTTL).nanoseconds / 1_000_000_000), secureCookies: opsTLS != nil || settings.opsAllowInsecureRemote),
            logger: Logger(label: "bursard.console"))
        let opsApp = try OpsServer.application(
            configuration: OpsConfiguration(host: ops.host, port: ops.port, tls: opsTLS), service: admin, probes: probes,
            pages: { console.add(to: $0) }, group: group,
            logger: Logger(label: "bursard.ops"),
            onRunning: { [logger] port in
                logger.info("ops port listening", metadata: ["address": "\(ops.host):\(port)", "tls": "\(opsTLS != nil)"])
            })
        // The engine's maintenance before the data plane: the group asks services to stop in
        // reverse order, so it stops after the data plane has drained and resolved what it owed.
        services.append(engine)
        services.append(invalidation)
        services.append(StoppedLogging(opsApp, name: "ops port", logger: logger))
        services.append(server)
        // The gRPC front door for Envoy's ext_authz filter: the same engine, deadline and store
        // failure policy as a CHECK frame.
        let envoyAddresses = [settings.grpc.map { EnvoyListenAddress.tcp(host: $0.host, port: $0.port) },
                              settings.grpcUnixSocketPath.map { EnvoyListenAddress.unix(path: $0) }].compactMap { $0 }
        if !envoyAddresses.isEmpty {
            let mapping = EnvoyAuthorization(
                keyHeader: settings.envoyKeyHeader, modelHeader: settings.envoyModelHeader,
                defaultMaxOutputTokens: UInt32(settings.envoyMaxOutputTokens))
            // Envoy carries the client's sealed reservation id (SPEC §5); the engine works on the
            // reservation's name inside the installation.
            let decider = EnvoyDecider(
                check: { request in
                    var result = (try? await engine.check(request, on: group.next()).get()) ?? .deny(.storeUnavailable)
                    if result.allowed { result.reservation = engine.clientID(for: result.reservation) }
                    return result
                },
                settle: { request in
                    guard let reservation = engine.reservation(fromClient: request.reservation) else { return ReservationResult(status: .unknown) }
                    var request = request
                    request.reservation = reservation
                    return (try? await engine.settle(request, on: group.next()).get()) ?? ReservationResult(status: .storeUnavailable)
                },
                refuse: { id in engine.reservation(fromClient: id).map { engine.releaseOrphan($0) } })
            let rateLimit = EnvoyRateLimit(domain: settings.envoyRateLimitDomain, defaultMaxOutputTokens: UInt32(settings.envoyMaxOutputTokens))
            for address in envoyAddresses {
                services.append(EnvoyServer(
                    address: address, mapping: mapping, rateLimit: rateLimit, decider: decider, group: group, logger: Logger(label: "bursard.grpc")))
            }
        }

        var configuration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        // A backstop: the data plane bounds its own drain by --shutdown-timeout; this cancels
        // whatever else still hangs a little later, so the process always exits.
        configuration.maximumGracefulShutdownDuration = settings.shutdownTimeout + .seconds(5)
        let serviceGroup = ServiceGroup(configuration: configuration)
        // Listen for SIGTERM/SIGINT before the data plane accepts anything: a signal that lands
        // while start-up finishes is not the default action (the process killed, exit by signal)
        // but a graceful shutdown, which the group remembers until it runs.
        let signals = ShutdownSignals(logger: logger, timeout: settings.shutdownTimeout) {
            Task { await serviceGroup.triggerGracefulShutdown() }
        }
        do {
            try await server.start()
        } catch {
            logger.critical("cannot listen", metadata: ["address": "\(settings.listen)", "error": "\(error)"])
            signals.cancel()
            embedded?.server.stop()
            redisClient.shutdown()
            try? await group.shutdownGracefully()
            throw ExitCode(1)
        }
        var failure: (any Error)?
        do {
            try await serviceGroup.run()
        } catch {
            failure = error
            logger.error("a service failed; bursard is stopping", metadata: ["error": "\(error)"])
        }
        signals.cancel()
        redisClient.shutdown()
        try? await group.shutdownGracefully()
        if failure != nil && !signals.received {
            logger.critical("bursard stopped after a failure")
            throw ExitCode(1)
        }
        logger.info("bursard stopped")
    }

    /// The limiter on Redis's clock. A debug build (the test suite's) also honours
    /// `BURSAR_TEST_FROZEN_CLOCK=1`: its scripts then read each organization's frozen test clock
    /// when set, so tests of real processes can compare rate buckets exactly (nothing drains). A
    /// release build has no way to trust a writable clock.
    static func limiter(reservationTTLMs: Int64, history: HistoryRetention) -> Limiter {
        #if DEBUG
        if ProcessInfo.processInfo.environment["BURSAR_TEST_FROZEN_CLOCK"] == "1" {
            return Limiter(clock: .testFrozen, reservationTTLMs: reservationTTLMs, history: history)
        }
        #endif
        return Limiter(reservationTTLMs: reservationTTLMs, history: history)
    }

    /// Starts the embedded redis-server in --data-dir, or exits 1 with a message naming the fix.
    private func startEmbeddedRedis() throws -> RedisServerProcess {
        let binary: String
        do {
            binary = try RedisServerProcess.locate(explicit: settings.redisServer)
        } catch {
            logger.critical("\(error.message)")
            throw ExitCode(1)
        }
        let dir = URL(fileURLWithPath: settings.dataDirectory).standardizedFileURL.path
        let child = RedisServerProcess(binary: binary, directory: dir, listen: .unixSocket(path: dir + "/redis.sock"), appendFsync: settings.appendFsync)
        do {
            try child.start()
        } catch {
            logger.critical("embedded redis-server failed to start", metadata: ["error": "\(error)", "data_dir": "\(dir)"])
            throw ExitCode(1)
        }
        logger.info("embedded redis-server started", metadata: ["data_dir": "\(dir)", "aof": "on", "appendfsync": "\(settings.appendFsync.rawValue)"])
        return child
    }
}

/// Runs a service and logs one line when it has stopped.
struct StoppedLogging<Wrapped: Service>: Service, CustomStringConvertible {
    let wrapped: Wrapped
    let name: String
    let logger: Logger

    init(_ wrapped: Wrapped, name: String, logger: Logger) {
        self.wrapped = wrapped
        self.name = name
        self.logger = logger
    }

    var description: String { name }

    func run() async throws {
        do {
            try await wrapped.run()
            logger.info("\(name) stopped")
        } catch {
            logger.error("\(name) failed", metadata: ["error": "\(error)"])
            throw error
        }
    }
}

/// Logs the shutdown signal when it arrives (the service group acts on it independently), and
/// remembers that one came.
final class ShutdownSignals {
    private final class Flag: Sendable {
        let value = Atomic<Bool>(false)
    }

    private let sources: [any DispatchSourceSignal]
    private let flag = Flag()

    /// `onFirst` runs when the first of them arrives (bursard asks its service group to shut
    /// down gracefully, also when the group is not running yet).
    init(logger: Logger, timeout: Duration, onFirst: @escaping @Sendable () -> Void) {
        let queue = DispatchQueue(label: "bursard.signals")
        let seconds = Double(TimeAmount(timeout).nanoseconds) / 1e9
        var sources: [any DispatchSourceSignal] = []
        for (signal, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")] {
            let source = DispatchSource.makeSignalSource(signal: signal, queue: queue)
            sources.append(source)
            source.setEventHandler { [flag] in
                if !flag.value.exchange(true, ordering: .relaxed) {
                    logger.info("\(name) received: shutting down gracefully", metadata: ["timeout_s": "\(seconds)"])
                    onFirst()
                } else {
                    logger.info("\(name) received again: shutdown already in progress")
                }
            }
            source.resume()
        }
        self.sources = sources
    }

    /// True once SIGTERM or SIGINT arrived.
    var received: Bool { flag.value.load(ordering: .relaxed) }

    func cancel() {
        for source in sources { source.cancel() }
    }
}
