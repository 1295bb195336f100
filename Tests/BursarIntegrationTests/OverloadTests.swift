import BursarBench
import BursarClient
import BursarRedis
import BursarServer
import BursarStore
import BursarWire
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// The data plane's bounds (SPEC 15.1), each shown to hold with an assertion that fails without
/// it: in-flight bounds answer `overloaded` (SETTLE/RELEASE with headroom), the connection limit,
/// the idle and frame timeouts, back-pressure on a client that does not read, the unknown-digest
/// throttle, and a flood of the real bursard binary. Waits poll with generous limits: CI runs
/// tests in parallel on two cores.
@Suite("overload and connection abuse")
struct OverloadTests {
    // MARK: In flight

    @Test("over the per-connection in-flight bound a CHECK is answered overloaded at once; SETTLE and RELEASE only at twice it")
    func perConnectionBound() async throws {
        let limits = ConnectionLimits(maxInFlight: 1_000, maxInFlightPerConnection: 4)
        // Redis stays stopped until every bound has been tried, which a loaded machine can stretch
        // past the harness's 5 s Redis I/O timeout and 10 s deadline: either would answer the held
        // requests (store_unavailable) and take them out of flight. Both are a minute here.
        try await withBoundedServer(limits, deadline: .seconds(60), redisIOTimeoutMs: 60_000) { h, server, port in
            let w = try await h.world()
            let c = try await BursarConnection.connect(host: "127.0.0.1", port: port)
            #expect(try await c.check(.make(w.digest)).allowed)
            // Redis stopped: every request sent to the engine stays in flight.
            h.redisServer.signal(SIGSTOP)
            var resumed = false
            defer { if !resumed { h.redisServer.signal(SIGCONT) } }
            let held = (0..<4).map { _ in c.request(.check(.make(w.digest))) }
            try await waitUntil { server.connectionStats.inFlight.load(ordering: .relaxed) == 4 }
            // The fifth to tenth CHECK: overloaded, answered while Redis is still stopped.
            for _ in 0..<6 {
                let answer = try await answered(c.request(.check(.make(w.digest))), within: .seconds(10))
                guard case .checkResult(let r) = answer.body else {
                    Issue.record("not a CHECK_RESULT: \(answer)")
                    return
                }
                #expect(!r.allowed && r.reason == .overloaded && r.retryAfterMs > 0, "\(r)")
            }
            // SETTLE and RELEASE get headroom up to 8 in flight on this connection.
            let reservation = h.unmadeID(org: w.org.id)
            let settles = (0..<2).map { _ in c.request(.settle(SettleRequest(reservation: reservation, inputTokens: 1, outputTokens: 1, cost: 1))) }
            let releases = (0..<2).map { _ in c.request(.release(ReleaseRequest(reservation: reservation))) }
            try await waitUntil { server.connectionStats.inFlight.load(ordering: .relaxed) == 8 }
            let settle = try await answered(
                c.request(.settle(SettleRequest(reservation: reservation, inputTokens: 1, outputTokens: 1, cost: 1))), within: .seconds(10))
            #expect(settle.body == .settleResult(ReservationResult(status: .overloaded)), "\(settle)")
            let release = try await answered(c.request(.release(ReleaseRequest(reservation: reservation))), within: .seconds(10))
            #expect(release.body == .releaseResult(ReservationResult(status: .overloaded)), "\(release)")
            // A PING is always answered.
            try await c.ping()

            h.redisServer.signal(SIGCONT)
            resumed = true
            for f in held {
                guard case .checkResult(let r) = try await f.get().body else {
                    Issue.record("not a CHECK_RESULT")
                    return
                }
                #expect(r.reason != .overloaded, "a CHECK admitted in flight is decided, not refused: \(r)")
            }
            for f in settles + releases {
                let body = try await f.get().body
                #expect(body == .settleResult(ReservationResult(status: .unknown)) || body == .releaseResult(ReservationResult(status: .unknown)), "\(body)")
            }
            let stats = server.connectionStats
            #expect(stats.overloaded[0].count == 6 && stats.overloaded[1].count == 1 && stats.overloaded[2].count == 1)
            #expect(h.engine.stats.decisions[Int(DenyReason.overloaded.rawValue)].count == 6)
            let metrics = ServerMetrics(version: "test")
            metrics.observe(engine: h.engine, server: server, invalidation: nil)
            let text = metrics.render()
            for line in [
                "bursar_overloaded_total{frame=\"check\"} 6", "bursar_overloaded_total{frame=\"settle\"} 1",
                "bursar_overloaded_total{frame=\"release\"} 1", "bursar_denials_total{reason=\"overloaded\"} 6",
                "bursar_settlements_total{status=\"overloaded\"} 2", "bursar_in_flight ",
            ] {
                #expect(text.contains(line), "metrics lack \(line)")
            }
            try await waitUntil { stats.inFlight.load(ordering: .relaxed) == 0 }
            // Below the bound again: decided normally.
            #expect(try await c.check(.make(w.digest)).allowed)
            await c.close()
        }
    }

