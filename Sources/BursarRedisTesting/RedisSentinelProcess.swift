public import BursarRedis
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A throwaway Sentinel setup on loopback: a master, `replicas` replicas of it and `sentinels`
/// redis-server processes in sentinel mode watching it under `masterName` (quorum: a majority).
/// For tests of failover; `masterAddress()` asks a sentinel where the master is now.
public final class RedisSentinelProcess: @unchecked Sendable {
    /// The data nodes: the first is the master as started.
    public let dataNodes: [RedisServerProcess]
    /// The sentinels' ports.
    public let sentinelPorts: [Int]
    /// The name the sentinels know the master by.
    public let masterName: String
    private let sentinels: [ChildProcess]

    /// Starts everything and waits until every sentinel sees the master and all its replicas, and
    /// every replica has finished its first sync.
    public init(replicas: Int = 1, sentinels count: Int = 3, masterName: String = "bursar", downAfterMs: Int = 1_000, binary: String? = nil) throws(RedisError) {
        let bin = try RedisServerProcess.locate(explicit: binary)
        let base = NSTemporaryDirectory() + "bursar-sentinel-\(UUID().uuidString)"
        self.masterName = masterName
        var data: [RedisServerProcess] = []
        var children: [ChildProcess] = []
        var ports: [Int] = []
        do throws(RedisError) {
            let masterPort = try RedisServerProcess.freeLoopbackPort()
            let master = RedisServerProcess(binary: bin, directory: "\(base)/data-0", listen: .tcp(port: masterPort))
            try master.start(appendOnly: false)
            data.append(master)
            for i in 1...max(1, replicas) where replicas > 0 {
                let node = RedisServerProcess(
                    binary: bin, directory: "\(base)/data-\(i)", listen: .tcp(port: try RedisServerProcess.freeLoopbackPort()),
                    extraConfig: ["replicaof 127.0.0.1 \(masterPort)"])
                try node.start(appendOnly: false)
                data.append(node)
            }
            let quorum = count / 2 + 1
            for i in 0..<count {
                let port = try RedisServerProcess.freeLoopbackPort()
                let dir = "\(base)/sentinel-\(i)"
                do {
                    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                    // Sentinel rewrites its config file, so it gets one of its own.
                    try [
                        "bind 127.0.0.1", "port \(port)", "daemonize no", "dir \(dir)", "logfile \(dir)/sentinel.log",
                        "sentinel monitor \(masterName) 127.0.0.1 \(masterPort) \(quorum)",
                        "sentinel down-after-milliseconds \(masterName) \(downAfterMs)",
                        "sentinel failover-timeout \(masterName) \(max(3 * downAfterMs, 3_000))",
                    ].joined(separator: "\n").appending("\n").write(toFile: "\(dir)/sentinel.conf", atomically: true, encoding: .utf8)
                } catch {
                    throw RedisError(.connectionFailed, "cannot write the sentinel config in \(dir): \(error)")
                }
                children.append(try ChildProcess([bin, "\(dir)/sentinel.conf", "--sentinel"], ownProcessGroup: true))
                ports.append(port)
            }
            dataNodes = data
            sentinels = children
            sentinelPorts = ports
            try waitUntilSettled(replicas: replicas)
        } catch {
            for child in children { child.terminate() }
            for node in data { node.stop() }
            throw error
        }
    }

    deinit { stop() }

    /// Stops every process.
    public func stop() {
        for child in sentinels { child.terminate() }
        for node in dataNodes { node.stop() }
    }

    /// The `--redis` URL naming this setup through its sentinels.
    public var url: String {
        "redis+sentinel://" + sentinelPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",") + "/\(masterName)"
    }

    /// Where the sentinel on `sentinelPorts[index]` says the master is.
    public func masterAddress(askingSentinel index: Int = 0) throws(RedisError) -> (host: String, port: Int) {
        let c = try RedisConnection(endpoint: .tcp(host: "127.0.0.1", port: sentinelPorts[index], db: 0), connectTimeoutMs: 1_000, ioTimeoutMs: 2_000)
        let reply = try c.pipeline([RedisCommand("SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName)])[0]
        guard let pair = reply.array, pair.count == 2, let host = pair[0].string, let port = pair[1].int else {
            throw RedisError(.unexpectedReply, "SENTINEL GET-MASTER-ADDR-BY-NAME answered \(reply)")
        }
        return (host, Int(port))
    }

    private func waitUntilSettled(replicas: Int, timeoutMs: Int = 30_000) throws(RedisError) {
        let deadline = Date().addingTimeInterval(Double(timeoutMs) / 1000)
        while Date() < deadline {
            var settled = true
            for port in sentinelPorts {
                guard let c = try? RedisConnection(endpoint: .tcp(host: "127.0.0.1", port: port, db: 0), connectTimeoutMs: 500, ioTimeoutMs: 1_000),
                      let reply = try? c.pipeline([RedisCommand("SENTINEL", "REPLICAS", masterName)])[0],
                      let list = reply.array, list.count == replicas
                else {
                    settled = false
                    break
                }
            }
            // And each replica has finished its first sync: promoting one that has not would
            // lose the whole data set, not what asynchronous replication had not carried yet.
            for node in dataNodes.dropFirst() where settled {
                guard case .tcp(let port) = node.listen,
                      let c = try? RedisConnection(endpoint: .tcp(host: "127.0.0.1", port: port, db: 0), connectTimeoutMs: 500, ioTimeoutMs: 1_000),
                      let info = (try? c.pipeline([RedisCommand("INFO", "replication")]))?.first?.string,
                      info.contains("master_link_status:up")
                else {
                    settled = false
                    break
                }
            }
            if settled { return }
            usleep(100_000)
        }
        throw RedisError(.connectionFailed, "the sentinels did not all see the master and its \(replicas) replicas, each synced, within \(timeoutMs) ms")
    }
}
