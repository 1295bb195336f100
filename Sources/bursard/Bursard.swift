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
        discussion: """
            With no --redis, bursard starts and supervises its own redis-server on a private unix \
            socket in --data-dir, with AOF persistence. Wire protocol: proto/SPEC.md.

            Configuration: every flag can also be set in the environment as BURSARD_<FLAG> (upper \
            case, '-' as '_': --redis-connections is BURSARD_REDIS_CONNECTIONS, --stats is \
            BURSARD_STATS) and in a config file named by --config or BURSARD_CONFIG, one \
            'name = value' per line where name is the flag without '--' (listen = 0.0.0.0:7420); \
            lines starting with '#' are comments. Precedence: command line, then environment, then \
            config file, then the built-in default. A bad value, an unknown name in the file and \
            an unknown BURSARD_* variable stop bursard at start-up with a message that names the \
            flag and where it came from (command line, variable, or file:line).

            Shutdown: on SIGTERM or SIGINT bursard stops accepting connections and reading \
            frames, answers every frame it has already received, flushes and closes each \
            connection, stops the ops port and the embedded redis-server (AOF flushed) and exits \
            0. Connections still open after --shutdown-timeout are closed hard.
            """,
        version: bursarVersion)

    @Option(name: .long, help: Bursard.help("listen"))
    var listen: String?

    @Option(name: .long, help: Bursard.help("ops"))
    var ops: String?

    @Option(name: .long, help: ArgumentHelp("Same as --ops.", valueName: "host:port"))
    var stats: String?

    @Option(name: .customLong("ops-tls-cert"), help: Bursard.help("ops-tls-cert"))
    var opsTLSCert: String?

    @Option(name: .customLong("ops-tls-key"), help: Bursard.help("ops-tls-key"))
    var opsTLSKey: String?

    @Option(name: .customLong("ops-allow-insecure-remote"), help: Bursard.help("ops-allow-insecure-remote"))
    var opsAllowInsecureRemote: String?

    @Option(name: .customLong("secrets-key-file"), help: Bursard.help("secrets-key-file"))
    var secretsKeyFile: String?

    @Option(name: .customLong("secrets-keys"), help: Bursard.help("secrets-keys"))
    var secretsKeys: String?

    @Option(name: .customLong("listen-tls-cert"), help: Bursard.help("listen-tls-cert"))
    var listenTLSCert: String?

    @Option(name: .customLong("listen-tls-key"), help: Bursard.help("listen-tls-key"))
    var listenTLSKey: String?

    @Option(name: .customLong("listen-tls-client-ca"), help: Bursard.help("listen-tls-client-ca"))
    var listenTLSClientCA: String?

    @Option(name: .customLong("listen-allow-insecure-remote"), help: Bursard.help("listen-allow-insecure-remote"))
    var listenAllowInsecureRemote: String?

    @Option(name: .customLong("data-plane-auth"), help: Bursard.help("data-plane-auth"))
    var dataPlaneAuth: String?

    @Option(name: .long, help: Bursard.help("unix"))
    var unix: String?

    @Option(name: .long, help: Bursard.help("grpc"))
    var grpc: String?

    @Option(name: .customLong("grpc-unix"), help: Bursard.help("grpc-unix"))
    var grpcUnix: String?

    @Option(name: .customLong("envoy-key-header"), help: Bursard.help("envoy-key-header"))
    var envoyKeyHeader: String?

    @Option(name: .customLong("envoy-model-header"), help: Bursard.help("envoy-model-header"))
    var envoyModelHeader: String?

    @Option(name: .customLong("envoy-max-output-tokens"), help: Bursard.help("envoy-max-output-tokens"))
    var envoyMaxOutputTokens: String?

    @Option(name: .customLong("envoy-rls-domain"), help: Bursard.help("envoy-rls-domain"))
    var envoyRateLimitDomain: String?

    @Option(name: .long, help: Bursard.help("redis"))
    var redis: String?

    @Option(name: .long, help: Bursard.help("data-dir"))
    var dataDir: String?

    @Option(name: .long, help: Bursard.help("redis-server"))
    var redisServer: String?

    @Option(name: .customLong("appendfsync"), help: Bursard.help("appendfsync"))
    var appendFsync: String?

    @Option(name: .long, help: Bursard.help("deadline-ms"))
    var deadlineMs: String?

    @Option(name: .long, help: Bursard.help("latency-target-ms"))
    var latencyTargetMs: String?

    @Option(name: .long, help: Bursard.help("instance-lease-ms"))
    var instanceLeaseMs: String?

    @Option(name: .long, help: Bursard.help("reservation-ttl"))
    var reservationTtl: String?

    @Option(name: .long, help: Bursard.help("history-retention-days"))
    var historyRetentionDays: String?

    @Option(name: .long, help: Bursard.help("cache-ttl-ms"))
    var cacheTtlMs: String?

    @Option(name: .long, help: Bursard.help("negative-cache-ttl-ms"))
    var negativeCacheTtlMs: String?

    @Option(name: .long, help: Bursard.help("on-store-failure-rate"))
    var onStoreFailureRate: String?

    @Option(name: .long, help: Bursard.help("on-store-failure-spend"))
    var onStoreFailureSpend: String?

    @Option(name: .long, help: Bursard.help("local-allowance"))
    var localAllowance: String?

    @Option(name: .long, help: Bursard.help("redis-connections"))
    var redisConnections: String?

    @Option(name: .long, help: Bursard.help("threads"))
    var threads: String?

    @Option(name: .long, help: Bursard.help("log-level"))
    var logLevel: String?

    @Option(name: .long, help: Bursard.help("shutdown-timeout"))
    var shutdownTimeout: String?

    @Option(name: .long, help: Bursard.help("max-connections"))
    var maxConnections: String?

    @Option(name: .long, help: Bursard.help("max-in-flight"))
    var maxInFlight: String?

    @Option(name: .long, help: Bursard.help("max-in-flight-per-connection"))
    var maxInFlightPerConnection: String?

    @Option(name: .long, help: Bursard.help("idle-timeout"))
    var idleTimeout: String?

    @Option(name: .long, help: Bursard.help("frame-timeout"))
    var frameTimeout: String?

    @Option(name: .long, help: Bursard.help("write-timeout"))
    var writeTimeout: String?

    @Option(name: .long, help: Bursard.help("max-unknown-keys-per-minute"))
    var maxUnknownKeysPerMinute: String?

    @Option(name: .long, help: Bursard.help("console-session-ttl"))
    var consoleSessionTtl: String?

    @Option(name: .long, help: ArgumentHelp("Read settings from this file ('name = value' lines; default: $BURSARD_CONFIG, else none).", valueName: "file"))
    var config: String?

    /// The help line of a setting, with its default, from the one table in `BursardConfiguration`.
    static func help(_ name: String) -> ArgumentHelp {
        let option = BursardConfiguration.option(named: name)!
        return ArgumentHelp(option.help, valueName: option.valueName)
    }

    /// The flags given on the command line, by setting name.
    var commandLine: [String: String] {
        let given: [(String, String?)] = [
            ("listen", listen), ("ops", ops), ("stats", stats), ("ops-tls-cert", opsTLSCert), ("ops-tls-key", opsTLSKey),
            ("ops-allow-insecure-remote", opsAllowInsecureRemote), ("listen-tls-cert", listenTLSCert), ("listen-tls-key", listenTLSKey),
            ("listen-tls-client-ca", listenTLSClientCA), ("listen-allow-insecure-remote", listenAllowInsecureRemote), ("data-plane-auth", dataPlaneAuth), ("secrets-key-file", secretsKeyFile), ("secrets-keys", secretsKeys), ("unix", unix), ("grpc", grpc), ("grpc-unix", grpcUnix),
            ("envoy-key-header", envoyKeyHeader), ("envoy-model-header", envoyModelHeader), ("envoy-max-output-tokens", envoyMaxOutputTokens),
            ("envoy-rls-domain", envoyRateLimitDomain),
            ("redis", redis), ("data-dir", dataDir),
            ("redis-server", redisServer), ("appendfsync", appendFsync), ("deadline-ms", deadlineMs), ("latency-target-ms", latencyTargetMs), ("instance-lease-ms", instanceLeaseMs), ("reservation-ttl", reservationTtl),
            ("history-retention-days", historyRetentionDays),
            ("cache-ttl-ms", cacheTtlMs), ("negative-cache-ttl-ms", negativeCacheTtlMs),
            ("on-store-failure-rate", onStoreFailureRate), ("on-store-failure-spend", onStoreFailureSpend), ("local-allowance", localAllowance),
            ("redis-connections", redisConnections), ("threads", threads), ("log-level", logLevel),
            ("shutdown-timeout", shutdownTimeout), ("max-connections", maxConnections), ("max-in-flight", maxInFlight),
            ("max-in-flight-per-connection", maxInFlightPerConnection), ("idle-timeout", idleTimeout), ("frame-timeout", frameTimeout),
            ("write-timeout", writeTimeout), ("max-unknown-keys-per-minute", maxUnknownKeysPerMinute),
            ("console-session-ttl", consoleSessionTtl), ("config", config),
        ]
        return Dictionary(uniqueKeysWithValues: given.compactMap { name, value in value.map { (name, $0) } })
    }

    func run() async throws {
        let settings: BursardConfiguration
        do {
            settings = try BursardConfiguration.resolve(commandLine: commandLine, environment: ProcessInfo.processInfo.environment)
        } catch {
            throw ValidationError(error.message)
        }
        let level = settings.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        try await BursardMain(settings: settings).run()
    }
}
