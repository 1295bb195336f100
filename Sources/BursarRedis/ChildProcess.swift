import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn`, with a clean signal mask, reaped with `waitpid`.
///
/// Not Foundation's `Process`: a child must not inherit the parent thread's blocked signals
/// (runtime threads block SIGTERM; a child inheriting that ignores our SIGTERM and so never
/// flushes its AOF), and supervision needs a non-blocking "has it exited?".
public final class ChildProcess: @unchecked Sendable {
    private let lock = NSLock()
    private var child: pid_t?
    private var status: Int32 = 0
    /// The argv it was started with.
    public let argv: [String]

    /// Starts `argv[0]` (a path) with `argv`, stdout and stderr appended to `logPath` (or
    /// /dev/null), in `environment` (default: this process's). With `ownProcessGroup`, the child
    /// leads a process group of its own, so a terminal's Ctrl-C (or a supervisor signalling the
    /// parent's group) reaches only the parent, which then stops the child in order.
    public init(_ argv: [String], logPath: String? = nil, environment: [String: String]? = nil, ownProcessGroup: Bool = false) throws(RedisError) {
        self.argv = argv
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        let out = logPath ?? "/dev/null"
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing but stdin/stdout/stderr may reach the child: an inherited listener or client
        // socket would keep that connection (and port) open for as long as the child lives.
        // glibc ≥ 2.34 closes the rest in the child; older ones get close-on-exec marks instead.
        if let closeFrom = Self.addCloseFrom {
            _ = closeFrom(&actions, 3)
        } else {
            Self.markDescriptorsCloseOnExec()
        }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGTERM, SIGINT, SIGPIPE, SIGHUP] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if ownProcessGroup {
            posix_spawnattr_setpgroup(&attr, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attr, Int16(flags))
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for a in cArgs { free(a) } }
        var envp: [UnsafeMutablePointer<CChar>?] = (environment ?? ProcessInfo.processInfo.environment)
            .map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for e in envp { free(e) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attr, &cArgs, &envp)
        guard rc == 0 else { throw RedisError(.connectionFailed, "cannot start \(argv[0]): \(String(cString: strerror(rc)))") }
        child = pid
    }

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32

    /// `posix_spawn_file_actions_addclosefrom_np`, which Swift's Glibc module hides behind _GNU_SOURCE.
    private static let addCloseFrom: AddCloseFrom? = {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: AddCloseFrom.self)
    }()

    private static func markDescriptorsCloseOnExec() {
        guard let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
        for name in fds {
            if let fd = Int32(name), fd > 2 {
                let flags = fcntl(fd, F_GETFD)
                if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
            }
        }
    }

    /// The pid while the child runs.
    public var pid: Int32? {
        lock.withLock {
            if let c = child {
                var s: Int32 = 0
                if waitpid(c, &s, WNOHANG) == c {
                    status = s
                    child = nil
                }
            }
            return child
        }
    }

    /// True while the child runs.
    public var isRunning: Bool { pid != nil }

    /// The raw wait status once exited.
    public var waitStatus: Int32 { lock.withLock { status } }

    /// The exit code once exited normally, else nil.
    public var exitCode: Int32? {
        let s = waitStatus
        return (s & 0x7f) == 0 ? (s >> 8) & 0xff : nil
    }

    /// Sends a signal.
    public func signal(_ sig: Int32) {
        if let pid { kill(pid, sig) }
    }

    /// Blocks until the child exits.
    public func waitForExit() {
        guard let c = lock.withLock({ child }) else { return }
        var s: Int32 = 0
        if waitpid(c, &s, 0) == c {
            lock.withLock {
                status = s
                child = nil
            }
        }
    }

    /// SIGTERM (after SIGCONT, in case it is paused), then SIGKILL after `timeoutMs`.
    public func terminate(timeoutMs: Int = 5_000) {
        guard let p = pid else { return }
        kill(p, SIGCONT)
        kill(p, SIGTERM)
        var waited = 0
        while isRunning && waited < timeoutMs * 1000 {
            usleep(2_000)
            waited += 2_000
        }
        if isRunning {
            kill(p, SIGKILL)
            waitForExit()
        }
    }

    deinit {
        if let c = child {
            kill(c, SIGKILL)
            var s: Int32 = 0
            waitpid(c, &s, 0)
        }
    }
}
