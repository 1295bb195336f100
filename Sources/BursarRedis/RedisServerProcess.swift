import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A `redis-server` child process: bursard's embedded store, and the real Redis that tests start.
public final class RedisServerProcess: @unchecked Sendable {
    /// When the AOF is fsynced to disk (Redis's `appendfsync`).
    public enum AppendFsync: String, Sendable, Hashable, CaseIterable {
        /// Once a second, in the background: a crash of the machine loses at most about the last
        /// second of writes; a crash of redis-server alone loses nothing (the kernel has them).
        case everysec
        /// Before every write is acknowledged: nothing acknowledged is ever lost, at the price of
        /// an fsync per write (batched by Redis per event-loop cycle).
        case always
    }

    /// How the child listens.
    public enum Listen: Sendable, Hashable {
        /// A private unix socket (TCP disabled).
        case unixSocket(path: String)
        /// TCP on 127.0.0.1 at this port.
        case tcp(port: Int)
    }

    /// The `redis-server` binary.
    public let binary: String
    /// The working directory (AOF and config live here).
    public let directory: String
    /// How it listens.
    public let listen: Listen
    /// AOF fsync policy (when started with `appendOnly`).
    public let appendFsync: AppendFsync
    /// More `redis.conf` lines (cluster mode, for instance).
    public let extraConfig: [String]
    private let lock = NSLock()
    private var child: ChildProcess?

    /// Finds `redis-server`: the explicit path, else the first on `$PATH`.
    /// Throws an error that names the fix when it is missing.
    public static func locate(explicit: String? = nil) throws(RedisError) -> String {
        let fm = FileManager.default
        if let explicit {
            guard fm.isExecutableFile(atPath: explicit) else {
                throw RedisError(.connectionFailed, "redis-server binary '\(explicit)' is not an executable file")
            }
            return explicit
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let dirs = path.split(separator: ":").map(String.init)
        for dir in dirs where fm.isExecutableFile(atPath: dir + "/redis-server") { return dir + "/redis-server" }
        throw RedisError(
            .connectionFailed,
            "redis-server was not found on PATH. Install it (Debian/Ubuntu: sudo apt-get install -y redis-server), or pass --redis redis://HOST:PORT to use a running server")
    }

    /// A child that is not started yet.
    public init(binary: String, directory: String, listen: Listen, appendFsync: AppendFsync = .everysec, extraConfig: [String] = []) {
        self.binary = binary
        self.directory = directory
        self.listen = listen
        self.appendFsync = appendFsync
        self.extraConfig = extraConfig
    }

    /// Where to connect to it.
    public var endpoint: RedisEndpoint {
        switch listen {
        case .unixSocket(let path): return .unix(path: path, db: 0)
        case .tcp(let port): return .tcp(host: "127.0.0.1", port: port, db: 0)
        }
    }

    /// The process id while running.
    public var pid: Int32? { lock.withLock { child }?.pid }

    /// Writes the config, starts the child and waits until it answers PING.
    ///
    /// Persistence: AOF (fsync per `appendFsync`); no RDB snapshots. A restart in the same
    /// directory replays the AOF.
    public func start(appendOnly: Bool = true, readyTimeoutMs: Int = 10_000) throws(RedisError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw RedisError(.connectionFailed, "cannot create data directory \(directory): \(error)")
        }
        var config = [
            "bind 127.0.0.1", "protected-mode yes", "daemonize no", "dir \(directory)", "save \"\"",
            "appendonly \(appendOnly ? "yes" : "no")", "appendfsync \(appendFsync.rawValue)", "logfile \(directory)/redis.log",
            // A replica's first sync starts at once, not after Redis's default 5 s wait for more
            // replicas to share a diskless transfer: a failover soon after start must not promote
            // a replica that never received anything.
            "repl-diskless-sync-delay 0",
        ]
        switch listen {
        case .unixSocket(let path): config += ["port 0", "unixsocket \(path)", "unixsocketperm 700"]
        case .tcp(let port): config += ["port \(port)"]
        }
        config += extraConfig
        let configPath = directory + "/redis.conf"
        do {
            try config.joined(separator: "\n").appending("\n").write(toFile: configPath, atomically: true, encoding: .utf8)
        } catch {
            throw RedisError(.connectionFailed, "cannot write \(configPath): \(error)")
        }
        let spawned = try ChildProcess([binary, configPath], ownProcessGroup: true)
        lock.withLock { child = spawned }
        let deadline = Date().addingTimeInterval(Double(readyTimeoutMs) / 1000)
        while Date() < deadline {
            if !isRunning {
                let log = (try? String(contentsOfFile: directory + "/redis.log", encoding: .utf8))?.split(separator: "\n").suffix(3).joined(separator: " | ") ?? ""
                throw RedisError(.connectionFailed, "redis-server exited (wait status \(spawned.waitStatus)) during start-up: \(log)")
            }
            if let c = try? RedisConnection(endpoint: endpoint, connectTimeoutMs: 100, ioTimeoutMs: 500),
               let reply = try? c.pipeline([RedisCommand("PING")]), reply.first == .status("PONG") {
                return
            }
            usleep(20_000)
        }
        stop()
        throw RedisError(.connectionFailed, "redis-server did not answer PING within \(readyTimeoutMs) ms")
    }