    @Test("the total in-flight bound is shared by all connections")
    func totalBound() async throws {
        let limits = ConnectionLimits(maxInFlight: 5, maxInFlightPerConnection: 100)
        try await withBoundedServer(limits) { h, server, port in
            let w = try await h.world()
            let a = try await BursarConnection.connect(host: "127.0.0.1", port: port)
            let b = try await BursarConnection.connect(host: "127.0.0.1", port: port)
            #expect(try await a.check(.make(w.digest)).allowed)
            h.redisServer.signal(SIGSTOP)
            var resumed = false
            defer { if !resumed { h.redisServer.signal(SIGCONT) } }
            let heldA = (0..<3).map { _ in a.request(.check(.make(w.digest))) }
            let heldB = (0..<2).map { _ in b.request(.check(.make(w.digest))) }
            try await waitUntil { server.connectionStats.inFlight.load(ordering: .relaxed) == 5 }
            // Either connection's next CHECK is over the shared bound.
            for c in [a, b] {
                let answer = try await answered(c.request(.check(.make(w.digest))), within: .seconds(10))
                guard case .checkResult(let r) = answer.body else {
                    Issue.record("not a CHECK_RESULT: \(answer)")
                    return
                }
                #expect(r.reason == .overloaded, "\(r)")
            }
            // A SETTLE still has headroom (up to 10 in all).
            let settle = b.request(.settle(SettleRequest(reservation: h.unmadeID(org: w.org.id), inputTokens: 1, outputTokens: 1, cost: 1)))
            try await waitUntil { server.connectionStats.inFlight.load(ordering: .relaxed) == 6 }
            h.redisServer.signal(SIGCONT)
            resumed = true
            for f in heldA + heldB { _ = try await f.get() }
            #expect(try await settle.get().body == .settleResult(ReservationResult(status: .unknown)))
            #expect(server.connectionStats.overloaded[0].count == 2)
            await a.close()
            await b.close()
        }
    }

    // MARK: Connections and timeouts

    @Test("beyond max connections a new connection gets ERROR too_many_connections (request id 0) and is closed")
    func maxConnections() async throws {
        try await withBoundedServer(ConnectionLimits(maxConnections: 2)) { h, server, port in
            let a = try await BursarConnection.connect(host: "127.0.0.1", port: port)
            let b = try await BursarConnection.connect(host: "127.0.0.1", port: port)
            try await a.ping()
            try await b.ping()
            let third = try await RawProbe.connect(port: port)
            #expect(await third.waitClosed(within: .seconds(20)), "the third connection must be closed")
            #expect(third.frames.count == 1)
            if let frame = third.frames.first {
                #expect(frame.requestID == 0)
                guard case .error(let e) = frame.body else {
                    Issue.record("not an ERROR: \(frame)")
                    return
                }
                #expect(e.code == .tooManyConnections && e.message.contains("2"), "\(e)")
            }
            #expect(server.connectionStats.refused.count == 1)
            // The first two are untouched; once one closes, a new connection is welcome.
            try await a.ping()
            await b.close()
            try await waitUntil { server.openConnections == 1 }
            let d = try await BursarConnection.connect(host: "127.0.0.1", port: port)
            try await d.ping()
            await a.close()
            await d.close()
            await third.close()
        }
    }

