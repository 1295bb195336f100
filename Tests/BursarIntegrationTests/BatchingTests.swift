@testable import BursarRedis
import BursarServer
@_spi(Testing) import BursarStore
import BursarWire
import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// Script calls of one organization that reach Redis in the same round trip run as one call of
/// the batch script (SPEC §13.11), each request with its own answer.
@Suite("batched script calls")
struct BatchingTests {
    /// Holds both of the client's Redis connections for about `ms` each (a script spinning on
    /// Redis's clock, the second running after the first), so that what is submitted meanwhile
    /// waits and goes out in one round trip. Returns once each spin has been taken by a
    /// connection (the client's queue is empty again) while neither has finished; tries again
    /// if one finished first (a connection was busy with the engine's own heartbeat or
    /// confirmations, and took the second spin only after the first, or a loaded machine did
    /// not run the second connection's thread in time); each try spins longer, up to four times `ms`.
    private func holdConnections(_ h: Harness, ms: Int) async throws -> [EventLoopFuture<[RedisValue]>] {
        let spin = "local t = redis.call('TIME'); local s = t[1] * 1000 + math.floor(t[2] / 1000); "
            + "repeat t = redis.call('TIME') until t[1] * 1000 + math.floor(t[2] / 1000) >= s + tonumber(ARGV[1]); return 1"
        for attempt in 0..<5 {
            let ms = min(ms << attempt, 4 * ms)
            let finished = Finished()
            var held: [EventLoopFuture<[RedisValue]>] = []
            for _ in 0..<2 {
                // `submit` queues it before returning; a connection has taken it once the queue
                // is empty again.
                let promise = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: [RedisValue].self)
                h.redis.submit([RedisCommand("EVAL", spin, "0", String(ms))], deadline: .now() + .seconds(10)) { result in
                    finished.count.add(1, ordering: .relaxed)
                    promise.completeWith(result.mapError { $0 as any Error })
                }
                held.append(promise.futureResult)
                var polls = 0
                while h.redis.queuedRequests > 0, polls < 5_000 {
                    polls += 1
                    try await Task.sleep(for: .milliseconds(1))
                }
            }
            if finished.count.load(ordering: .relaxed) == 0 { return held }
            for f in held { _ = try await f.get() }
        }
        Issue.record("both Redis connections could not be held at once in five tries")
        throw HoldFailed()
    }

    private final class Finished: Sendable { let count = Atomic<Int>(0) }
    private struct HoldFailed: Error {}

    /// Submits `commands` at once, each a request of its own, while both Redis connections are
    /// held (`holdConnections`), so that they reach Redis in one round trip; returns their replies
    /// in order, once the holds have ended too.
    private func submitInOneRoundTrip(_ h: Harness, _ commands: [RedisCommand]) async throws -> [Result<[RedisValue], RedisError>] {
        let held = try await holdConnections(h, ms: 300)
        let replies = await submitTogether(h, commands)
        for t in held { _ = try await t.get() }
        return replies
    }

    /// Submits `commands` at once, each a request of its own, and returns their replies in order.
    private func submitTogether(_ h: Harness, _ commands: [RedisCommand]) async -> [Result<[RedisValue], RedisError>] {
        let collected = Collected(count: commands.count)
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            collected.whenAll(done)
            for (i, command) in commands.enumerated() {
                h.redis.submit([command], deadline: NIODeadline.now() + TimeAmount.seconds(10)) { result in collected.add(i, result) }
            }
        }
        return collected.replies
    }

    @Test("CHECKs and SETTLEs sent together are one script call each way, answered one by one; a failing one fails alone")
    func mergedCallsAnswerEachRequest() async throws {
        try await withHarness { h in
            let w = try await h.world(limits: KeyLimits(rpm: 3))
            let limiter = h.engine.limiter
            let identity = KeyIdentity(orgID: w.org.id, keyID: w.key.key.id)
            // A "key" of the same organization whose record is not a hash: its step raises WRONGTYPE.
            let broken = KeyIdentity(orgID: w.org.id, keyID: w.key.key.id + 1_000)
            _ = try await h.redis.send(RedisCommand("SET", Keyspace.key(w.org.id, broken.keyID), "not-a-hash"))
            let epoch = h.engine.epoch
            let base = ReservationSequence.make(epoch: epoch, counter: 900_000)
            let costs: [Int64] = [100, 200, 300, 400, 500]
            var checks = costs.enumerated().map { i, cost in
                limiter.checkCommand(.make(w.digest, cost: cost), identity: identity, sequence: base + UInt64(i))
            }
            checks.insert(limiter.checkCommand(.make(w.digest), identity: broken, sequence: base + 99), at: 2)

            let scriptsBefore = try await commandCalls(h, "fcall")
            let saddsBefore = try await commandCalls(h, "sadd")
            let replies = try await submitInOneRoundTrip(h, checks)
            let scripts = try await commandCalls(h, "fcall") - scriptsBefore
            let sadds = try await commandCalls(h, "sadd") - saddsBefore

            // In order: three admitted (RPM 3), the broken one's error, then two denied key_rpm.
            let outcomes = replies.map { result -> String in
                switch result {
                case .success(let r) where r.count == 1:
                    if case .error(let e) = r[0] { return e.contains("WRONGTYPE") ? "wrongtype" : "error: \(e)" }
                    guard let a = CheckReplySlots(r[0]), let outcome = a[.outcome] else { return "shape: \(r[0])" }
                    return outcome == 1 ? "admitted" : "denied \(a[.reason] ?? -1)"
                case .success(let r): return "\(r.count) replies"
                case .failure(let e): return "failed: \(e)"
                }
            }
            #expect(outcomes == ["admitted", "admitted", "wrongtype", "admitted", "denied 8", "denied 8"])
            // Six requests, one script call (a heartbeat may add one): not six.
            #expect(scripts >= 1 && scripts <= 2, "6 CHECKs went out as \(scripts) script calls")
            // Each admission is marked undelivered (its sequence holds this bursard's epoch), all
            // three by one SADD; the denied and the broken ones are not.
            for i in 0..<3 {
                let member = try await h.redis.send(RedisCommand("SISMEMBER", Keyspace.undelivered(w.org.id), String(base + UInt64(i))))
                #expect(member.int == 1, "admission \(i) is marked undelivered")
            }
            for i in [3, 4, 99] {
                let member = try await h.redis.send(RedisCommand("SISMEMBER", Keyspace.undelivered(w.org.id), String(base + UInt64(i))))
                #expect(member.int == 0, "attempt \(i) (denied or failed) is not marked undelivered")
            }
            // One more SADD indexes the day's usage-history record of the key and model, at its
            // first write (history.lua); the other steps find it written.
            #expect(sadds == 2, "3 admissions marked by \(sadds) SADDs, one of them the history index's")

            // The three admissions settled together: each its own status; spend is what was settled.
            let admitted = [0, 1, 2].map { ReservationID(orgID: w.org.id, sequence: base + UInt64($0)) }
            let actuals: [Int64] = [10, 20, 30]
            let settles = zip(admitted, actuals).map { r, cost in
                limiter.settleCommand(SettleRequest(reservation: r, inputTokens: 1, outputTokens: 1, cost: cost))
            }
            let settleBefore = try await commandCalls(h, "fcall")
            let settled = try await submitInOneRoundTrip(h, settles + [settles[0]])
            let settleScripts = try await commandCalls(h, "fcall") - settleBefore
            let statuses = try settled.map { try limiter.parseSettle($0.get()[0]).status }
            // The repeated SETTLE of the first, in the same call after it, finds it settled.
            #expect(statuses == [.applied, .applied, .applied, .alreadySettled])
            #expect(settleScripts >= 1 && settleScripts <= 2, "4 SETTLEs went out as \(settleScripts) script calls")
            let record = ReservationRecord(reply: try await h.redis.send(RedisCommand("GET", Keyspace.reservation(w.org.id, admitted[0].sequence))))
            let window = try #require(record?.keyWindow)
            // Estimates 100 + 200 + 300 admitted, settled at 10 + 20 + 30: the window holds 60.
            #expect(try await h.integer(window) == 60, "the key's window holds the settled actuals, exactly")
        }
    }

    @Test("a batched step reads only its own arguments: one cut short fails alone, naming what it lacks, and the next is unaffected")
    func stepsReadOnlyTheirOwnArguments() async throws {
        try await withHarness { h in
            let w = try await h.world()
            let limiter = h.engine.limiter
            let identity = KeyIdentity(orgID: w.org.id, keyID: w.key.key.id)
            let base = ReservationSequence.make(epoch: h.engine.epoch, counter: 920_000)
            // A single call's arguments: FCALL, its function, 1, the key hash, the prefix, then the
            // request's own (key id, digest, model, tokens, cost, TTL, sequence, mode).
            func arguments(_ c: RedisCommand) -> [String] {
                (0..<c.count).map { String(decoding: c.argument($0), as: UTF8.self) }
            }
            let first = arguments(limiter.checkCommand(.make(w.digest, cost: 100), identity: identity, sequence: base))
            let second = arguments(limiter.checkCommand(.make(w.digest, cost: 200), identity: identity, sequence: base + 1))
            #expect(first.count == 13 && second.count == 13, "\(first.count), \(second.count)")
            // The first stops after its cost: no TTL, sequence or mode. Steps read their arguments
            // where they lie in the call's ARGV, so it must not take the second's count and
            // arguments for them.
            let cut = Array(first[5..<10]), whole = Array(second[5...])
            let function = try #require(limiter.checkBatchScript.function)
            _ = try await h.redis.send([limiter.checkBatchScript.loadCommand])
            let call = RedisCommand(["FCALL", function, "2", first[3], second[3], first[4], String(cut.count)] + cut + [String(whole.count)] + whole)
            let replies = try #require(try await h.redis.send(call).array)
            #expect(replies.count == 2)
            guard case .error(let message) = replies[0] else {
                Issue.record("the cut-short CHECK answered \(replies[0])")
                return
            }
            #expect(message.contains("CHECK takes a prefix and at least 7 arguments"), "\(message)")
            let answer = try limiter.parseCheck(replies[1], identity: identity, reservation: ReservationID(orgID: w.org.id, sequence: base + 1))
            guard case .decided(let result) = answer else {
                Issue.record("the second CHECK answered \(answer)")
                return
            }
            #expect(result.allowed)
            // The second's reservation holds its own estimate; the window holds it alone.
            let record = try #require(ReservationRecord(reply: try await h.redis.send(RedisCommand("GET", Keyspace.reservation(w.org.id, base + 1)))))
            #expect(record.status == "open" && record.cost == 200)
            #expect(try await h.integer(try #require(record.keyWindow)) == 200)
        }
    }

    @Test("the money counters of one call are written behind: each step sees the ones before it, Redis ends as step by step, one INCRBY per counter")
    func moneyWrittenBehind() async throws {
        try await withHarness { h in
            // Credits 1,000 nano-USD, a key budget of 1,000 a month, and the project's monthly window.
            let w = try await h.world(metered: true, credits: 1_000, limits: KeyLimits(budget: 1_000))
            let limiter = h.engine.limiter
            let identity = KeyIdentity(orgID: w.org.id, keyID: w.key.key.id)
            let base = ReservationSequence.make(epoch: h.engine.epoch, counter: 910_000)
            let costs: [Int64] = [300, 400, 200, 300]
            let checks = costs.enumerated().map { i, cost in
                limiter.checkCommand(.make(w.digest, cost: cost), identity: identity, sequence: base + UInt64(i))
            }
            let incrbyBefore = try await commandCalls(h, "incrby")
            let scriptsBefore = try await commandCalls(h, "fcall")
            let replies = try await submitInOneRoundTrip(h, checks)
            let scripts = try await commandCalls(h, "fcall") - scriptsBefore
            #expect(scripts >= 1 && scripts <= 2, "4 CHECKs went out as \(scripts) script calls")
            let answers = try replies.enumerated().map { i, r -> CheckResult in
                let reply = try limiter.parseCheck(try r.get()[0], identity: identity, reservation: ReservationID(orgID: w.org.id, sequence: base + UInt64(i)))
                guard case .decided(let result) = reply else { Issue.record("CHECK \(i): \(reply)"); throw HoldFailed() }
                return result
            }
            // Each step decided on what the steps before it in the call had debited: the fourth
            // (300 more on 900) is over the key's budget, and the credits it would have needed.
            #expect(answers.map(\.allowed) == [true, true, true, false])
            #expect(answers[3].reason == .keyBudget)
            #expect(answers.prefix(3).map(\.orgCreditsRemaining) == [700, 300, 100])
            #expect(answers.prefix(3).map(\.keyBudgetRemaining) == [700, 300, 100])
            // Written once each, by the call's net amount: the key's window, the project's, the credits.
            #expect(try await commandCalls(h, "incrby") - incrbyBefore == 3)
            let record = try #require(ReservationRecord(reply: try await h.redis.send(RedisCommand("GET", Keyspace.reservation(w.org.id, base)))))
            let keyWindow = try #require(record.keyWindow), projectWindow = try #require(record.projectWindow)
            #expect(try await h.integer(keyWindow) == 900)
            #expect(try await h.integer(projectWindow) == 900)
            #expect(try await h.integer(Keyspace.credits(w.org.id)) == 100)
            // Both windows were made by this call, and expire (35 days after their window ends).
            for window in [keyWindow, projectWindow] {
                let ttl = try await h.redis.send(RedisCommand("PTTL", window)).int ?? -2
                #expect(ttl > 35 * 86_400_000, "\(window) expires (PTTL \(ttl))")
            }
            // The crossings of 50 % (at 700) and 80 % (at 900) of the key's budget, once each,
            // their markers expiring with the window.
            #expect(limiter.checkAlerts(try replies[1].get()[0]) == [.key50])
            #expect(limiter.checkAlerts(try replies[2].get()[0]) == [.key80])
            let windowTTL = try await h.redis.send(RedisCommand("PTTL", keyWindow)).int ?? 0
            for pct in [50, 80] {
                let ttl = try await h.redis.send(RedisCommand("PTTL", keyWindow + ":a\(pct)")).int ?? -2
                #expect(ttl > 0 && abs(ttl - windowTTL) < 60_000, "marker a\(pct) expires with the window (\(ttl) vs \(windowTTL))")
            }

            // Settled together at 50 each: every counter gives back 750, again one INCRBY each.
            let settles = (0..<3).map { i in
                limiter.settleCommand(SettleRequest(reservation: ReservationID(orgID: w.org.id, sequence: base + UInt64(i)), inputTokens: 1, outputTokens: 1, cost: 50))
            }
            let incrbySettle = try await commandCalls(h, "incrby")
            let settled = try await submitInOneRoundTrip(h, settles)
            #expect(try settled.map { try limiter.parseSettle($0.get()[0]).status } == [.applied, .applied, .applied])
            #expect(try await commandCalls(h, "incrby") - incrbySettle == 3)
            #expect(try await h.integer(keyWindow) == 150)
            #expect(try await h.integer(projectWindow) == 150)
            #expect(try await h.integer(Keyspace.credits(w.org.id)) == 850)
        }
    }

    @Test("the rate buckets of one call are written behind: each step sees the ones before it, Redis ends as step by step, one write per pair")
    func bucketsWrittenBehind() async throws {
        try await withHarness { h in
            // A key of 3 requests a minute in a project of 100; two organizations on one frozen
            // clock: one gets 4 CHECKs in one call, the other the same 4 one by one.
            let limits = KeyLimits(rpm: 3, tpm: 1_000)
            let batched = try await h.world(project: ([], 100, 10_000, nil), limits: limits)
            let single = try await h.world(project: ([], 100, 10_000, nil), limits: limits)
            try await h.store.setTestClock(org: single.org.id, us: try await h.clockUs(org: batched.org.id))
            let limiter = h.engine.limiter
            func checks(_ w: Harness.World, from counter: UInt64) -> [RedisCommand] {
                let identity = KeyIdentity(orgID: w.org.id, keyID: w.key.key.id)
                let base = ReservationSequence.make(epoch: h.engine.epoch, counter: counter)
                return (0..<4).map { i in
                    limiter.checkCommand(.make(w.digest, input: 100, output: 50, cost: 10), identity: identity, sequence: base + UInt64(i))
                }
            }
            func answers(_ replies: [Result<[RedisValue], RedisError>], _ w: Harness.World, from counter: UInt64) throws -> [CheckResult] {
                let identity = KeyIdentity(orgID: w.org.id, keyID: w.key.key.id)
                let base = ReservationSequence.make(epoch: h.engine.epoch, counter: counter)
                return try replies.enumerated().map { i, r -> CheckResult in
                    let reply = try limiter.parseCheck(try r.get()[0], identity: identity, reservation: ReservationID(orgID: w.org.id, sequence: base + UInt64(i)))
                    guard case .decided(let result) = reply else { Issue.record("CHECK \(i): \(reply)"); throw HoldFailed() }
                    return result
                }
            }
            let setsBefore = try await commandCalls(h, "set")
            let scriptsBefore = try await commandCalls(h, "fcall")
            let together = try answers(try await submitInOneRoundTrip(h, checks(batched, from: 920_000)), batched, from: 920_000)
            let sets = try await commandCalls(h, "set") - setsBefore
            let scripts = try await commandCalls(h, "fcall") - scriptsBefore
            try #require(scripts == 1, "4 CHECKs went out as \(scripts) script calls")
            // The fourth is over the key's 3 requests a minute: it saw the three before it.
            #expect(together.map(\.allowed) == [true, true, true, false])
            #expect(together[3].reason == .keyRPM)
            #expect(together.prefix(3).map(\.requestsRemaining) == [2, 1, 0])
            // Three reservations and three writes of the day's history record, then each pair
            // once: the key's and the project's.
            #expect(sets == 8, "\(sets) SETs for 3 admissions")

            var oneByOne: [CheckResult] = []
            for command in checks(single, from: 930_000) {
                let r = await submitTogether(h, [command])
                oneByOne += try answers(r, single, from: 930_000 + UInt64(oneByOne.count))
            }
            #expect(oneByOne.map(\.allowed) == together.map(\.allowed))
            #expect(oneByOne.map(\.reason) == together.map(\.reason))
            #expect(oneByOne.map(\.tokensRemaining) == together.map(\.tokensRemaining))
            // What Redis holds is the same, levels, times and expiries.
            for (scope, a, b) in [("k", batched.key.key.id, single.key.key.id), ("p", batched.project.id, single.project.id)] {
                let kept = try await h.redis.send(RedisCommand("GET", Keyspace.buckets(batched.org.id, scope: scope, id: a))).string
                let stepwise = try await h.redis.send(RedisCommand("GET", Keyspace.buckets(single.org.id, scope: scope, id: b))).string
                #expect(kept != nil && kept == stepwise, "\(scope): \(kept ?? "none") vs \(stepwise ?? "none")")
                let ttlA = try await h.redis.send(RedisCommand("PTTL", Keyspace.buckets(batched.org.id, scope: scope, id: a))).int ?? -2
                let ttlB = try await h.redis.send(RedisCommand("PTTL", Keyspace.buckets(single.org.id, scope: scope, id: b))).int ?? -2
                #expect(ttlA > 0 && abs(ttlA - ttlB) < 30_000, "\(scope): PTTL \(ttlA) vs \(ttlB)")
            }

            // The three admitted settle at 20 tokens each (150 reserved): together in one call,
            // and one by one; the token buckets give back the same.
            func settles(_ w: Harness.World, from counter: UInt64) -> [RedisCommand] {
                let base = ReservationSequence.make(epoch: h.engine.epoch, counter: counter)
                return (0..<3).map { i in
                    limiter.settleCommand(SettleRequest(reservation: ReservationID(orgID: w.org.id, sequence: base + UInt64(i)), inputTokens: 15, outputTokens: 5, cost: 10))
                }
            }
            let settleSets = try await commandCalls(h, "set"), settleRanges = try await commandCalls(h, "setrange")
            let settledTogether = try await submitInOneRoundTrip(h, settles(batched, from: 920_000))
            #expect(try settledTogether.map { try limiter.parseSettle($0.get()[0]).status } == [.applied, .applied, .applied])
            // Three history writes, then each pair once; each reservation changed in place (its
            // status and actuals: one SETRANGE), not rewritten.
            #expect(try await commandCalls(h, "set") - settleSets == 5)
            #expect(try await commandCalls(h, "setrange") - settleRanges == 3)
            for command in settles(single, from: 930_000) {
                let r = await submitTogether(h, [command])
                #expect(try limiter.parseSettle(try r[0].get()[0]).status == .applied)
            }
            for (scope, a, b) in [("k", batched.key.key.id, single.key.key.id), ("p", batched.project.id, single.project.id)] {
                let kept = try await h.redis.send(RedisCommand("GET", Keyspace.buckets(batched.org.id, scope: scope, id: a))).string
                let stepwise = try await h.redis.send(RedisCommand("GET", Keyspace.buckets(single.org.id, scope: scope, id: b))).string
                #expect(kept != nil && kept == stepwise, "after SETTLE, \(scope): \(kept ?? "none") vs \(stepwise ?? "none")")
            }
        }
    }
}

/// Replies collected from completion handlers, in submission order.
private final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<[RedisValue], RedisError>?]
    private var missing: Int
    private var done: CheckedContinuation<Void, Never>?

    init(count: Int) {
        slots = Array(repeating: nil, count: count)
        missing = count
    }

    func whenAll(_ continuation: CheckedContinuation<Void, Never>) {
        lock.lock()
        done = continuation
        lock.unlock()
    }

    func add(_ i: Int, _ result: Result<[RedisValue], RedisError>) {
        lock.lock()
        slots[i] = result
        missing -= 1
        let finished = missing == 0 ? done : nil
        lock.unlock()
        finished?.resume()
    }

    var replies: [Result<[RedisValue], RedisError>] {
        lock.lock()
        defer { lock.unlock() }
        return slots.map { $0! }
    }
}
