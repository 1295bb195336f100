import BursarRedis
import Foundation
import Testing

/// The built executables, beside the test bundle in the build directory.
func builtBinary(_ name: String) throws -> String {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent(name).path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    let fallback = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build/debug/\(name)").standardizedFileURL.path
    if FileManager.default.isExecutableFile(atPath: fallback) { return fallback }
    throw MatrixError("\(name) not found; run `swift build` before `swift test --skip-build`")
}

@Suite("The product page's flow runs with bursarctl alone")
struct ProductFlowTests {
    @Test("deploy/product-flow.sh (the walk-through of docs/roles-and-admin-api.md) passes against a real bursard: bootstrap → projects → member → own key → CHECK allowed → revoke → CHECK denied")
    func productFlow() async throws {
        let redis = try RedisServerProcess.ephemeral()
        defer { redis.stop() }
        let dataPort = try RedisServerProcess.freeLoopbackPort()
        let opsPort = try RedisServerProcess.freeLoopbackPort()
        let bursardLog = NSTemporaryDirectory() + "bursard-flow-\(UUID().uuidString).log"
        let bursard = try ChildProcess(
            [try builtBinary("bursard"), "--redis", redis.endpoint.description, "--listen", "127.0.0.1:\(dataPort)", "--ops", "127.0.0.1:\(opsPort)"],
            logPath: bursardLog)
        defer { bursard.terminate() }
        // Up when bursard logs that its ops port listens.
        var up = false
        for _ in 0..<200 where !up {
            try await Task.sleep(for: .milliseconds(25))
            up = (try? String(contentsOfFile: bursardLog, encoding: .utf8))?.contains("ops port listening") == true
        }
        #expect(up, "bursard did not come up: \((try? String(contentsOfFile: bursardLog, encoding: .utf8)) ?? "")")

        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../deploy/product-flow.sh").standardizedFileURL.path
        let log = NSTemporaryDirectory() + "product-flow-\(UUID().uuidString).log"
        var env = ProcessInfo.processInfo.environment
        env["BURSARCTL"] = try builtBinary("bursarctl")
        env["BURSAR_SERVER"] = "http://127.0.0.1:\(opsPort)"
        env["BURSAR_DATA_PLANE"] = "127.0.0.1:\(dataPort)"
        env["BURSAR_TOKEN"] = nil
        env["BURSAR_ORG"] = nil
        let flow = try ChildProcess(["/bin/bash", script], logPath: log, environment: env)
        // Poll rather than block: a blocked cooperative thread stalls every other test on 2 cores.
        while flow.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(flow.exitCode == 0, "product-flow.sh failed:\n\(output)")
        #expect(output.contains("decision:        allowed"))
        #expect(output.contains("reason:          model_not_allowed"))
        #expect(output.contains("reason:          key_revoked"))
        #expect(output.contains("product flow: ok"))
    }
}