    @Test("an idle connection gets ERROR idle_timeout and is closed, but not while a request is in flight")
    func idleTimeout() async throws {
        let limits = ConnectionLimits(idleTimeout: .milliseconds(400))
        try await withBoundedServer(limits) { h, server, port in
            let w = try await h.world()
            // The first frame goes out as the connection opens: a test task scheduled late on a
            // loaded machine must not find it already closed for idleness.
            let idle = try await RawProbe.connect(port: port, first: Frame(requestID: 1, body: .ping).bytes)
            #expect(await idle.waitClosed(within: .seconds(20)), "the idle connection must be closed")
            #expect(idle.frames.map(\.requestID) == [1, 0], "\(idle.frames)")
            if case .error(let e)? = idle.frames.last?.body { #expect(e.code == .idleTimeout) } else { Issue.record("no ERROR: \(idle.frames)") }
            #expect(server.connectionStats.protocolErrors[.idleTimeout].count == 1)

            // A CHECK waiting on a stopped Redis for longer than the idle timeout keeps its connection.
            h.redisServer.signal(SIGSTOP)
            var resumed = false
            defer { if !resumed { h.redisServer.signal(SIGCONT) } }
            let busy = try await RawProbe.connect(port: port, first: Frame(requestID: 7, body: .check(.make(w.digest))).bytes)
            try await waitUntil { server.connectionStats.inFlight.load(ordering: .relaxed) == 1 }
            try await Task.sleep(for: .milliseconds(1_200))
            // Closed while the CHECK was still in flight: closed before its answer came. (On a
            // loaded machine the CHECK may be answered store_unavailable within the sleep, its
            // Redis connection timed out; then the idle ERROR after the answer is right.)
            let closedWhileInFlight = busy.isClosed && busy.frames.first?.requestID != 7
            h.redisServer.signal(SIGCONT)
            resumed = true
            #expect(!closedWhileInFlight, "closed for idleness while a CHECK was in flight: \(busy.frames)")
            #expect(await busy.waitClosed(within: .seconds(20)))
            #expect(busy.frames.map(\.requestID) == [7, 0], "the CHECK is answered before the idle ERROR: \(busy.frames)")
            await idle.close()
            await busy.close()
        }
    }

    @Test("a frame begun but not completed within the frame timeout gets ERROR frame_timeout and the connection closes")
    func frameTimeout() async throws {
        let limits = ConnectionLimits(idleTimeout: .zero, frameTimeout: .milliseconds(500))
        try await withBoundedServer(limits) { h, server, port in
            let ping = Frame(requestID: 3, body: .ping).bytes
            // A whole frame, then 10 bytes of the next header and nothing more.
            let slow = try await RawProbe.connect(port: port, first: ping + Array(Frame(requestID: 4, body: .ping).bytes.prefix(10)))
            #expect(await slow.waitClosed(within: .seconds(20)), "the slow connection must be closed")
            #expect(slow.frames.map(\.requestID) == [3, 0], "\(slow.frames)")
            if case .error(let e)? = slow.frames.last?.body { #expect(e.code == .frameTimeout, "\(e)") } else { Issue.record("no ERROR: \(slow.frames)") }
            #expect(server.connectionStats.protocolErrors[.frameTimeout].count == 1)

            // With the idle timeout off, a connection between frames stays open past the frame timeout.
            let quiet = try await RawProbe.connect(port: port)
            try await quiet.send(ping)
            try await Task.sleep(for: .milliseconds(1_500))
            #expect(!quiet.isClosed)
            try await quiet.send(Frame(requestID: 5, body: .ping).bytes)
            try await waitUntil { quiet.frames.count == 2 }
            await slow.close()
            await quiet.close()
        }
    }

    @Test("a client that pipelines without reading its answers stops being read, and is closed after the write timeout")
    func nonReadingClient() async throws {
        let limits = ConnectionLimits(writeTimeout: .seconds(1), maxUnknownKeysPerMinute: 0)
        try await withBoundedServer(limits) { h, server, port in
            let decided = { h.engine.stats.decisions.reduce(0) { $0 + $1.count } }
            let before = decided()
            // 200,000 CHECKs of an unknown digest (answered from the negative cache: cheap), 25.6 MB.
            let count = 200_000
            let deaf = try await RawProbe.pipelineWithoutReading(
                port: port, count, of: Frame(requestID: 1, body: .check(.make(KeyDigest(secret: "sk-br-never-issued")))))
            try await waitUntil(within: .seconds(60)) { server.connectionStats.writeTimeouts.count == 1 }
            try await waitUntil { server.openConnections == 0 }
            let answered = decided() - before
            // Without back-pressure the server would read and decide all of them, queueing 25.6 MB
            // of answers; it stopped at what the socket buffers and the write buffer hold.
            #expect(answered < count / 2, "decided \(answered) of \(count)")
            #expect(server.connectionStats.inFlight.load(ordering: .relaxed) == 0)
            print("non-reading client: sent \(count) CHECKs, server decided \(answered) before it stopped reading and closed")
            await deaf.close()
        }
    }

    @Test("an admission whose answer is still in bursard's write buffer is not confirmed delivered; when the connection dies first it is voided")
    func unwrittenAdmissionsAreVoided() async throws {
        let limits = ConnectionLimits(writeTimeout: .seconds(1))
        try await withBoundedServer(limits) { h, server, port in
            let w = try await h.world()
            let allowed = { h.engine.stats.decisions[0].count }
            let reconcile = h.engine.reconcileStats
            let (admittedBefore, confirmedBefore, orphansBefore) = (
                allowed(), reconcile.confirmedDeliveries.load(ordering: .relaxed),
                h.engine.stats.orphanedAdmissionsReleased.load(ordering: .relaxed))
            // 60,000 CHECKs of a key without limits, never read: the answers fill the client's
            // 4 KiB receive buffer, bursard's socket buffer, then NIO's write buffer.
            let deaf = try await RawProbe.pipelineWithoutReading(port: port, 60_000, of: Frame(requestID: 1, body: .check(.make(w.digest))))
            // The write timeout closes the connection; its unwritten answers fail with it.
            try await waitUntil(within: .seconds(60)) { server.connectionStats.writeTimeouts.count == 1 }
            try await waitUntil { server.openConnections == 0 && h.engine.pendingDeliveryConfirmations == 0 && h.engine.unresolvedAttempts == 0 }
            let admitted = allowed() - admittedBefore
            let confirmed = reconcile.confirmedDeliveries.load(ordering: .relaxed) - confirmedBefore
            let voided = h.engine.stats.orphanedAdmissionsReleased.load(ordering: .relaxed) - orphansBefore
            // Confirmed only what reached the socket; the answers still in NIO's write buffer were
            // voided when the connection closed, never confirmed.
            #expect(admitted > 0 && voided > 0, "admitted \(admitted), voided \(voided)")
            #expect(confirmed + voided == admitted, "admitted \(admitted) = confirmed \(confirmed) + voided \(voided)")
            // Nothing is left undelivered in Redis, and every voided admission gave its request
            // back: the key's open reservations are exactly the confirmed ones.
            let undelivered = try await h.redis.send(RedisCommand("SCARD", Keyspace.undelivered(w.org.id)))
            #expect(undelivered.int == 0)
            let statuses = try await reservationStatuses(h, org: w.org.id)
            print("unwritten admissions: \(admitted) admitted, \(confirmed) confirmed delivered, \(voided) voided; records \(statuses)")
            #expect(statuses["open", default: 0] == confirmed && statuses["void", default: 0] == voided, "\(statuses)")
            await deaf.close()
        }
    }

    // MARK: Unknown digests

    @Test("past the unknown-key limit a connection's uncached digests are throttled without a lookup; cached keys still work")
    func unknownDigestThrottle() async throws {
        // A cache entry that outlives any machine's slowness (the default 5 s did not, twice: a
        // hit does not renew an entry, so the key could drop out between the CHECKs below).
        try await withBoundedServer(ConnectionLimits(maxUnknownKeysPerMinute: 3), cacheTTL: .seconds(600)) { h, server, port in
            let w = try await h.world()
            let c = try await BursarConnection.connect(host: "127.0.0.1", port: port)
            #expect(try await c.check(.make(w.digest)).allowed)  // caches the key
            for i in 0..<4 {
                #expect(try await c.check(.make(KeyDigest(secret: "sk-br-guess-\(i)"))).reason == .unknownKey)
            }
            let misses = h.engine.cacheStats.misses.load(ordering: .relaxed)
            let throttled = try await c.check(.make(KeyDigest(secret: "sk-br-guess-4")))
            #expect(throttled.reason == .keyLookupsThrottled && !throttled.allowed && throttled.retryAfterMs > 0, "\(throttled)")
            #expect(h.engine.cacheStats.misses.load(ordering: .relaxed) == misses, "a throttled CHECK must not look the digest up")
            #expect(DenyReason.keyLookupsThrottled.httpStatus == 429)
            // The cached key is decided as usual on the same connection: it is known (cached,
            // and none of its lookups missed since), so the throttle does not apply to it.
            let hitsBefore = h.engine.cacheStats.hits.load(ordering: .relaxed)
            let known = try await c.check(.make(w.digest))
            #expect(known.allowed && known.keyID == w.key.key.id, "\(known)")
            #expect(h.engine.cacheStats.hits.load(ordering: .relaxed) == hitsBefore + 1, "decided from the cache")
            #expect(server.connectionStats.throttledLookups.count == 1)
            // The throttle is per connection.
            let other = try await BursarConnection.connect(host: "127.0.0.1", port: port)
            #expect(try await other.check(.make(KeyDigest(secret: "sk-br-guess-5"))).reason == .unknownKey)
            await c.close()
            await other.close()
        }
    }

    @Test("a real bursard's latency target: a fifth of --deadline-ms unless --latency-target-ms is given, as its metrics show")
    func latencyTargetFlags() async throws {
        try await withHarness { h in
            // (arguments, the target in µs bursard must report)
            let cases: [([String], Double)] = [
                ([], 10_000), (["--deadline-ms", "100"], 20_000), (["--deadline-ms", "5"], 2_000),
                (["--deadline-ms", "100", "--latency-target-ms", "7"], 7_000),
            ]
            for (arguments, expected) in cases {
                let bursard = try await BursardProcess(
                    redis: h.redisServer.endpoint, opsPort: try RedisServerProcess.freeLoopbackPort(), extraArguments: arguments)
                defer { bursard.stop() }
                var reported: Double?
                _ = await eventually(within: .seconds(10)) {
                    reported = await BursardFleet.metrics(bursard)?["bursar_admission_latency_target_microseconds"]
                    return reported != nil
                }
                #expect(reported == expected, "\(arguments): \(reported.map { "\($0)" } ?? "no such metric")")
            }
        }
    }

    // MARK: bursar-bench

    @Test("bursar-bench against tight bounds: overloaded CHECKs are clean denials, overloaded SETTLE/RELEASE are retried, the audit is clean")
    func benchAuditsOverloaded() async throws {
        try await withHarness { h in
            let bursard = try await BursardProcess(
                redis: h.redisServer.endpoint, extraArguments: ["--max-in-flight-per-connection", "3", "--deadline-ms", "2000"])
            defer { bursard.stop() }
            // Eight flows per connection against a bound of three: CHECKs are refused, and
            // follow-ups (refused at six) now and then too. No warmup: the closed loop honours
            // retry_after_ms (here the 2 s deadline), so the flows refused in the first burst
            // wait out the run, and only the first burst is refused.
            let c = BenchConfiguration(
                targets: [.tcp(host: "127.0.0.1", port: bursard.port)], connections: 4, load: .closed(pipeline: 8),
                duration: .milliseconds(1500), warmup: .zero, drainGrace: .seconds(2),
                workload: Workload(
                    keys: 21, projects: 3, denyPermille: 300, settlePermille: 700, tightBudget: 20_000, tightRPM: 2,
                    tightTPM: 2 * Workload.reservedTokens, projectRPM: 1_000_000, projectTPM: 100_000_000, projectBudget: 1 << 45))
            let (report, _, result) = try await Bench.run(c, redis: h.redis, audit: true)
            #expect((result.denied[.overloaded] ?? 0) > 0, "\(report.denied_by_reason)")
            #expect(report.denied_by_reason["overloaded"] == result.denied[.overloaded])
            #expect(report.allowed > 0 && report.errors == 0 && report.unanswered == 0, "\(report.summary)")
            let audit = try #require(report.audit)
            #expect(audit.lostDebits == 0 && audit.doubleDebits == 0 && audit.countersMismatched == 0, "\(report.summary)")
            #expect(audit.overAdmittedSpend == 0 && audit.overAdmittedRequests == 0 && audit.overAdmittedTokens == 0)
            #expect(audit.unresolved == 0 && audit.passed, "\(report.summary)")
            // How often the follow-ups met the doubled bound (and were retried) this time: for
            // the record; how often is up to the scheduler.
            let metrics = try await opsMetrics(logPath: bursard.logPath)
            let refusedFollowUps = metrics.split(separator: "\n").filter { $0.hasPrefix("bursar_overloaded_total{frame=\"settle\"}") || $0.hasPrefix("bursar_overloaded_total{frame=\"release\"}") }
            print("bench under --max-in-flight-per-connection 3: \(report.denied_by_reason), follow-ups refused: \(refusedFollowUps.joined(separator: ", ")); audit \(audit.verdict)")
        }
    }

    // MARK: Flood

    @Test("flood: the real bursard under many pipelining connections answers overloaded, a polite client keeps being served, RSS stays bounded")
    func flood() async throws {
        try await withHarness { h in
            let floodWorld = try await h.world()
            let politeWorld = try await h.world()
            let bursard = try await BursardProcess(
                redis: h.redisServer.endpoint,
                extraArguments: [
                    "--max-in-flight", "128", "--max-in-flight-per-connection", "4", "--max-connections", "64",
                    // Two shared cores run the flood, bursard and Redis: a decision may wait its turn.
                    "--deadline-ms", "2000",
                ])
            defer { bursard.stop() }
            let pid = try #require(bursard.child.pid)
            // Warm up (scripts, cache), then the baseline. The polite client has its own event
            // loop, so the test's own flood connections do not delay its answers.
            let politeLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            defer { politeLoop.shutdownGracefully { _ in } }
            let polite = try await BursarConnection.connect(host: "127.0.0.1", port: bursard.port, group: politeLoop)
            for _ in 0..<20 { _ = try await polite.check(.make(politeWorld.digest)) }
            let baselineKiB = try #require(procStatus(pid, "VmRSS"))

            let connections = 24
            let duration = Duration.seconds(4)
            let counts = FloodCounts()
            let frame = Frame(requestID: 1, body: .check(.make(floodWorld.digest))).bytes
            var floods: [any Channel] = []
            let end = NIODeadline.now() + .nanoseconds(Int64(duration.components.seconds) * 1_000_000_000)
            for _ in 0..<connections {
                floods.append(try await FloodHandler.connect(port: bursard.port, frame: frame, until: end, counts: counts))
            }
            // The polite client: one CHECK at a time, for the whole flood.
            var politeAnswers = 0
            var politeAllowed = 0
            var politeOverloaded = 0
            var slowest = Duration.zero
            let started = ContinuousClock.now
            while ContinuousClock.now - started < duration {
                let t = ContinuousClock.now
                let r = try await answered(polite.request(.check(.make(politeWorld.digest))), within: .seconds(30))
                slowest = max(slowest, ContinuousClock.now - t)
                politeAnswers += 1
                if case .checkResult(let result) = r.body {
                    if result.allowed { politeAllowed += 1 }
                    if result.reason == .overloaded { politeOverloaded += 1 }
                }
            }
            // Every frame a flood connection sent is answered once it stops sending.
            let drained = ContinuousClock.now + .seconds(60)
            while counts.answered.load(ordering: .relaxed) < counts.sent.load(ordering: .relaxed) && ContinuousClock.now < drained {
                try await Task.sleep(for: .milliseconds(20))
            }
            let peakKiB = try #require(procStatus(pid, "VmHWM"))
            for channel in floods { try? await channel.close() }
            await polite.close()

            let sent = counts.sent.load(ordering: .relaxed)
            let answers = counts.answered.load(ordering: .relaxed)
            let overloaded = counts.overloaded.load(ordering: .relaxed)
            let allowed = counts.allowed.load(ordering: .relaxed)
            let seconds = Double(duration.components.seconds)
            print("""
                flood: \(connections) connections pipelining for \(Int(seconds)) s against --max-in-flight 128 --max-in-flight-per-connection 4: \
                offered \(sent) CHECKs (\(Int(Double(sent) / seconds))/s), answered \(answers), allowed \(allowed) (\(Int(Double(allowed) / seconds))/s), \
                overloaded \(overloaded) (\(sent > 0 ? overloaded * 100 / sent : 0)%, retry_after_ms up to \(counts.longestRetryAfterMs.load(ordering: .relaxed))); \
                polite client: \(politeAnswers) answers, \(politeAllowed) allowed, \(politeOverloaded) overloaded, slowest \(slowest.milliseconds) ms; \
                bursard RSS \(baselineKiB) KiB before, peak (VmHWM) \(peakKiB) KiB
                """)
            #expect(sent > 0 && answers == sent, "every CHECK sent is answered: sent \(sent), answered \(answers)")
            #expect(overloaded > 0, "the flood must hit the in-flight bound")
            // Refused far more than admitted, the retry hint grew past the deadline (2 s), within
            // 1.5 × its cap of 20 deadlines.
            let longestRetry = counts.longestRetryAfterMs.load(ordering: .relaxed)
            #expect(longestRetry > 2_000 && longestRetry < 60_000, "longest retry_after_ms \(longestRetry)")
            #expect(allowed > 0)
            // The flood's connections can hold at most 24 × 4 = 96 of the 128 in flight: the
            // per-connection bound keeps room for the polite client, who is never refused.
            #expect(politeAnswers > 0 && politeAllowed > 0 && politeOverloaded == 0, "the polite client keeps being served")
            #expect(slowest < .seconds(10), "the polite client's slowest answer took \(slowest)")
            #expect(peakKiB < baselineKiB + 64 * 1024, "bursard's peak RSS \(peakKiB) KiB from \(baselineKiB) KiB")
        }
    }
}

// MARK: - Helpers

/// Runs `body` with a harness (Redis and its engine) and a second data plane on that engine with
/// `limits`, on a free port; always stops both.
private func withBoundedServer(
    _ limits: ConnectionLimits, deadline: TimeAmount = .seconds(10), redisIOTimeoutMs: Int = 5_000, cacheTTL: TimeAmount = .seconds(5),
    _ body: (Harness, DataPlaneServer, Int) async throws -> Void
) async throws {
    try await withHarness(deadline: deadline, redisIOTimeoutMs: redisIOTimeoutMs, cacheTTL: cacheTTL) { h in
        let server = DataPlaneServer(
            configuration: ListenerConfiguration(host: "127.0.0.1", port: 0, limits: limits), engine: h.engine,
            group: MultiThreadedEventLoopGroup.singleton, logger: Harness.logger)
        let port = try await server.start()
        do {
            try await body(h, server, port)
        } catch {
            await server.shutdown(timeout: .milliseconds(200))
            throw error
        }
        await server.shutdown(timeout: .milliseconds(200))
    }
}

private struct TimedOut: Error {}

/// Polls `condition` every 10 ms; fails the test (and throws) if it is still false after `limit`.
private func waitUntil(
    within limit: Duration = .seconds(20), sourceLocation: SourceLocation = #_sourceLocation, _ condition: () -> Bool
) async throws {
    let end = ContinuousClock.now + limit
    while !condition() {
        guard ContinuousClock.now < end else {
            Issue.record("condition still false after \(limit)", sourceLocation: sourceLocation)
            throw TimedOut()
        }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// The future's value, or `TimedOut` if it is not there within `limit` (the future itself is left
/// to complete whenever it does).
private func answered<T: Sendable>(_ future: EventLoopFuture<T>, within limit: Duration) async throws -> T {
    let promise = future.eventLoop.makePromise(of: T.self)
    future.cascade(to: promise)
    let timer = future.eventLoop.scheduleTask(in: .nanoseconds(Int64(limit.components.seconds) * 1_000_000_000)) {
        promise.fail(TimedOut())
    }
    defer { timer.cancel() }
    return try await promise.futureResult.get()
}

/// bursard's /metrics, from the ops port its log names.
private func opsMetrics(logPath: String) async throws -> String {
    let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    let line = try #require(log.split(separator: "\n").first { $0.contains("ops port listening") })
    let address = try #require(line.split(separator: " ").first { $0.hasPrefix("address=") })
    let port = try #require(Int(address.split(separator: ":").last ?? ""))
    let url = try #require(URL(string: "http://127.0.0.1:\(port)/metrics"))
    let (data, _) = try await URLSession.shared.data(from: url)
    return String(decoding: data, as: UTF8.self)
}

/// A `kB` line of /proc/PID/status (`VmRSS`, `VmHWM`).
private func procStatus(_ pid: Int32, _ field: String) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = text.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") })
    else { return nil }
    return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
}

extension Duration {
    fileprivate var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}

/// A byte-level client: sends raw bytes, collects the frames the server sends and notes the
/// close. With `reading: false` it never reads (its answers pile up at the server).
private final class RawProbe: Sendable {
    let channel: any Channel
    let state: ProbeState

    private init(channel: any Channel, state: ProbeState) {
        self.channel = channel
        self.state = state
    }

    /// Connects; `first` is written as soon as the connection is up.
    static func connect(port: Int, reading: Bool = true, first: [UInt8] = []) async throws -> RawProbe {
        let state = ProbeState()
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(FrameDecoder(direction: .toClient)), ProbeCollector(state: state, first: first),
                    ])
                }
            }
        if !reading {
            bootstrap = bootstrap.channelOption(.autoRead, value: false)
                .channelOption(.socketOption(.so_rcvbuf), value: 4096)
        }
        let channel = try await bootstrap.connect(host: "127.0.0.1", port: port).get()
        return RawProbe(channel: channel, state: state)
    }

    /// Connects without reading and pipelines `count` copies of `frame` in one write.
    static func pipelineWithoutReading(port: Int, _ count: Int, of frame: Frame) async throws -> RawProbe {
        let one = frame.bytes
        var bytes = ByteBuffer()
        bytes.reserveCapacity(one.count * count)
        for _ in 0..<count { bytes.writeBytes(one) }
        let probe = try await connect(port: port, reading: false)
        probe.channel.writeAndFlush(bytes, promise: nil)
        return probe
    }

    var frames: [Frame] { state.frames.withLock { $0 } }
    var isClosed: Bool { state.closed.load(ordering: .relaxed) }

    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
    }

    /// Polls until the server has closed the connection.
    func waitClosed(within limit: Duration) async -> Bool {
        let end = ContinuousClock.now + limit
        while !state.closed.load(ordering: .relaxed) && ContinuousClock.now < end { try? await Task.sleep(for: .milliseconds(10)) }
        return state.closed.load(ordering: .relaxed)
    }

    func close() async { try? await channel.close() }
}