    /// Sends SIGTERM (Redis flushes the AOF and exits) and waits up to `timeoutMs`, then SIGKILL.
    public func stop(timeoutMs: Int = 5_000) {
        lock.withLock { child }?.terminate(timeoutMs: timeoutMs)
    }

    /// Sends a signal to the child (tests: SIGSTOP/SIGCONT/SIGKILL).
    public func signal(_ sig: Int32) {
        lock.withLock { child }?.signal(sig)
    }

    /// True while the child runs.
    public var isRunning: Bool { pid != nil }

    /// Waits for the child to exit (after `signal(SIGKILL)`).
    public func waitForExit() {
        lock.withLock { child }?.waitForExit()
    }

    deinit { stop() }

    /// Starts a throwaway Redis on a free loopback TCP port (the kernel picks it), in a fresh
    /// temporary directory. Retries if another process takes the port first.
    public static func ephemeral(binary: String? = nil, appendOnly: Bool = false, appendFsync: AppendFsync = .everysec) throws(RedisError) -> RedisServerProcess {
        let bin = try locate(explicit: binary)
        var lastError = RedisError(.connectionFailed, "no attempt made")
        for _ in 0..<5 {
            let port = try freeLoopbackPort()
            let dir = NSTemporaryDirectory() + "bursar-redis-\(UUID().uuidString)"
            let server = RedisServerProcess(binary: bin, directory: dir, listen: .tcp(port: port), appendFsync: appendFsync)
            do {
                try server.start(appendOnly: appendOnly)
                return server
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    /// Every port `freeLoopbackPort()` has handed out in this process.
    private static let handedOut = Mutex<Set<Int>>([])

    /// A TCP port on 127.0.0.1 that was free a moment ago, and that this process has not been
    /// handed before: a test that stops a server and starts it again on its port (or expects
    /// nothing to answer there) must not find another test's server on it meanwhile — tests run
    /// in parallel in one process, and the kernel gives a port just closed to the next asker.
    public static func freeLoopbackPort() throws(RedisError) -> Int {
        for _ in 0..<64 {
            let port = try kernelFreeLoopbackPort()
            if handedOut.withLock({ $0.insert(port).inserted }) { return port }
        }
        throw RedisError(.connectionFailed, "no loopback port this process has not used already")
    }

    private static func kernelFreeLoopbackPort() throws(RedisError) -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RedisError(.connectionFailed, "socket() failed") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { ptr in
            ptr.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bind(fd, sa, len) == 0 && getsockname(fd, sa, &len) == 0
            }
        }
        guard ok else { throw RedisError(.connectionFailed, "cannot bind a loopback port") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
