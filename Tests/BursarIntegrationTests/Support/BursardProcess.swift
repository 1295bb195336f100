import BursarClient
import BursarRedis
import Foundation
import Testing

/// A real `bursard` process, built by `swift build` next to the test runner.
final class BursardProcess: Sendable {
    let child: ChildProcess
    let port: Int
    /// The ops port as given (0: bursard picked one and it is not known here).
    let opsPort: Int
    let logPath: String

    /// The built `bursard`: `$BURSAR_TEST_BURSARD_BINARY`, else beside the test bundle in the build directory.
    static func binary() throws -> String {
        if let explicit = ProcessInfo.processInfo.environment["BURSAR_TEST_BURSARD_BINARY"] { return explicit }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("bursard").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        let fallback = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../../.build/debug/bursard").standardizedFileURL.path
        if FileManager.default.isExecutableFile(atPath: fallback) { return fallback }
        Issue.record("bursard binary not found; run `swift build` before `swift test --skip-build` (or set BURSAR_TEST_BURSARD_BINARY)")
        throw CancellationError()
    }

    /// Starts bursard against an existing Redis on a free loopback port and waits until it answers PING.
    /// `environment`: the child's whole environment (nil: this process's).
    convenience init(redis: RedisEndpoint, opsPort: Int = 0, extraArguments: [String] = [], environment: [String: String]? = nil) async throws {
        try await self.init(redisURL: redis.description, opsPort: opsPort, extraArguments: extraArguments, environment: environment)
    }

    /// Starts bursard against the Redis a `--redis` URL names (a cluster, sentinels).
    init(redisURL: String, opsPort: Int = 0, extraArguments: [String] = [], environment: [String: String]? = nil) async throws {
        let bin = try Self.binary()
        var lastError: (any Error)?
        for _ in 0..<5 {
            let port = try RedisServerProcess.freeLoopbackPort()
            let log = NSTemporaryDirectory() + "bursard-\(UUID().uuidString).log"
            let child = try ChildProcess(
                [bin, "--redis", redisURL, "--listen", "127.0.0.1:\(port)", "--ops", "127.0.0.1:\(opsPort)", "--log-level", "info"] + extraArguments,
                logPath: log, environment: environment)
            if try await Self.answersPing(port: port, while: child, attempts: 200) {
                self.child = child
                self.port = port
                self.opsPort = opsPort
                self.logPath = log
                return
            }
            child.terminate()
            lastError = RedisError(.connectionFailed, "bursard did not come up: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        }
        throw lastError!
    }

    func stop() { child.terminate() }

    /// Polls until bursard on `port` answers PING (true), `child` exits, or the attempts (25 ms
    /// apart) run out (false).
    static func answersPing(port: Int, while child: ChildProcess, attempts: Int) async throws -> Bool {
        for _ in 0..<attempts {
            if !child.isRunning { return false }
            if let c = try? await BursarConnection.connect(host: "127.0.0.1", port: port) {
                let answered = (try? await c.ping()) != nil
                await c.close()
                if answered { return true }
            }
            try await Task.sleep(for: .milliseconds(25))
        }
        return false
    }
}
