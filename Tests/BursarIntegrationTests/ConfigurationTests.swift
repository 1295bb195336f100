import BursarRedis
import BursarServer
import Foundation
import Logging
import Testing

/// bursard's settings: command line > environment (`BURSARD_*`) > config file > default, and
/// every refusal names the flag and where its value came from.
@Suite("configuration")
struct ConfigurationTests {
    /// Writes `text` to a fresh temporary file; returns its path.
    func file(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "bursard-\(UUID().uuidString).conf"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func resolve(_ commandLine: [String: String] = [:], env: [String: String] = [:]) throws(ConfigurationError) -> BursardConfiguration {
        try BursardConfiguration.resolve(commandLine: commandLine, environment: env)
    }

    /// The message of the error `body` throws, or a failure.
    func refusal(_ body: () throws(ConfigurationError) -> BursardConfiguration, sourceLocation: SourceLocation = #_sourceLocation) -> String {
        do {
            let c = try body()
            Issue.record("accepted: \(c)", sourceLocation: sourceLocation)
            return ""
        } catch {
            return error.message
        }
    }

    // MARK: The loader

    @Test("with nothing set, every setting is its built-in default")
    func defaults() throws {
        let c = try resolve(env: ["PATH": "/usr/bin", "BURSAR_TOKEN": "not ours"])
        #expect(c.listen == HostPort(host: "127.0.0.1", port: 7420))
        #expect(c.ops == HostPort(host: "127.0.0.1", port: 7421))
        #expect(c.redis == nil && c.unixSocketPath == nil && c.redisServer == nil && c.configFile == nil)
        #expect(c.dataDirectory == "./bursar-data")
        #expect(c.deadline == .milliseconds(50) && c.reservationTTL == .seconds(900) && c.cacheTTL == .milliseconds(5_000) && c.negativeCacheTTL == .milliseconds(1_000))
        #expect(c.redisConnections == 2 && c.threads >= 1 && c.logLevel == .info && c.shutdownTimeout == .seconds(10))
        #expect(c.maxConnections == 4096 && c.maxInFlight == 8192 && c.maxInFlightPerConnection == 1024)
        #expect(c.idleTimeout == .seconds(300) && c.frameTimeout == .seconds(10) && c.writeTimeout == .seconds(10))
        #expect(c.maxUnknownKeysPerMinute == 600)
        #expect(BursardConfiguration.options.allSatisfy { c.sources[$0.name] == .builtInDefault })
    }

    @Test("command line beats environment beats config file beats default, setting by setting")
    func precedence() throws {
        let path = try file("""
            # bursard.conf
            listen = 10.0.0.1:1000
            deadline-ms = 100

            threads = 3
            log-level = debug
            """)
        let c = try resolve(
            ["listen": "10.0.0.3:3000", "config": path, "listen-allow-insecure-remote": "true"],
            env: ["BURSARD_LISTEN": "10.0.0.2:2000", "BURSARD_DEADLINE_MS": "200", "BURSARD_REDIS": "redis://10.0.0.9:6380/2"])
        #expect(c.listen == HostPort(host: "10.0.0.3", port: 3000))
        #expect(c.sources["listen"] == .commandLine)
        #expect(c.deadline == .milliseconds(200))
        #expect(c.sources["deadline-ms"] == .environment(variable: "BURSARD_DEADLINE_MS"))
        #expect(c.redis == .server(.tcp(host: "10.0.0.9", port: 6380, db: 2)))
        #expect(c.threads == 3)
        #expect(c.sources["threads"] == .file(path: path, line: 5))
        #expect(c.logLevel == .debug)
        #expect(c.sources["log-level"] == .file(path: path, line: 6))
        #expect(c.redisConnections == 2)
        #expect(c.sources["redis-connections"] == .builtInDefault)
        #expect(c.configFile == path)
    }

    @Test("BURSARD_CONFIG names the file; --config overrides it")
    func configFileSources() throws {
        let a = try file("threads = 4\n")
        let b = try file("threads = 5\n")
        #expect(try resolve(env: ["BURSARD_CONFIG": a]).threads == 4)
        #expect(try resolve(["config": b], env: ["BURSARD_CONFIG": a]).threads == 5)
        let missing = NSTemporaryDirectory() + "nope-\(UUID().uuidString).conf"
        let message = refusal { () throws(ConfigurationError) in try resolve(env: ["BURSARD_CONFIG": missing]) }
        #expect(message.contains("--config '\(missing)' (environment variable BURSARD_CONFIG): cannot read the file"), "\(message)")
    }

    @Test("--stats is --ops under another name, in every source; two names in one source are refused")
    func statsAlias() throws {
        #expect(try resolve(["stats": "127.0.0.1:9000"]).ops.port == 9000)
        #expect(try resolve(env: ["BURSARD_STATS": "127.0.0.1:9001"]).ops.port == 9001)
        #expect(try resolve(["config": try file("stats = 127.0.0.1:9002\n")]).ops.port == 9002)
        // Different sources: precedence decides.
        let c = try resolve(["config": try file("ops = 127.0.0.1:9003\n")], env: ["BURSARD_STATS": "127.0.0.1:9004"])
        #expect(c.ops.port == 9004)
        #expect(c.sources["ops"] == .environment(variable: "BURSARD_STATS"))
        let message = refusal { () throws(ConfigurationError) in try resolve(env: ["BURSARD_OPS": "127.0.0.1:1", "BURSARD_STATS": "127.0.0.1:2"]) }
        #expect(message.contains("--ops (environment variable BURSARD_OPS) and --stats (environment variable BURSARD_STATS) are the same setting"), "\(message)")
        let inFile = try file("ops = 127.0.0.1:1\nstats = 127.0.0.1:2\n")
        #expect(refusal { () throws(ConfigurationError) in try resolve(["config": inFile]) }.contains("\(inFile):2"))
    }

    @Test("a bad value names the flag, the value and its source: command line, variable or file:line")
    func badValues() throws {
        let path = try file("# comment\n\nreservation-ttl = forever\n")
        let cases: [(String, () throws(ConfigurationError) -> BursardConfiguration)] = [
            ("--listen 'nowhere' (command line) is not host:port", { () throws(ConfigurationError) in try resolve(["listen": "nowhere"]) }),
            ("--threads '0' (environment variable BURSARD_THREADS) is outside 1…256", { () throws(ConfigurationError) in try resolve(env: ["BURSARD_THREADS": "0"]) }),
            ("--reservation-ttl 'forever' (config file \(path):3) is not an integer", { () throws(ConfigurationError) in try resolve(["config": path]) }),
            ("--log-level 'loud' (command line) is not one of", { () throws(ConfigurationError) in try resolve(["log-level": "loud"]) }),
            ("--redis 'http://x' (environment variable BURSARD_REDIS) is not a Redis URL", { () throws(ConfigurationError) in try resolve(env: ["BURSARD_REDIS": "http://x"]) }),
            ("--shutdown-timeout '1.2345' (command line)", { () throws(ConfigurationError) in try resolve(["shutdown-timeout": "1.2345"]) }),
            ("--deadline-ms '' (environment variable BURSARD_DEADLINE_MS) is not an integer", { () throws(ConfigurationError) in try resolve(env: ["BURSARD_DEADLINE_MS": ""]) }),
            ("--data-dir '' (command line) must not be empty", { () throws(ConfigurationError) in try resolve(["data-dir": ""]) }),
        ]
        for (expected, body) in cases {
            let message = refusal(body)
            #expect(message.contains(expected), "\(message)")
        }
        // Refused even where a higher source overrides it: it would bite the day that one goes.
        #expect(refusal { () throws(ConfigurationError) in try resolve(["reservation-ttl": "60", "config": path]) }
            .contains("--reservation-ttl 'forever' (config file \(path):3)"))
    }