private final class ProbeState: Sendable {
    let frames = Mutex<[Frame]>([])
    let closed = Atomic<Bool>(false)
}

private final class ProbeCollector: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = ByteBuffer

    let state: ProbeState
    let first: [UInt8]

    init(state: ProbeState, first: [UInt8]) {
        self.state = state
        self.first = first
    }

    func channelActive(context: ChannelHandlerContext) {
        if !first.isEmpty { context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: first)), promise: nil) }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        state.frames.withLock { $0.append(frame) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        state.closed.store(true, ordering: .relaxed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// What the flood connections sent and got.
private final class FloodCounts: Sendable {
    let sent = Atomic<Int>(0)
    let answered = Atomic<Int>(0)
    let allowed = Atomic<Int>(0)
    let overloaded = Atomic<Int>(0)
    let longestRetryAfterMs = Atomic<Int>(0)
}

/// A flood connection: writes the same CHECK frame, 64 at a time, whenever the socket takes more
/// and fewer than `window` are unanswered, until `until`; reads and counts every answer. The
/// window (hundreds of frames, against a server bound of a few per connection) keeps what is
/// still queued in socket buffers when the flood stops small enough to drain in seconds.
private final class FloodHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = ByteBuffer

    private let batch: ByteBuffer
    private let until: NIODeadline
    private let counts: FloodCounts

    init(frame: [UInt8], until: NIODeadline, counts: FloodCounts) {
        var batch = ByteBuffer()
        for _ in 0..<64 { batch.writeBytes(frame) }
        self.batch = batch
        self.until = until
        self.counts = counts
    }

    static func connect(port: Int, frame: [UInt8], until: NIODeadline, counts: FloodCounts) async throws -> any Channel {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(FrameDecoder(direction: .toClient)),
                        FloodHandler(frame: frame, until: until, counts: counts),
                    ])
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
    }

    func channelActive(context: ChannelHandlerContext) {
        pump(context: context)
        context.fireChannelActive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        pump(context: context)
        context.fireChannelWritabilityChanged()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        answered += 1
        counts.answered.add(1, ordering: .relaxed)
        if case .checkResult(let r) = unwrapInboundIn(data).body {
            if r.allowed { counts.allowed.add(1, ordering: .relaxed) }
            if r.reason == .overloaded {
                counts.overloaded.add(1, ordering: .relaxed)
                counts.longestRetryAfterMs.max(Int(r.retryAfterMs), ordering: .relaxed)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// Writes batches while the channel is writable and the flood lasts; resumes on writability,
    /// and in any case again 1 ms later (the server may be what keeps it writable).
    private func pump(context: ChannelHandlerContext) {
        guard context.channel.isActive, NIODeadline.now() < until else { return }
        var wrote = 0
        while context.channel.isWritable && wrote < 16 && sent - answered < Self.window {
            context.write(wrapOutboundOut(batch), promise: nil)
            counts.sent.add(64, ordering: .relaxed)
            sent += 64
            wrote += 1
        }
        context.flush()
        guard !pumpScheduled else { return }
        pumpScheduled = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: .milliseconds(1)) {
            let (handler, context) = bound.value
            handler.pumpScheduled = false
            handler.pump(context: context)
        }
    }

    private var pumpScheduled = false
    private var sent = 0
    private var answered = 0
    /// Most frames unanswered on one flood connection.
    static let window = 512
}

/// How many reservation records of `org` Redis holds, by status (`open`, `void` …).
private func reservationStatuses(_ h: Harness, org: UInt64) async throws -> [String: Int] {
    let names = try await keyNames(h.redis, matching: String(Keyspace.reservation(org, 0).dropLast()) + "*")
    var statuses: [String: Int] = [:]
    for start in stride(from: 0, to: names.count, by: 500) {
        let batch = Array(names[start..<min(start + 500, names.count)])
        for reply in try await h.redis.send(batch.map { RedisCommand("GET", $0) }, timeout: .seconds(10)) {
            statuses[ReservationRecord(reply: reply)?.status ?? "unreadable", default: 0] += 1
        }
    }
    return statuses
}
