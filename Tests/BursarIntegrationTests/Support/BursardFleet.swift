import BursarRedis
import BursarStore
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Several real bursard processes on one Redis, each with an ops port of its own, their scripts
/// on each organization's frozen test clock (`BURSAR_TEST_FROZEN_CLOCK=1`, debug builds).
final class BursardFleet: Sendable {
    let members: [BursardProcess]

    private init(members: [BursardProcess]) { self.members = members }

    /// Starts `count` bursards with `arguments`, all at once.
    static func start(redis: RedisEndpoint, count: Int = 3, arguments: [String]) async throws -> BursardFleet {
        let environment = TestBursard.environment(["BURSAR_TEST_FROZEN_CLOCK": "1"])
        let started = try await withThrowingTaskGroup(of: (Int, BursardProcess).self) { group in
            for i in 0..<count {
                group.addTask {
                    let ops = try RedisServerProcess.freeLoopbackPort()
                    return (i, try await BursardProcess(redis: redis, opsPort: ops, extraArguments: arguments, environment: environment))
                }
            }
            var all: [(Int, BursardProcess)] = []
            do {
                for try await member in group { all.append(member) }
            } catch {
                for (_, b) in all { b.stop() }
                throw error
            }
            return all.sorted { $0.0 < $1.0 }.map(\.1)
        }
        return BursardFleet(members: started)
    }

    /// Data-plane ports, in member order.
    var ports: [Int] { members.map(\.port) }

    /// The members still running.
    var live: [BursardProcess] { members.filter(\.child.isRunning) }

    func stop() { for b in members { b.stop() } }

    /// The ops port's `/metrics` of `member`, or nil when it does not answer.
    static func metrics(_ member: BursardProcess) async -> [String: Double]? {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(member.opsPort)/metrics")!)
        request.timeoutInterval = 3
        guard let (data, _) = try? await URLSession.shared.data(for: request) else { return nil }
        var values: [String: Double] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            let series = line[..<space]
            let name = series.firstIndex(of: "{").map { String(series[..<$0]) } ?? String(series)
            values[name, default: 0] += value
        }
        return values
    }

    /// Sums a metric over the live members.
    func total(_ name: String) async -> Int {
        var sum = 0.0
        for b in live { sum += await Self.metrics(b)?[name] ?? 0 }
        return Int(sum)
    }

    /// What the wait for resolution found.
    struct Resolution: Sendable, CustomStringConvertible {
        var finished: Bool
        var elapsed: Duration
        /// What was still pending at the last poll.
        var pending: String
        /// Members whose `/metrics` has no `bursar_unresolved_attempts` (a bursard from before issue 16).
        var gaugeMissing: [Int]

        var description: String {
            (finished ? "resolved in \(elapsed)" : "NOT resolved after \(elapsed): \(pending)")
                + (gaugeMissing.isEmpty ? "" : "; bursard #\(gaugeMissing.map(String.init).joined(separator: ", #")) export no bursar_unresolved_attempts")
        }
    }

    /// Waits until, for two polls in a row, every live member reports `bursar_unresolved_attempts`
    /// and `bursar_local_admissions_pending` 0 and Redis holds no undelivered admission of `org`
    /// (`Keyspace.undelivered`). A member without the first gauge counts as 0 there and is reported.
    func waitForResolution(redis: RedisClient, org: UInt64, within limit: Duration = .seconds(30)) async -> Resolution {
        let clock = ContinuousClock()
        let started = clock.now
        var calm = 0
        var missing = Set<Int>()
        var pending = ""
        while clock.now - started < limit {
            var busy: [String] = []
            for (i, b) in members.enumerated() where b.child.isRunning {
                guard let m = await Self.metrics(b) else {
                    busy.append("bursard #\(i): ops port did not answer")
                    continue
                }
                if m["bursar_unresolved_attempts"] == nil { missing.insert(i) }
                let unresolved = Int(m["bursar_unresolved_attempts"] ?? 0), local = Int(m["bursar_local_admissions_pending"] ?? 0)
                if unresolved != 0 || local != 0 { busy.append("bursard #\(i): unresolved_attempts=\(unresolved) local_admissions_pending=\(local)") }
            }
            do {
                let undelivered = try await redis.send(RedisCommand("SCARD", Keyspace.undelivered(org))).int ?? 0
                if undelivered != 0 { busy.append("Redis \(Keyspace.undelivered(org)): \(undelivered) undelivered admissions") }
            } catch {
                busy.append("Redis did not answer SCARD: \(error)")
            }
            if busy.isEmpty {
                calm += 1
                if calm == 2 { return Resolution(finished: true, elapsed: clock.now - started, pending: "", gaugeMissing: missing.sorted()) }
            } else {
                calm = 0
                pending = busy.joined(separator: "; ")
            }
            try? await Task.sleep(for: .milliseconds(250))
        }
        return Resolution(finished: false, elapsed: clock.now - started, pending: pending, gaugeMissing: missing.sorted())
    }
}
