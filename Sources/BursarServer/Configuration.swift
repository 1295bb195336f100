public import BursarRedis
public import BursarStore
public import Logging
import Foundation
import NIOCore

/// A TCP address, `host:port` (IPv6 as `[::1]:port`).
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    /// Host name or address.
    public var host: String
    /// Port; 0 picks a free one.
    public var port: Int

    /// An address.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` with a port 0…65535; nil if it is not one.
    public init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let portText = text[text.index(after: colon)...]
        guard !host.isEmpty, portText.allSatisfy(\.isASCII), let port = Int(portText), (0...65535).contains(port) else { return nil }
        self.init(host: host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// One of bursard's settings: a flag, its environment variable and its config-file name.
public struct ConfigurationOption: Sendable, Hashable {
    /// The flag's name without `--`; also its name in the config file.
    public var name: String
    /// Other names for the same setting (`stats` for `ops`).
    public var aliases: [String]
    /// The value's placeholder in `--help`.
    public var valueName: String
    /// What it does.
    public var abstract: String
    /// The default, as shown in `--help`; nil when unset means "not used".
    public var defaultText: String?

    /// `--name`.
    public var flag: String { "--" + name }

    /// `BURSARD_<NAME IN UPPER SNAKE CASE>`.
    public var environmentVariable: String { Self.environmentVariable(for: name) }

    /// The environment variable for a setting name: `redis-connections` → `BURSARD_REDIS_CONNECTIONS`.
    public static func environmentVariable(for name: String) -> String {
        "BURSARD_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
    }

    /// The help line: the abstract and the default.
    public var help: String { defaultText.map { "\(abstract) Default: \($0)." } ?? abstract }
}

/// Everything `bursard` is configured with, merged from the command line, the environment
/// (`BURSARD_<FLAG>`), a config file (`--config FILE`) and the built-in defaults, in that order of
/// precedence. Pure: no sockets, no logging; `resolve` only reads the config file.
public struct BursardConfiguration: Sendable, Hashable {
    /// The data plane's TCP address (`--listen`).
    public var listen = HostPort(host: "127.0.0.1", port: 7420)
    /// The ops port (`--ops`, alias `--stats`).
    public var ops = HostPort(host: "127.0.0.1", port: 7421)
    /// The ops port's certificate chain, PEM (`--ops-tls-cert`); with `opsTLSKey`, HTTPS.
    public var opsTLSCertificate: String?
    /// The ops port's private key, PEM (`--ops-tls-key`).
    public var opsTLSKey: String?
    /// Serve the admin API in clear text on a non-loopback address (`--ops-allow-insecure-remote`):
    /// for a TLS-terminating proxy or a private network the operator vouches for.
    public var opsAllowInsecureRemote = false
    /// The data plane's certificate chain, PEM (`--listen-tls-cert`): with `listenTLSKey` and
    /// `listenTLSClientCA`, the TCP data plane speaks mutual TLS.
    public var listenTLSCertificate: String?
    /// The data plane's private key, PEM (`--listen-tls-key`).
    public var listenTLSKey: String?
    /// The certificate authorities whose client certificates the data plane accepts, PEM
    /// (`--listen-tls-client-ca`): a gateway without one is refused in the handshake.
    public var listenTLSClientCA: String?
    /// Serve the data plane (`--listen` without mutual TLS, `--grpc`) on a non-loopback address
    /// (`--listen-allow-insecure-remote`): whoever reaches it can CHECK, SETTLE and RELEASE, so
    /// only for a network the operator vouches for.
    public var listenAllowInsecureRemote = false
    /// Whether data-plane connections must present a gateway credential (AUTH, SPEC §6.5) before
    /// a CHECK, SETTLE or RELEASE (`--data-plane-auth required`); `optional` serves a connection
    /// without one for every organization.
    public var dataPlaneAuthRequired = false
    /// The file of key-encryption keys provider (BYOK) secrets are sealed with
    /// (`--secrets-key-file`; `SecretKeyring` describes the format).
    public var secretsKeyFile: String?
    /// The same keys given as text (`--secrets-keys`; meant for the environment variable
    /// `BURSARD_SECRETS_KEYS`, never the command line, where other users of the host see it).
    public var secretsKeys: String?
    /// An additional unix socket for the data plane (`--unix`).
    public var unixSocketPath: String?
    /// The gRPC front door for Envoy's ext_authz filter (`--grpc`); nil: none.
    public var grpc: HostPort?
    /// The gRPC front door on a unix socket (`--grpc-unix`).
    public var grpcUnixSocketPath: String?
    /// The request header an Envoy request's API key is in (`--envoy-key-header`).
    public var envoyKeyHeader = "authorization"
    /// The request header naming an Envoy request's model (`--envoy-model-header`).
    public var envoyModelHeader = "x-bursar-model"
    /// Output tokens reserved for an Envoy request that sets no maximum (`--envoy-max-output-tokens`).
    public var envoyMaxOutputTokens = 4096
    /// The descriptor domain of Envoy's rate limit filter that bursard answers (`--envoy-rls-domain`).
    public var envoyRateLimitDomain = "bursar"
    /// An external Redis (`--redis`); nil runs an embedded redis-server.
    public var redis: RedisTarget?
    /// The embedded redis-server's directory (`--data-dir`).
    public var dataDirectory = "./bursar-data"
    /// The embedded redis-server binary (`--redis-server`); nil searches `PATH`.
    public var redisServer: String?
    /// The embedded redis-server's AOF fsync policy (`--appendfsync`).
    public var appendFsync = RedisServerProcess.AppendFsync.everysec
    /// Longest a decision waits for Redis (`--deadline-ms`).
    public var deadline = Duration.milliseconds(50)
    /// The latency a CHECK's Redis step should stay under; the adaptive admission limit
    /// shrinks above it (`--latency-target-ms`; nil: a fifth of the deadline, at least 2).
    public var latencyTarget: Duration?
    /// How long an instance may miss heartbeats before another sweeps what it left undelivered,
    /// ms (`--instance-lease-ms`).
    public var instanceLease = Duration.milliseconds(10_000)
    /// How long an unsettled reservation holds its estimate (`--reservation-ttl`, seconds).
    public var reservationTTL = Duration.seconds(900)
    /// How long usage history is kept after its day (`--history-retention-days`).
    public var historyRetention = HistoryRetention.standard
    /// Digest cache TTL (`--cache-ttl-ms`).
    public var cacheTTL = Duration.milliseconds(5_000)
    /// Unknown-digest cache TTL (`--negative-cache-ttl-ms`).
    public var negativeCacheTTL = Duration.milliseconds(1_000)
    /// The store failure policy (`--on-store-failure-rate`, `--on-store-failure-spend`, `--local-allowance`).
    public var storeFailure = StoreFailurePolicy()
    /// Pipelined Redis connections (`--redis-connections`).
    public var redisConnections = 2
    /// Event loop threads (`--threads`).
    public var threads = min(System.coreCount, 256)
    /// Log level (`--log-level`).
    public var logLevel = Logger.Level.info
    /// How long a graceful shutdown may take before open connections are closed hard (`--shutdown-timeout`).
    public var shutdownTimeout = Duration.seconds(10)
    /// Open data-plane connections, TCP and unix together (`--max-connections`).
    public var maxConnections = 4096
    /// CHECKs/SETTLEs/RELEASEs in flight across all connections (`--max-in-flight`).
    public var maxInFlight = 8192
    /// CHECKs/SETTLEs/RELEASEs in flight on one connection (`--max-in-flight-per-connection`).
    public var maxInFlightPerConnection = 1024
    /// A connection idle this long is closed; zero: never (`--idle-timeout`).
    public var idleTimeout = Duration.seconds(300)
    /// Longest a frame may take to arrive once begun (`--frame-timeout`).
    public var frameTimeout = Duration.seconds(10)
    /// Longest a connection may leave its answers unread (`--write-timeout`).
    public var writeTimeout = Duration.seconds(10)
    /// `unknown_key` answers a connection may get per rolling minute before its lookups of
    /// uncached digests are throttled; 0: no throttle (`--max-unknown-keys-per-minute`).
    public var maxUnknownKeysPerMinute = 600
    /// How long a web console sign-in lasts (`--console-session-ttl`, seconds).
    public var consoleSessionTTL = Duration.seconds(28_800)
    /// The config file read, if any.
    public var configFile: String?
    /// Where each setting (by canonical name) came from.
    public var sources: [String: ConfigurationSource] = [:]

    /// The built-in defaults.
    public init() {}

    /// Every setting, in `--help` order. `config` (the file itself) is not among them.
    public static let options: [ConfigurationOption] = [
        ConfigurationOption(name: "listen", aliases: [], valueName: "host:port", abstract: "TCP address of the data plane (port 0 picks a free port).", defaultText: "127.0.0.1:7420"),
        ConfigurationOption(name: "listen-tls-cert", aliases: [], valueName: "path", abstract: "Speak mutual TLS on the TCP data plane with this certificate chain (PEM, leaf first); needs --listen-tls-key and --listen-tls-client-ca. The unix socket stays plain (its file permissions guard it).", defaultText: nil),
        ConfigurationOption(name: "listen-tls-key", aliases: [], valueName: "path", abstract: "The private key (PEM) for --listen-tls-cert.", defaultText: nil),
        ConfigurationOption(name: "listen-tls-client-ca", aliases: [], valueName: "path", abstract: "Accept data-plane clients (gateways) only with a certificate issued by these CAs (PEM).", defaultText: nil),
        ConfigurationOption(name: "listen-allow-insecure-remote", aliases: [], valueName: "true|false", abstract: "Allow --listen without mutual TLS, and --grpc, on a non-loopback address: anyone who reaches them can CHECK, SETTLE and RELEASE. Without it bursard refuses to start.", defaultText: "false"),
        ConfigurationOption(name: "data-plane-auth", aliases: [], valueName: "optional|required", abstract: "Whether a data-plane connection must present a gateway credential (AUTH; issued by the operator for chosen organizations) before CHECK, SETTLE or RELEASE. 'optional': a connection without one serves every organization; one with one serves only its organizations.", defaultText: "optional"),
        ConfigurationOption(name: "secrets-key-file", aliases: [], valueName: "path", abstract: "Key-encryption keys for provider (BYOK) secrets, AES-256-GCM: one 'id:base64' line per key, the first seals, all open. Without keys no provider secret can be stored; with sealed secrets in Redis bursard will not start without the keys that sealed them.", defaultText: nil),
        ConfigurationOption(name: "secrets-keys", aliases: [], valueName: "text", abstract: "The same keys as text, for the environment variable BURSARD_SECRETS_KEYS (not the command line: other users of the host can read it there).", defaultText: nil),
        ConfigurationOption(name: "ops", aliases: ["stats"], valueName: "host:port", abstract: "TCP address of the ops port: the admin API (port 0 picks a free port).", defaultText: "127.0.0.1:7421"),
        ConfigurationOption(name: "ops-tls-cert", aliases: [], valueName: "path", abstract: "Serve the ops port over TLS with this certificate chain (PEM, leaf first); needs --ops-tls-key.", defaultText: nil),
        ConfigurationOption(name: "ops-tls-key", aliases: [], valueName: "path", abstract: "The private key (PEM) for --ops-tls-cert.", defaultText: nil),
        ConfigurationOption(name: "ops-allow-insecure-remote", aliases: [], valueName: "true|false", abstract: "Allow --ops on a non-loopback address without TLS (e.g. behind a TLS-terminating proxy); without it bursard refuses to start.", defaultText: "false"),
        ConfigurationOption(name: "unix", aliases: [], valueName: "path", abstract: "Also listen on this unix socket.", defaultText: nil),
        ConfigurationOption(name: "grpc", aliases: [], valueName: "host:port", abstract: "Serve Envoy's external authorization (envoy.service.auth.v3.Authorization/Check) and rate limit service (envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit) over gRPC here (port 0 picks a free port).", defaultText: "off"),
        ConfigurationOption(name: "grpc-unix", aliases: [], valueName: "path", abstract: "Serve the same gRPC front door on this unix socket (with or without --grpc).", defaultText: nil),
        ConfigurationOption(name: "envoy-key-header", aliases: [], valueName: "name", abstract: "The request header holding the API key in gRPC requests from Envoy (authorization: Bearer <key>; any other header: the key itself).", defaultText: "authorization"),
        ConfigurationOption(name: "envoy-model-header", aliases: [], valueName: "name", abstract: "The request header naming the model in gRPC requests from Envoy; without it, \"model\" in json_to_metadata's metadata.", defaultText: "x-bursar-model"),
        ConfigurationOption(name: "envoy-max-output-tokens", aliases: [], valueName: "n", abstract: "Output tokens reserved for a request from Envoy that sets no max_tokens.", defaultText: "4096"),
        ConfigurationOption(name: "envoy-rls-domain", aliases: [], valueName: "name", abstract: "The domain of Envoy's rate limit filter that the rate limit service answers; calls for another domain are refused.", defaultText: "bursar"),
        ConfigurationOption(name: "redis", aliases: [], valueName: "url", abstract: "Use this Redis: redis://host:port[/db], unix:///path[?db=N], redis+cluster://host:port[,host:port…] (a Redis Cluster, from seed nodes) or redis+sentinel://host:port[,host:port…]/MASTERNAME[/db] (the master the sentinels name).", defaultText: "an embedded redis-server"),
        ConfigurationOption(name: "data-dir", aliases: [], valueName: "dir", abstract: "Directory of the embedded redis-server (AOF, socket, config).", defaultText: "./bursar-data"),
        ConfigurationOption(name: "redis-server", aliases: [], valueName: "path", abstract: "The redis-server binary for the embedded store.", defaultText: "the first on PATH"),
        ConfigurationOption(name: "appendfsync", aliases: [], valueName: "policy", abstract: "When the embedded redis-server fsyncs its AOF: everysec (a machine crash may lose the last second) or always (nothing acknowledged is lost).", defaultText: "everysec"),
        ConfigurationOption(name: "deadline-ms", aliases: [], valueName: "ms", abstract: "Longest a decision waits for Redis before answering store_unavailable.", defaultText: "50"),
        ConfigurationOption(name: "latency-target-ms", aliases: [], valueName: "ms", abstract: "The latency a CHECK's Redis step (queue and round trip) should stay under: the adaptive limit on CHECKs waiting on Redis shrinks above it, and the excess is answered overloaded at once.", defaultText: "a fifth of --deadline-ms, at least 2"),
        ConfigurationOption(name: "instance-lease-ms", aliases: [], valueName: "ms", abstract: "How long a bursard may miss its heartbeats before another one voids the admissions it left undelivered.", defaultText: "10000"),
        ConfigurationOption(name: "reservation-ttl", aliases: [], valueName: "seconds", abstract: "How long an unsettled reservation holds its estimate.", defaultText: "900"),
        ConfigurationOption(name: "history-retention-days", aliases: [], valueName: "days", abstract: "How long usage history (per day, key, project and model) is kept after its day, 35 to 3660.", defaultText: "396 (13 months)"),
        ConfigurationOption(name: "cache-ttl-ms", aliases: [], valueName: "ms", abstract: "How long a resolved key digest stays cached.", defaultText: "5000"),
        ConfigurationOption(name: "negative-cache-ttl-ms", aliases: [], valueName: "ms", abstract: "How long an unknown key digest stays cached.", defaultText: "1000"),
        ConfigurationOption(name: "on-store-failure-rate", aliases: [], valueName: "deny|allow", abstract: "When Redis cannot decide a CHECK in time, for a key with an RPM or TPM limit: deny (store_unavailable) or allow (admit locally within --local-allowance, replay into Redis later).", defaultText: "deny"),
        ConfigurationOption(name: "on-store-failure-spend", aliases: [], valueName: "deny|allow", abstract: "The same for a key with a key or project budget or in a metered org.", defaultText: "deny"),
        ConfigurationOption(name: "local-allowance", aliases: [], valueName: "n", abstract: "Most CHECKs one bursard admits locally per key per minute while Redis cannot decide.", defaultText: "60"),
        ConfigurationOption(name: "redis-connections", aliases: [], valueName: "n", abstract: "Redis connections with threads of their own (admin, reconciler; the data plane on Cluster and Sentinel).", defaultText: "2"),
        ConfigurationOption(name: "threads", aliases: [], valueName: "n", abstract: "Event loop threads; on a single Redis each has its own Redis connection for the data plane.", defaultText: "the number of cores"),
        ConfigurationOption(name: "log-level", aliases: [], valueName: "level", abstract: "trace, debug, info, notice, warning, error or critical.", defaultText: "info"),
        ConfigurationOption(name: "shutdown-timeout", aliases: [], valueName: "seconds", abstract: "On SIGTERM/SIGINT, how long open connections may take to be answered before they are closed hard.", defaultText: "10"),
        ConfigurationOption(name: "max-connections", aliases: [], valueName: "n", abstract: "Open data-plane connections (TCP and unix together); one more gets ERROR too_many_connections and is closed.", defaultText: "4096"),
        ConfigurationOption(name: "max-in-flight", aliases: [], valueName: "n", abstract: "Requests in flight across all connections; over it a CHECK is answered overloaded at once (SETTLE and RELEASE at twice it).", defaultText: "8192"),
        ConfigurationOption(name: "max-in-flight-per-connection", aliases: [], valueName: "n", abstract: "Requests in flight on one connection; over it a CHECK is answered overloaded at once (SETTLE and RELEASE at twice it).", defaultText: "1024"),
        ConfigurationOption(name: "idle-timeout", aliases: [], valueName: "seconds", abstract: "Close a connection with no frame and nothing in flight for this long (ERROR idle_timeout); 0: never.", defaultText: "300"),
        ConfigurationOption(name: "frame-timeout", aliases: [], valueName: "seconds", abstract: "Close a connection whose frame is not complete this long after its first byte (ERROR frame_timeout).", defaultText: "10"),
        ConfigurationOption(name: "write-timeout", aliases: [], valueName: "seconds", abstract: "Close a connection that leaves its answers unread this long (it is not read from meanwhile).", defaultText: "10"),
        ConfigurationOption(name: "console-session-ttl", aliases: [], valueName: "seconds", abstract: "How long a web console sign-in (/console on the ops port) lasts before the browser must sign in again.", defaultText: "28800"),
        ConfigurationOption(name: "max-unknown-keys-per-minute", aliases: [], valueName: "n", abstract: "unknown_key answers one connection may get per rolling minute; beyond, its CHECKs for uncached digests are answered key_lookups_throttled; 0: no limit.", defaultText: "600"),
    ]

    /// The option named `name` (canonical or alias).
    public static func option(named name: String) -> ConfigurationOption? {
        options.first { $0.name == name || $0.aliases.contains(name) }
    }

    /// Merges the sources, highest precedence first: `commandLine` (setting name → value, as
    /// given, aliases included; `config` names the config file), then `environment` (only its
    /// `BURSARD_*` variables are read; `BURSARD_CONFIG` names the config file when the command line
    /// does not), then the config file, then the defaults. Throws an error naming the setting and
    /// its source for a bad value in any source (overridden or not), an unknown `BURSARD_*`
    /// variable or config-file name, or two names of one setting (`ops` and `stats`) given by the
    /// same source.
    public static func resolve(commandLine: [String: String], environment: [String: String]) throws(ConfigurationError) -> BursardConfiguration {
        let known = Set(options.flatMap { [$0.name] + $0.aliases })
        var command: [ConfigurationEntry] = []
        for (name, value) in commandLine.sorted(by: { $0.key < $1.key }) where name != "config" {
            guard known.contains(name) else { throw ConfigurationError("--\(name) is not a bursard flag") }
            command.append(ConfigurationEntry(name: name, value: value, source: .commandLine))
        }

        var fromEnvironment: [ConfigurationEntry] = []
        var configFromEnvironment: String?
        let variables = Dictionary(known.map { (ConfigurationOption.environmentVariable(for: $0), $0) }, uniquingKeysWith: { a, _ in a })
        for (variable, value) in environment.sorted(by: { $0.key < $1.key }) where variable.hasPrefix("BURSARD_") {
            if variable == "BURSARD_CONFIG" {
                configFromEnvironment = value
                continue
            }
            guard let name = variables[variable] else {
                let list = (variables.keys.sorted() + ["BURSARD_CONFIG"]).joined(separator: ", ")
                throw ConfigurationError("unknown environment variable \(variable): bursard reads only \(list)")
            }
            fromEnvironment.append(ConfigurationEntry(name: name, value: value, source: .environment(variable: variable)))
        }

        var configuration = BursardConfiguration()
        var fromFile: [ConfigurationEntry] = []
        let configFile: (path: String, origin: ConfigurationSource)? =
            if let path = commandLine["config"] { (path, .commandLine) }
            else if let path = configFromEnvironment { (path, .environment(variable: "BURSARD_CONFIG")) }
            else { nil }
        if let configFile {
            guard !configFile.path.isEmpty else { throw ConfigurationError("--config '' (\(configFile.origin)) must name a file") }
            fromFile = try ConfigurationFile.load(path: configFile.path, origin: configFile.origin, known: known).entries
            configuration.configFile = configFile.path
        }

        for option in options { configuration.sources[option.name] = .builtInDefault }
        // Lowest precedence first, so a higher source overwrites; every value given anywhere is
        // checked, even one a higher source overrides (it would surface the day that one goes).
        for entries in [try layer(fromFile), try layer(fromEnvironment), try layer(command)] {
            for option in options {
                guard let entry = entries[option.name] else { continue }
                if let problem = apply(option.name, entry.value, to: &configuration) {
                    throw ConfigurationError("--\(entry.name) '\(entry.value)' (\(entry.source)) \(problem)")
                }
                configuration.sources[option.name] = entry.source
            }
        }
        if let problem = configuration.opsExposureProblem { throw ConfigurationError(problem) }
        if let problem = configuration.dataPlaneExposureProblem { throw ConfigurationError(problem) }
        if configuration.secretsKeyFile != nil && configuration.secretsKeys != nil {
            throw ConfigurationError("--secrets-key-file and --secrets-keys are two ways to give the same keys: give one")
        }
        return configuration
    }

    /// The ops port's TLS files, when both are set.
    public var opsTLS: (certificate: String, key: String)? {
        guard let certificate = opsTLSCertificate, let key = opsTLSKey else { return nil }
        return (certificate, key)
    }

    /// Why the ops settings must not start: one TLS file without the other, or the admin API in
    /// clear text on an address other hosts can reach without `--ops-allow-insecure-remote`.
    var opsExposureProblem: String? {
        if (opsTLSCertificate == nil) != (opsTLSKey == nil) {
            return "--ops-tls-cert and --ops-tls-key go together: give both (PEM files) or neither"
        }
        guard opsTLS == nil, !opsAllowInsecureRemote, !Self.isLoopback(ops.host) else { return nil }
        return "--ops \(ops) (\(sources["ops"] ?? .builtInDefault)) is not a loopback address and the ops port has no TLS: "
            + "the admin API (bearer tokens, new key secrets) would cross the network in clear text. "
            + "Give --ops-tls-cert and --ops-tls-key, or --ops-allow-insecure-remote true (behind a TLS-terminating proxy)"
    }

    /// The key-encryption keys, read from `--secrets-key-file` or `--secrets-keys`; nil when
    /// neither is given. Throws naming the setting (never a key) when they cannot be used.
    public func secretKeyring() throws(ConfigurationError) -> SecretKeyring? {
        let text: String
        let source: String
        if let path = secretsKeyFile {
            do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
                throw ConfigurationError("--secrets-key-file \(path): cannot read it (\(error.localizedDescription))")
            }
            source = "--secrets-key-file \(path)"
        } else if let inline = secretsKeys {
            text = inline
            source = "--secrets-keys (\(sources["secrets-keys"] ?? .builtInDefault))"
        } else {
            return nil
        }
        do { return try SecretKeyring(parsing: text, source: source) } catch { throw ConfigurationError(error.description) }
    }

    /// The data plane's mutual-TLS files, when all three are set.
    public var listenTLS: (certificate: String, key: String, clientCA: String)? {
        guard let certificate = listenTLSCertificate, let key = listenTLSKey, let ca = listenTLSClientCA else { return nil }
        return (certificate, key, ca)
    }

    /// Why the data-plane settings must not start: some of the mutual-TLS files without the
    /// others, or a listener other hosts can reach that authenticates nobody, without
    /// `--listen-allow-insecure-remote`. The data plane moves money: a SETTLE from anyone who
    /// reaches the port counts.
    var dataPlaneExposureProblem: String? {
        let given = [listenTLSCertificate, listenTLSKey, listenTLSClientCA].filter { $0 != nil }.count
        if given != 0 && given != 3 {
            return "--listen-tls-cert, --listen-tls-key and --listen-tls-client-ca go together (mutual TLS): give all three (PEM files) or none"
        }
        guard !listenAllowInsecureRemote else { return nil }
        let remedy = "Keep it on loopback (a sidecar) or the unix socket, or give --listen-allow-insecure-remote true on a network you vouch for"
        if listenTLS == nil, !Self.isLoopback(listen.host) {
            return "--listen \(listen) (\(sources["listen"] ?? .builtInDefault)) is not a loopback address and the data plane has no mutual TLS: "
                + "anyone who reaches it could CHECK, SETTLE and RELEASE. Give --listen-tls-cert, --listen-tls-key and --listen-tls-client-ca (gateways then need a client certificate). "
                + remedy
        }
        if let grpc, !Self.isLoopback(grpc.host) {
            return "--grpc \(grpc) (\(sources["grpc"] ?? .builtInDefault)) is not a loopback address and the gRPC front door authenticates no one: "
                + "anyone who reaches it could CHECK and SETTLE. Run Envoy beside bursard (loopback, or --grpc-unix), "
                + "or give --listen-allow-insecure-remote true on a network you vouch for"
        }
        return nil
    }

    /// `localhost`, 127.0.0.0/8 (dotted quad) or `::1`; anything else counts as reachable.
    public static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased()
        if h == "localhost" || h == "::1" || h == "0:0:0:0:0:0:0:1" { return true }
        let octets = h.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4, octets.allSatisfy({ (1...3).contains($0.count) && $0.allSatisfy(\.isASCII) && UInt8($0) != nil }) else { return false }
        return octets[0] == "127"
    }

    /// One source's entries by canonical name; two names of one setting in one source are refused.
    private static func layer(_ entries: [ConfigurationEntry]) throws(ConfigurationError) -> [String: ConfigurationEntry] {
        var result: [String: ConfigurationEntry] = [:]
        for entry in entries {
            guard let canonical = option(named: entry.name)?.name else { continue }
            if let earlier = result[canonical] {
                throw ConfigurationError(
                    "--\(earlier.name) (\(earlier.source)) and --\(entry.name) (\(entry.source)) are the same setting; give only one")
            }
            result[canonical] = entry
        }
        return result
    }

    /// Parses `text` into the setting `name`; returns what is wrong with it, or nil.
    static func apply(_ name: String, _ text: String, to c: inout BursardConfiguration) -> String? {
        func integer(_ range: ClosedRange<Int>, _ unit: String = "", _ set: (Int) -> Void) -> String? {
            guard let value = Int(text) else { return "is not an integer" }
            guard range.contains(value) else { return "is outside \(range.lowerBound)…\(range.upperBound)\(unit)" }
            set(value)
            return nil
        }
        func nonEmpty(_ set: (String) -> Void) -> String? {
            guard !text.isEmpty else { return "must not be empty" }
            set(text)
            return nil
        }
        switch name {
        case "listen", "ops", "grpc":
            guard let address = HostPort(parsing: text) else { return "is not host:port with a port 0…65535" }
            switch name {
            case "listen": c.listen = address
            case "ops": c.ops = address
            default: c.grpc = address
            }
            return nil
        case "unix": return nonEmpty { c.unixSocketPath = $0 }
        case "grpc-unix": return nonEmpty { c.grpcUnixSocketPath = $0 }
        case "envoy-key-header", "envoy-model-header":
            guard !text.isEmpty, text.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != UInt8(ascii: ":") }) else {
                return "is not an HTTP header name"
            }
            if name == "envoy-key-header" { c.envoyKeyHeader = text.lowercased() } else { c.envoyModelHeader = text.lowercased() }
            return nil
        case "envoy-max-output-tokens": return integer(1...1_000_000_000) { c.envoyMaxOutputTokens = $0 }
        case "envoy-rls-domain": return nonEmpty { c.envoyRateLimitDomain = $0 }
        case "ops-tls-cert": return nonEmpty { c.opsTLSCertificate = $0 }
        case "ops-tls-key": return nonEmpty { c.opsTLSKey = $0 }
        case "secrets-key-file": return nonEmpty { c.secretsKeyFile = $0 }
        case "secrets-keys": return nonEmpty { c.secretsKeys = $0 }
        case "listen-tls-cert": return nonEmpty { c.listenTLSCertificate = $0 }
        case "listen-tls-key": return nonEmpty { c.listenTLSKey = $0 }
        case "listen-tls-client-ca": return nonEmpty { c.listenTLSClientCA = $0 }
        case "listen-allow-insecure-remote":
            guard let value = Bool(text) else { return "is not true or false" }
            c.listenAllowInsecureRemote = value
            return nil
        case "data-plane-auth":
            switch text {
            case "optional": c.dataPlaneAuthRequired = false
            case "required": c.dataPlaneAuthRequired = true
            default: return "is not optional or required"
            }
            return nil
        case "ops-allow-insecure-remote":
            guard let value = Bool(text) else { return "is not true or false" }
            c.opsAllowInsecureRemote = value
            return nil
        case "redis":
            do {
                c.redis = try RedisTarget(url: text)
                return nil
            } catch {
                return "is not a Redis URL: \(error.message)"
            }
        case "data-dir": return nonEmpty { c.dataDirectory = $0 }
        case "redis-server": return nonEmpty { c.redisServer = $0 }
        case "appendfsync":
            guard let policy = RedisServerProcess.AppendFsync(rawValue: text) else { return "is not everysec or always" }
            c.appendFsync = policy
            return nil
        case "deadline-ms": return integer(1...60_000) { c.deadline = .milliseconds($0) }
        case "latency-target-ms": return integer(1...60_000) { c.latencyTarget = .milliseconds($0) }
        case "instance-lease-ms": return integer(1...3_600_000) { c.instanceLease = .milliseconds($0) }
        case "reservation-ttl": return integer(1...7 * 86_400, " seconds") { c.reservationTTL = .seconds($0) }
        case "history-retention-days":
            return integer(HistoryRetention.minimumDays...HistoryRetention.maximumDays, " days") { c.historyRetention = HistoryRetention(days: $0)! }
        case "cache-ttl-ms": return integer(0...86_400_000) { c.cacheTTL = .milliseconds($0) }
        case "negative-cache-ttl-ms": return integer(0...86_400_000) { c.negativeCacheTTL = .milliseconds($0) }
        case "on-store-failure-rate", "on-store-failure-spend":
            guard let mode = StoreFailureMode(rawValue: text) else { return "is not deny or allow" }
            if name == "on-store-failure-rate" { c.storeFailure.rateLimits = mode } else { c.storeFailure.spendLimits = mode }
            return nil
        case "local-allowance": return integer(1...1_000_000) { c.storeFailure.localAllowancePerKeyPerMinute = $0 }
        case "redis-connections": return integer(1...64) { c.redisConnections = $0 }
        case "threads": return integer(1...256) { c.threads = $0 }
        case "log-level":
            guard let level = Logger.Level(rawValue: text) else { return "is not one of trace, debug, info, notice, warning, error, critical" }
            c.logLevel = level
            return nil
        case "shutdown-timeout":
            guard let ms = milliseconds(text), ms <= 3_600_000 else { return "is not a number of seconds 0…3600 (at most 3 decimals, e.g. 10 or 2.5)" }
            c.shutdownTimeout = .milliseconds(ms)
            return nil
        case "max-connections": return integer(1...1_000_000) { c.maxConnections = $0 }
        case "max-in-flight": return integer(1...10_000_000) { c.maxInFlight = $0 }
        case "max-in-flight-per-connection": return integer(1...1_000_000) { c.maxInFlightPerConnection = $0 }
        case "max-unknown-keys-per-minute": return integer(0...100_000_000) { c.maxUnknownKeysPerMinute = $0 }
        case "console-session-ttl": return integer(1...30 * 86_400, " seconds") { c.consoleSessionTTL = .seconds($0) }
        case "idle-timeout", "frame-timeout", "write-timeout":
            let zeroAllowed = name == "idle-timeout"
            guard let ms = milliseconds(text), ms <= 86_400_000, zeroAllowed || ms > 0 else {
                return "is not a number of seconds \(zeroAllowed ? "0" : "0.001")…86400 (at most 3 decimals, e.g. 10 or 2.5)"
            }
            switch name {
            case "idle-timeout": c.idleTimeout = .milliseconds(ms)
            case "frame-timeout": c.frameTimeout = .milliseconds(ms)
            default: c.writeTimeout = .milliseconds(ms)
            }
            return nil
        default:
            return "is not a bursard setting"
        }
    }

    /// "2.5" → 2500: seconds with at most three decimals, exactly (no floating point).
    static func milliseconds(_ text: String) -> Int64? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), !parts[0].isEmpty, parts[0].count <= 7, parts[0].allSatisfy({ $0.isASCII && $0.isNumber }),
              let whole = Int64(parts[0]) else { return nil }
        var fraction: Int64 = 0
        if parts.count == 2 {
            let digits = parts[1]
            guard (1...3).contains(digits.count), digits.allSatisfy({ $0.isASCII && $0.isNumber }), let f = Int64(digits) else { return nil }
            fraction = f * [100, 10, 1][digits.count - 1]
        }
        return whole * 1000 + fraction
    }
}