    @Test("unknown names are refused: a config-file key (with file:line) and a BURSARD_* variable")
    func unknownNames() throws {
        let typo = try file("listen = 127.0.0.1:1\ndeadline_ms = 5\n")
        #expect(refusal { () throws(ConfigurationError) in try resolve(["config": typo]) }
            == "config file \(typo):2: unknown setting 'deadline_ms' (did you mean 'deadline-ms'?)")
        let short = try file("deadline = 5\n")
        #expect(refusal { () throws(ConfigurationError) in try resolve(["config": short]) }.contains("(did you mean 'deadline-ms'?)"))
        let other = try file("colour = blue\n")
        #expect(refusal { () throws(ConfigurationError) in try resolve(["config": other]) }
            .contains("config file \(other):1: unknown setting 'colour'; settings are the flag names without '--': appendfsync, cache-ttl-ms, console-session-ttl, data-dir"))
        let message = refusal { () throws(ConfigurationError) in try resolve(env: ["BURSARD_LISTN": "127.0.0.1:1"]) }
        #expect(message.hasPrefix("unknown environment variable BURSARD_LISTN: bursard reads only "), "\(message)")
        #expect(message.contains("BURSARD_LISTEN") && message.contains("BURSARD_CONFIG"))
    }

    @Test("the file format: comments, blanks, quotes, CRLF; refused: no '=', a repeated name, 'config' itself")
    func fileFormat() throws {
        let known: Set = ["listen", "data-dir", "unix"]
        let parsed = try ConfigurationFile.parse(
            "  # leading blanks\r\nlisten=127.0.0.1:1\r\n\r\ndata-dir = \" /srv/bursar data \"\nunix = /run/a#b.sock\n", path: "f", known: known)
        #expect(parsed.entries == [
            ConfigurationEntry(name: "listen", value: "127.0.0.1:1", source: .file(path: "f", line: 2)),
            ConfigurationEntry(name: "data-dir", value: " /srv/bursar data ", source: .file(path: "f", line: 4)),
            ConfigurationEntry(name: "unix", value: "/run/a#b.sock", source: .file(path: "f", line: 5)),
        ])
        func parseError(_ text: String) -> String {
            do {
                _ = try ConfigurationFile.parse(text, path: "f", known: known)
                return "accepted"
            } catch {
                return error.message
            }
        }
        #expect(parseError("listen 127.0.0.1:1\n") == "config file f:1: expected 'name = value' (a flag name without '--'), found 'listen 127.0.0.1:1'")
        #expect(parseError("listen = a:1\n\nlisten = b:2\n") == "config file f:3: 'listen' is already set on line 1")
        #expect(parseError("config = other.conf\n").hasPrefix("config file f:1: 'config' cannot be set inside a config file"))
        #expect(parseError(" = 5\n") == "config file f:1: a setting name is missing before '='")
    }

    @Test("--shutdown-timeout takes seconds with up to three decimals, exactly")
    func shutdownTimeout() throws {
        for (text, ms) in [("10", 10_000), ("2.5", 2_500), ("0.25", 250), ("0", 0), ("3600", 3_600_000), ("0.001", 1)] as [(String, Int64)] {
            #expect(try resolve(["shutdown-timeout": text]).shutdownTimeout == .milliseconds(ms), "\(text)")
        }
        for text in ["-1", "3600.001", "1.", ".5", "1e3", "abc", "1.2345", " 1"] {
            #expect(refusal { () throws(ConfigurationError) in try resolve(["shutdown-timeout": text]) }
                .contains("is not a number of seconds 0…3600"), "\(text)")
        }
    }

    @Test("the store failure policy: deny by default, allow per limit class, a positive local allowance")
    func storeFailurePolicy() throws {
        let defaults = try resolve([:]).storeFailure
        #expect(defaults.rateLimits == .deny && defaults.spendLimits == .deny && !defaults.admitsLocally)
        let c = try resolve(["on-store-failure-rate": "allow", "local-allowance": "20"]).storeFailure
        #expect(c.rateLimits == .allow && c.spendLimits == .deny && c.localAllowancePerKeyPerMinute == 20 && c.admitsLocally)
        #expect(refusal { () throws(ConfigurationError) in try resolve(["on-store-failure-spend": "open"]) }
            == "--on-store-failure-spend 'open' (command line) is not deny or allow")
        #expect(refusal { () throws(ConfigurationError) in try resolve(["local-allowance": "0"]) }.contains("is outside 1…1000000"))
    }

    @Test("the overload bounds: counts in range, timeouts in seconds with up to three decimals, 0 turns off only the idle timeout and the throttle")
    func overloadBounds() throws {
        let c = try resolve(
            ["max-connections": "10", "max-in-flight": "20", "idle-timeout": "0", "frame-timeout": "2.5"],
            env: ["BURSARD_MAX_IN_FLIGHT_PER_CONNECTION": "3", "BURSARD_WRITE_TIMEOUT": "0.25", "BURSARD_MAX_UNKNOWN_KEYS_PER_MINUTE": "0"])
        #expect(c.maxConnections == 10 && c.maxInFlight == 20 && c.maxInFlightPerConnection == 3)
        #expect(c.idleTimeout == .zero && c.frameTimeout == .milliseconds(2_500) && c.writeTimeout == .milliseconds(250))
        #expect(c.maxUnknownKeysPerMinute == 0)
        #expect(c.sources["max-in-flight-per-connection"] == .environment(variable: "BURSARD_MAX_IN_FLIGHT_PER_CONNECTION"))
        for name in ["max-connections", "max-in-flight", "max-in-flight-per-connection"] {
            #expect(refusal { () throws(ConfigurationError) in try resolve([name: "0"]) } == "--\(name) '0' (command line) is outside 1…\(name == "max-in-flight" ? "10000000" : "1000000")")
            #expect(refusal { () throws(ConfigurationError) in try resolve([name: "many"]) }.hasSuffix("is not an integer"))
        }
        #expect(refusal { () throws(ConfigurationError) in try resolve(["max-unknown-keys-per-minute": "-1"]) }.contains("is outside 0…"))
        for name in ["frame-timeout", "write-timeout"] {
            #expect(refusal { () throws(ConfigurationError) in try resolve([name: "0"]) }.contains("is not a number of seconds 0.001…86400"))
        }
        for text in ["-1", "86400.001", "1.2345", "x"] {
            #expect(refusal { () throws(ConfigurationError) in try resolve(["idle-timeout": text]) }.contains("is not a number of seconds 0…86400"), "\(text)")
        }
    }

    @Test("host:port parsing, IPv6 included")
    func hostPort() {
        #expect(HostPort(parsing: "[::1]:7420") == HostPort(host: "::1", port: 7420))
        #expect(HostPort(parsing: "[::1]:7420")?.description == "[::1]:7420")
        #expect(HostPort(parsing: "0.0.0.0:0") == HostPort(host: "0.0.0.0", port: 0))
        for bad in ["nowhere", ":80", "h:", "h:65536", "h:-1", "h:８０"] { #expect(HostPort(parsing: bad) == nil, "\(bad)") }
    }

    @Test("the ops port refuses a non-loopback address without TLS unless --ops-allow-insecure-remote true; loopback needs neither")
    func opsExposure() throws {
        let message = refusal { () throws(ConfigurationError) in try resolve(["ops": "0.0.0.0:7421"]) }
        #expect(message.contains("--ops 0.0.0.0:7421 (command line) is not a loopback address"), "\(message)")
        #expect(message.contains("--ops-allow-insecure-remote true") && message.contains("--ops-tls-cert and --ops-tls-key"), "\(message)")
        for host in ["0.0.0.0:1", "10.1.2.3:1", "[::]:1", "example.test:1", "128.0.0.1:1", "127.0.0.1.nip.io:1"] {
            #expect(refusal { () throws(ConfigurationError) in try resolve(["ops": host]) }.contains("is not a loopback address"), "\(host)")
        }
        for host in ["127.0.0.1:1", "127.8.9.10:1", "[::1]:1", "localhost:1", "LOCALHOST:1"] {
            #expect(try resolve(["ops": host]).opsAllowInsecureRemote == false, "\(host)")
        }
        // The flag, from any source, lets it start in clear text.
        #expect(try resolve(["ops": "0.0.0.0:7421", "ops-allow-insecure-remote": "true"]).opsAllowInsecureRemote)
        #expect(try resolve(env: ["BURSARD_OPS": "0.0.0.0:7421", "BURSARD_OPS_ALLOW_INSECURE_REMOTE": "true"]).ops.host == "0.0.0.0")
        #expect(refusal { () throws(ConfigurationError) in try resolve(["ops": "0.0.0.0:7421", "ops-allow-insecure-remote": "false"]) }
            .contains("is not a loopback address"))
        #expect(refusal { () throws(ConfigurationError) in try resolve(["ops-allow-insecure-remote": "yes"]) }
            == "--ops-allow-insecure-remote 'yes' (command line) is not true or false")
        // TLS makes a remote address fine; one TLS file without the other is refused.
        let tls = try resolve(["ops": "0.0.0.0:7421", "ops-tls-cert": "/etc/bursar/ops.pem", "ops-tls-key": "/etc/bursar/ops.key"])
        #expect(tls.opsTLS?.certificate == "/etc/bursar/ops.pem" && tls.opsTLS?.key == "/etc/bursar/ops.key")
        #expect(refusal { () throws(ConfigurationError) in try resolve(["ops-tls-cert": "/etc/bursar/ops.pem"]) }
            == "--ops-tls-cert and --ops-tls-key go together: give both (PEM files) or neither")
    }

    @Test("the data plane refuses a non-loopback --listen without mutual TLS, and a non-loopback --grpc, unless --listen-allow-insecure-remote true")
    func dataPlaneExposure() throws {
        let message = refusal { () throws(ConfigurationError) in try resolve(["listen": "0.0.0.0:7420"]) }
        #expect(message.hasPrefix("--listen 0.0.0.0:7420 (command line) is not a loopback address and the data plane has no mutual TLS"), "\(message)")
        #expect(message.contains("--listen-tls-cert, --listen-tls-key and --listen-tls-client-ca") && message.contains("--listen-allow-insecure-remote true"))
        for host in ["0.0.0.0:1", "10.1.2.3:1", "[::]:1", "example.test:1", "128.0.0.1:1"] {
            #expect(refusal { () throws(ConfigurationError) in try resolve(["listen": host]) }.contains("is not a loopback address"), "\(host)")
            let grpc = refusal { () throws(ConfigurationError) in try resolve(["grpc": host]) }
            #expect(grpc.hasPrefix("--grpc \(host) (command line) is not a loopback address and the gRPC front door authenticates no one"), "\(grpc)")
        }
        for host in ["127.0.0.1:1", "[::1]:1", "localhost:1"] {
            #expect(try resolve(["listen": host, "grpc": host]).listenAllowInsecureRemote == false, "\(host)")
        }
        // From the environment too; the flag, from any source, lets both start.
        #expect(refusal { () throws(ConfigurationError) in try resolve(env: ["BURSARD_LISTEN": "0.0.0.0:7420"]) }
            .hasPrefix("--listen 0.0.0.0:7420 (environment variable BURSARD_LISTEN)"))
        #expect(try resolve(["listen": "0.0.0.0:7420", "grpc": "0.0.0.0:7422", "listen-allow-insecure-remote": "true"]).listenAllowInsecureRemote)
        #expect(try resolve(env: ["BURSARD_LISTEN": "0.0.0.0:7420", "BURSARD_LISTEN_ALLOW_INSECURE_REMOTE": "true"]).listen.host == "0.0.0.0")
        #expect(refusal { () throws(ConfigurationError) in try resolve(["listen-allow-insecure-remote": "1"]) }
            == "--listen-allow-insecure-remote '1' (command line) is not true or false")
        // Gateway credentials: optional by default, required on request, nothing else.
        #expect(try !resolve([:]).dataPlaneAuthRequired)
        #expect(try resolve(["data-plane-auth": "required"]).dataPlaneAuthRequired)
        #expect(try !resolve(env: ["BURSARD_DATA_PLANE_AUTH": "optional"]).dataPlaneAuthRequired)
        #expect(refusal { () throws(ConfigurationError) in try resolve(["data-plane-auth": "yes"]) }
            == "--data-plane-auth 'yes' (command line) is not optional or required")
        // Mutual TLS makes a remote --listen fine (not --grpc, which has none); the three files go together.
        let tls = try resolve(["listen": "0.0.0.0:7420", "listen-tls-cert": "/etc/bursar/dp.pem", "listen-tls-key": "/etc/bursar/dp.key",
                               "listen-tls-client-ca": "/etc/bursar/gateways.pem"])
        #expect(tls.listenTLS?.certificate == "/etc/bursar/dp.pem" && tls.listenTLS?.key == "/etc/bursar/dp.key" && tls.listenTLS?.clientCA == "/etc/bursar/gateways.pem")
        for partial in [["listen-tls-cert": "/a"], ["listen-tls-cert": "/a", "listen-tls-key": "/b"], ["listen-tls-client-ca": "/c"]] {
            #expect(refusal { () throws(ConfigurationError) in try resolve(partial) }
                == "--listen-tls-cert, --listen-tls-key and --listen-tls-client-ca go together (mutual TLS): give all three (PEM files) or none")
        }
    }

    @Test("every setting has an environment variable BURSARD_<FLAG IN UPPER SNAKE CASE>")
    func environmentNames() throws {
        #expect(ConfigurationOption.environmentVariable(for: "redis-connections") == "BURSARD_REDIS_CONNECTIONS")
        for option in BursardConfiguration.options {
            let sample: String = switch option.name {
            case "listen", "ops", "grpc": "127.0.0.1:1234"
            case "envoy-key-header", "envoy-model-header": "x-api-key"
            case "redis": "redis://127.0.0.1:6390/0"
            case "log-level": "debug"
            case "appendfsync": "always"
            case "on-store-failure-rate", "on-store-failure-spend": "allow"
            case "unix", "grpc-unix", "data-dir", "redis-server", "ops-tls-cert", "ops-tls-key": "/tmp/x"
            case "listen-tls-cert", "listen-tls-key", "listen-tls-client-ca": "/tmp/x"
            case "ops-allow-insecure-remote", "listen-allow-insecure-remote": "true"
            case "data-plane-auth": "required"
            case "history-retention-days": "400"
            default: "7"
            }
            // The TLS files go together: set the others in the file.
            let tlsFiles = ["listen-tls-cert", "listen-tls-key", "listen-tls-client-ca"]
            let partners = ["ops-tls-cert": ["ops-tls-key"], "ops-tls-key": ["ops-tls-cert"]][option.name]
                ?? (tlsFiles.contains(option.name) ? tlsFiles.filter { $0 != option.name } : [])
            let config = partners.isEmpty ? [:] : ["config": try file(partners.map { "\($0) = /tmp/y\n" }.joined())]
            let c = try resolve(config, env: [option.environmentVariable: sample])
            #expect(c.sources[option.name] == .environment(variable: option.environmentVariable), "\(option.name)")
        }
    }

    // MARK: The bursard process

    @Test("bursard --help lists every flag with its default, the environment variables and the precedence")
    func help() async throws {
        let (code, text) = try await TestBursard.runToExit(["--help"])
        #expect(code == 0)
        for option in BursardConfiguration.options { #expect(text.contains(option.flag), "\(option.flag)") }
        for expected in ["--stats", "--config", "Default: 127.0.0.1:7420", "Default: 10", "BURSARD_REDIS_CONNECTIONS", "Precedence: command line, then environment, then config file, then the built-in default"] {
            #expect(text.split(whereSeparator: \.isWhitespace).joined(separator: " ").contains(expected), "\(expected)")
        }
    }

    @Test("bursard refuses a bad value from the environment or the file at start-up, naming flag and source")
    func processRefusals() async throws {
        let env = try await TestBursard.runToExit(["--redis", "redis://127.0.0.1:1"], environment: ["BURSARD_REDIS_CONNECTIONS": "many"])
        #expect(env.code == 64)
        #expect(env.log.contains("--redis-connections 'many' (environment variable BURSARD_REDIS_CONNECTIONS) is not an integer"), "\(env.log)")
        let path = try file("redis = redis://127.0.0.1:1\nlog-level = chatty\n")
        let fromFile = try await TestBursard.runToExit(["--config", path])
        #expect(fromFile.code == 64)
        #expect(fromFile.log.contains("--log-level 'chatty' (config file \(path):2)"), "\(fromFile.log)")
        let unknown = try await TestBursard.runToExit(["--redis", "redis://127.0.0.1:1"], environment: ["BURSARD_THREAD": "2"])
        #expect(unknown.code == 64)
        #expect(unknown.log.contains("unknown environment variable BURSARD_THREAD"), "\(unknown.log)")
    }

    @Test("a running bursard takes each setting from the highest source that sets it")
    func processPrecedence() async throws {
        let redis = try RedisServerProcess.ephemeral()
        defer { redis.stop() }
        let path = try file("""
            ops = 127.0.0.1:1
            deadline-ms = 777
            shutdown-timeout = 9
            log-level = warning
            """)
        let bursard = try await TestBursard.start(
            ["--config", path, "--stats", "127.0.0.1:0", "--shutdown-timeout", "2.5"],
            environment: ["BURSARD_REDIS": redis.endpoint.description, "BURSARD_LOG_LEVEL": "debug", "BURSARD_SHUTDOWN_TIMEOUT": "4"])
        defer { bursard.stop() }
        let ops = try await bursard.opsPort()
        #expect(ops != 1)
        let log = bursard.log
        #expect(log.contains("shutdown_timeout_ms=2500"), "\(log)")
        #expect(log.contains("redis=\(redis.endpoint.description)"))
        #expect(log.contains(" debug "), "BURSARD_LOG_LEVEL beats the file")
        #expect(log.contains("deadline-ms=config file \(path):2"))
        #expect(log.contains("ops=command line"))
        #expect(log.contains("log-level=environment variable BURSARD_LOG_LEVEL"))
    }
}
