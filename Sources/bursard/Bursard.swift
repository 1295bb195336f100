import ArgumentParser
import BursarAdmin
import BursarRedis
import BursarServer
import BursarStore
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

@main
struct Bursard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bursard",
        abstract: "bursar's data plane: answers CHECK/SETTLE/RELEASE frames with exact limits kept in Redis.",
        discussion: "With no --redis, bursard starts and supervises its own redis-server on a private unix socket in --data-dir, with AOF persistence. Wire protocol: proto/SPEC.md.")

    @Option(name: .long, help: ArgumentHelp("TCP address of the data plane (port 0 picks a free port).", valueName: "host:port"))
    var listen: String = "127.0.0.1:7420"

    @Option(name: .long, help: ArgumentHelp("TCP address of the ops port: the admin API (port 0 picks a free port).", valueName: "host:port"))
    var ops: String = "127.0.0.1:7421"

    @Option(name: .long, help: ArgumentHelp("Also listen on this unix socket.", valueName: "path"))
    var unix: String?

    @Option(name: .long, help: ArgumentHelp("Use this Redis: redis://host:port[/db] or unix:///path[?db=N]. Default: an embedded redis-server.", valueName: "url"))
    var redis: String?

    @Option(name: .long, help: ArgumentHelp("Directory of the embedded redis-server (AOF, socket, config).", valueName: "dir"))
    var dataDir: String = "./bursar-data"

    @Option(name: .long, help: ArgumentHelp("The redis-server binary for the embedded store (default: found on PATH).", valueName: "path"))
    var redisServer: String?

    @Option(name: .long, help: ArgumentHelp("Longest a decision waits for Redis before answering store_unavailable.", valueName: "ms"))
    var deadlineMs: Int = 50

    @Option(name: .long, help: ArgumentHelp("How long an unsettled reservation holds its estimate.", valueName: "seconds"))
    var reservationTtl: Int = 900

    @Option(name: .long, help: ArgumentHelp("How long a resolved key digest stays cached.", valueName: "ms"))
    var cacheTtlMs: Int = 5_000

    @Option(name: .long, help: ArgumentHelp("How long an unknown key digest stays cached.", valueName: "ms"))
    var negativeCacheTtlMs: Int = 1_000

    @Option(name: .long, help: ArgumentHelp("Redis connections (each with its own thread, pipelining).", valueName: "n"))
    var redisConnections: Int = 2

    @Option(name: .long, help: ArgumentHelp("Event loop threads (the default is the number of cores).", valueName: "n"))
    var threads: Int = System.coreCount

    @Option(name: .long, help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "level"))
    var logLevel: String = "info"

    func validate() throws {
        guard parseHostPort(listen) != nil else { throw ValidationError("--listen '\(listen)' is not host:port with a port 0…65535") }
        guard parseHostPort(ops) != nil else { throw ValidationError("--ops '\(ops)' is not host:port with a port 0…65535") }
        guard (1...60_000).contains(deadlineMs) else { throw ValidationError("--deadline-ms \(deadlineMs) is outside 1…60000") }
        guard (1...7 * 86_400).contains(reservationTtl) else { throw ValidationError("--reservation-ttl \(reservationTtl) is outside 1…604800 seconds") }
        guard cacheTtlMs >= 0 else { throw ValidationError("--cache-ttl-ms must be ≥ 0") }
        guard negativeCacheTtlMs >= 0 else { throw ValidationError("--negative-cache-ttl-ms must be ≥ 0") }
        guard (1...64).contains(redisConnections) else { throw ValidationError("--redis-connections \(redisConnections) is outside 1…64") }
        guard (1...256).contains(threads) else { throw ValidationError("--threads \(threads) is outside 1…256") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level '\(logLevel)' is not one of trace, debug, info, notice, warning, error, critical") }
        if let redis { _ = try RedisEndpoint(url: redis) }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "bursard")
        let (host, port) = parseHostPort(listen)!

        var services: [any Service] = []
        let endpoint: RedisEndpoint
        if let redis {
            endpoint = try RedisEndpoint(url: redis)
        } else {
            let binary: String
            do {
                binary = try RedisServerProcess.locate(explicit: redisServer)
            } catch {
                logger.critical("\(error.message)")
                throw ExitCode(1)
            }
            let dir = URL(fileURLWithPath: dataDir).standardizedFileURL.path
            let child = RedisServerProcess(binary: binary, directory: dir, listen: .unixSocket(path: dir + "/redis.sock"))
            do {
                try child.start()
            } catch {
                logger.critical("embedded redis-server failed to start", metadata: ["error": "\(error)", "data_dir": "\(dir)"])
                throw ExitCode(1)
            }
            logger.info("embedded redis-server started", metadata: ["data_dir": "\(dir)", "aof": "on"])
            services.append(EmbeddedRedisService(server: child, logger: logger))
            endpoint = child.endpoint
        }

        let redisClient = RedisClient(
            configuration: RedisClientConfiguration(endpoint: endpoint, connections: redisConnections),
            logger: Logger(label: "bursard.redis"))
        let engine = DecisionEngine(
            redis: redisClient,
            limiter: Limiter(reservationTTLMs: Int64(reservationTtl) * 1000),
            configuration: EngineConfiguration(
                deadline: .milliseconds(Int64(deadlineMs)), cacheTTL: .milliseconds(Int64(cacheTtlMs)),
                negativeCacheTTL: .milliseconds(Int64(negativeCacheTtlMs))),
            logger: logger)
        do {
            try await engine.preloadScripts()
        } catch {
            logger.warning("could not load the limiter scripts yet; they load on first use", metadata: ["error": "\(error)"])
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let server = DataPlaneServer(
            configuration: ListenerConfiguration(host: host, port: port, unixSocketPath: unix),
            engine: engine, group: group, logger: logger)
        do {
            try await server.start()
        } catch {
            logger.critical("cannot listen", metadata: ["address": "\(listen)", "error": "\(error)"])
            for case let embedded as EmbeddedRedisService in services { embedded.server.stop() }
            throw ExitCode(1)
        }
        services.append(server)
        services.append(InvalidationListener(engine: engine, logger: Logger(label: "bursard.invalidation")))

        let store = MetadataStore(redis: redisClient)
        let admin = AdminService(store: store, audit: AuditLog(redis: redisClient), logger: Logger(label: "bursard.admin"))
        let (opsHost, opsPort) = parseHostPort(ops)!
        services.append(OpsServer.application(
            configuration: OpsConfiguration(host: opsHost, port: opsPort), service: admin, group: group, logger: Logger(label: "bursard.ops"),
            onRunning: { port in logger.info("ops port listening", metadata: ["address": "\(opsHost):\(port)"]) }))

        let group2 = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group2.run()
        redisClient.shutdown()
        try await group.shutdownGracefully()
        logger.info("bursard stopped")
    }
}

/// Parses "host:port" (IPv6 as "[::1]:port").
func parseHostPort(_ text: String) -> (String, Int)? {
    guard let colon = text.lastIndex(of: ":") else { return nil }
    var host = String(text[..<colon])
    if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
    return (host, port)
}
