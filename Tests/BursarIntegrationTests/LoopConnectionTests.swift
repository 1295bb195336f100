@testable import BursarRedis
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// The event loops' own Redis connections (`LoopConnections`), against a real redis-server: each
/// loop's requests go through its own connection and complete on it (through the threads while
/// it is being made); a stall, a stop, a restart and a shutdown each end the way the threaded
/// connections' do.
@Suite("Redis connections on event loops")
struct LoopConnectionTests {
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)

    static func client(_ endpoint: RedisEndpoint, ioTimeoutMs: Int = 5_000) -> RedisClient {
        var logger = Logger(label: "test.loop-redis")
        logger.logLevel = .critical
        return RedisClient(
            configuration: RedisClientConfiguration(endpoint: endpoint, ioTimeoutMs: ioTimeoutMs, maxBackoffMs: 50, eventLoops: group), logger: logger)
    }

    /// Sends `commands` on `loop` (nil: the threads), returning the result and whether the
    /// completion ran on `loop`.
    static func send(_ client: RedisClient, _ commands: [RedisCommand], on loop: (any EventLoop)?, deadline: TimeAmount = .seconds(5))
        async -> (Result<[RedisValue], RedisError>, onLoop: Bool)
    {
        await withCheckedContinuation { c in
            client.submit(commands, deadline: .now() + deadline, on: loop) { result in
                c.resume(returning: (result, loop?.inEventLoop ?? false))
            }
        }
    }

    /// Waits until every loop's connection is made (they connect at start; until then, and
    /// while one is re-made, their requests go through the threads).
    static func ready(_ client: RedisClient) async throws {
        for _ in 0..<500 where client.loopConnectionsReady < 2 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(client.loopConnectionsReady == 2)
    }

    static func clientID(_ client: RedisClient, on loop: (any EventLoop)?) async throws -> Int64 {
        let (result, _) = await send(client, [RedisCommand("CLIENT", "ID")], on: loop)
        return try #require(try result.get()[0].int)
    }

    @Test("a client shut down and let go while its loops' connections close or are still connecting: their late events never touch it (no crash)")
    func shutdownThenRelease() async throws {
        let server = try RedisServerProcess.ephemeral()
        defer { server.stop() }
        for _ in 0..<20 {
            var client: RedisClient? = Self.client(server.endpoint)
            try await Self.ready(client!)
            let (r, _) = await Self.send(client!, [RedisCommand("PING")], on: Self.group.next())
            #expect((try? r.get()) == [.status("PONG")])
            // Shutdown closes the loops' channels; their ends (channelInactive) arrive on the
            // loops after the last reference is gone.
            client!.shutdown()
            client = nil
            try await Task.sleep(for: .milliseconds(20))
        }
        // Let go while its loops are still connecting to a port that refuses: the refusal
        // (connectFailed) arrives after the shutdown closed them and the client is gone.
        let refused = try InvalidationTests.RefusedPort()
        for _ in 0..<50 {
            var client: RedisClient? = Self.client(.tcp(host: "127.0.0.1", port: refused.port, db: 0))
            client!.shutdown()
            client = nil
            try await Task.sleep(for: .milliseconds(5))
        }
        try await Task.sleep(for: .milliseconds(200))
        // Still alive: the loops ran every late event without a use-after-free.
        let last = Self.client(server.endpoint)
        defer { last.shutdown() }
        let (r, _) = await Self.send(last, [RedisCommand("PING")], on: Self.group.next())
        #expect((try? r.get()) == [.status("PONG")])
    }

    @Test("each loop's requests go through a connection of its own and complete on that loop; others go through the threads")
    func ownConnection() async throws {
        let server = try RedisServerProcess.ephemeral()
        defer { server.stop() }
        let client = Self.client(server.endpoint)
        defer { client.shutdown() }
        let loops = Array(Self.group.makeIterator())
        #expect(loops.count == 2)
        try await Self.ready(client)
        let a1 = try await Self.clientID(client, on: loops[0])
        let a2 = try await Self.clientID(client, on: loops[0])
        let b = try await Self.clientID(client, on: loops[1])
        let threaded = try await Self.clientID(client, on: nil)
        #expect(a1 == a2, "one connection per loop, kept")
        #expect(a1 != b && a1 != threaded && b != threaded)
        // A loop outside the group is served by the threads, and completes on its own loop.
        let outside = MultiThreadedEventLoopGroup.singleton.next()
        let (r, onLoop) = await Self.send(client, [RedisCommand("CLIENT", "ID")], on: outside)
        #expect(onLoop)
        #expect(try r.get()[0].int != a1 && r.get()[0].int != b)
        let (r2, onLoop2) = await Self.send(client, [RedisCommand("SET", "k", "v"), RedisCommand("GET", "k")], on: loops[1])
        #expect(onLoop2)
        #expect(try r2.get() == [.status("OK"), .bulk(Array("v".utf8))])
        #expect(client.stats.connected.load(ordering: .relaxed) == 1)
    }

    @Test("requests submitted in one pass of a loop go to Redis as one round trip, in order")
    func onePassOneRoundTrip() async throws {
        let server = try RedisServerProcess.ephemeral()
        defer { server.stop() }
        let client = Self.client(server.endpoint)
        defer { client.shutdown() }
        let loop = Self.group.next()
        try await Self.ready(client)
        let tripsBefore = client.stats.roundTrips.load(ordering: .relaxed)
        let replies = Mutex<[Int64]>([])
        let done = loop.makePromise(of: Void.self)
        try await loop.submit {
            for i in 1...50 {
                client.submit([RedisCommand("INCR", "n")], deadline: .now() + .seconds(5), on: loop) { result in
                    replies.withLock { $0.append((try? result.get()[0].int) ?? -1) }
                    if i == 50 { done.succeed() }
                }
            }
        }.get()
        try await done.futureResult.get()
        #expect(replies.withLock { $0 } == Array(1...50))
        #expect(client.stats.roundTrips.load(ordering: .relaxed) - tripsBefore == 1)
    }

    @Test("a database other than 0 is selected before the first request")
    func selectsDatabase() async throws {
        let server = try RedisServerProcess.ephemeral()
        defer { server.stop() }
        guard case .tcp(let host, let port, _) = server.endpoint else { Issue.record("expected TCP"); return }
        let client = Self.client(.tcp(host: host, port: port, db: 3))
        defer { client.shutdown() }
        let (r, _) = await Self.send(client, [RedisCommand("SET", "in3", "yes")], on: Self.group.next())
        #expect(try r.get() == [.status("OK")])
        let plain = Self.client(server.endpoint)
        defer { plain.shutdown() }
        let (r0, _) = await Self.send(plain, [RedisCommand("EXISTS", "in3"), RedisCommand("SELECT", "3"), RedisCommand("GET", "in3")], on: nil)
        #expect(try r0.get() == [.integer(0), .status("OK"), .bulk(Array("yes".utf8))])
    }

    @Test("a stalled Redis: the round trip in flight fails as lost after the I/O timeout; the next request reconnects")
    func stallTimesOut() async throws {
        let server = try RedisServerProcess.ephemeral()
        defer { server.stop() }
        let client = Self.client(server.endpoint, ioTimeoutMs: 300)
        defer { client.shutdown() }
        let loop = Self.group.next()
        try await Self.ready(client)
        let before = try await Self.clientID(client, on: loop)
        server.signal(SIGSTOP)
        let started = ContinuousClock.now
        // The request's deadline is a minute away: what ends it is the 300 ms I/O timeout (the
        // error says so), however long a loaded machine takes to run the loop after it.
        let (r, _) = await Self.send(client, [RedisCommand("PING")], on: loop, deadline: .seconds(60))
        let took = ContinuousClock.now - started
        server.signal(SIGCONT)
        #expect(throws: RedisError.self) { try r.get() }
        if case .failure(let e) = r { #expect(e.code == .connectionLost && !e.certainlyNotExecuted, "\(e)") }
        #expect(took >= .milliseconds(290) && took < .seconds(30), "\(took)")
        try await Self.ready(client)
        let after = try await Self.clientID(client, on: loop)
        #expect(after != before, "a new connection after the timeout")
    }

    @Test("Redis stopped: requests fail at once and never hang; restarted: the loops' connections are made again")
    func stopAndRestart() async throws {
        let server = try RedisServerProcess.ephemeral()
        defer { server.stop() }
        // A request that hung would end by the I/O timeout or its deadline, both a minute away:
        // "at once" is then anything well short of that, whatever the machine's load.
        let client = Self.client(server.endpoint, ioTimeoutMs: 60_000)
        defer { client.shutdown() }
        let loop = Self.group.next()
        try await Self.ready(client)
        server.stop()
        // The loops see their connections end (the server closed them) and cannot make new ones.
        for _ in 0..<500 where client.loopConnectionsReady > 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(client.loopConnectionsReady == 0)
        var codes: [RedisError.Code] = []
        let failing = ContinuousClock.now
        for _ in 0..<3 {
            let (r, onLoop) = await Self.send(client, [RedisCommand("PING")], on: loop, deadline: .seconds(60))
            #expect(onLoop)
            if case .failure(let e) = r { codes.append(e.code) }
        }
        // The first may find the connection closed under it (lost, or refused on reconnect);
        // with Redis gone, every request fails, and never hangs.
        #expect(codes.count == 3, "\(codes)")
        #expect(codes.allSatisfy { $0 == .connectionFailed || $0 == .connectionLost }, "\(codes)")
        #expect(ContinuousClock.now - failing < .seconds(20))
        try server.start(appendOnly: false)
        var answered = false
        for _ in 0..<100 {
            let (r, _) = await Self.send(client, [RedisCommand("PING")], on: loop)
            if case .success(let v) = r, v == [.status("PONG")] { answered = true; break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(answered)
        // The loops' connections are made again by their next requests.
        for _ in 0..<500 where client.loopConnectionsReady < 2 {
            for l in Self.group.makeIterator() { _ = await Self.send(client, [RedisCommand("PING")], on: l) }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(client.loopConnectionsReady == 2)
    }

    @Test("after shutdown, requests on a loop fail with shutdown; a deadline passed before sending fails unsent")
    func shutdownAndDeadline() async throws {
        let server = try RedisServerProcess.ephemeral()
        defer { server.stop() }
        let client = Self.client(server.endpoint)
        let loop = Self.group.next()
        let (expired, _) = await Self.send(client, [RedisCommand("INCR", "never")], on: loop, deadline: .nanoseconds(-1))
        if case .failure(let e) = expired { #expect(e.code == .deadlineExceeded && e.certainlyNotExecuted) } else { Issue.record("ran past its deadline") }
        let (r, _) = await Self.send(client, [RedisCommand("EXISTS", "never")], on: loop)
        #expect(try r.get() == [.integer(0)])
        client.shutdown()
        // The shutdown reaches the loop as a task: a request behind it on the loop is refused.
        try await loop.submit {}.get()
        let (after, _) = await Self.send(client, [RedisCommand("PING")], on: loop)
        if case .failure(let e) = after { #expect(e.code == .shutdown) } else { Issue.record("answered after shutdown") }
    }
}
