import BursarClient
import BursarLimits
import BursarRedis
@_spi(Testing) @testable import BursarStore
import BursarWire
import Foundation
import Testing

/// The Lua of the atomic steps (Sources/BursarStore/Lua) and what it shares with Swift: the
/// files compiled in, the names put into it, the CHECK reply's slots, and the rate buckets it
/// keeps, checked against `BursarLimits.MinuteBucket` as an oracle.
@Suite("Lua scripts")
struct LuaScriptTests {
    /// Sources/BursarStore/Lua, from this file's path.
    static let luaDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/BursarStore/Lua")

    @Test("every .lua file in Sources/BursarStore/Lua is compiled in, byte for byte, and nothing else is")
    func filesCompiledIn() throws {
        let onDisk = try FileManager.default.contentsOfDirectory(atPath: Self.luaDirectory.path).filter { $0.hasSuffix(".lua") }
        #expect(Set(onDisk) == Set(LuaFile.allCases.map(\.fileName)))
        for file in LuaFile.allCases {
            let bytes = try Data(contentsOf: Self.luaDirectory.appendingPathComponent(file.fileName))
            #expect([UInt8](bytes) == file.bytes, "\(file.fileName) differs from what is compiled in")
        }
    }

    @Test("no Lua is left in Swift: no source file of the package calls redis.call")
    func noLuaInSwift() throws {
        let sources = Self.luaDirectory.deletingLastPathComponent().deletingLastPathComponent()
        let files = FileManager.default.enumerator(atPath: sources.path)!.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }
        #expect(!files.isEmpty)
        for file in files {
            let text = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
            #expect(!text.contains("redis" + ".call"), "\(file) holds Lua")
        }
    }

    @Test("the shared names are put in from their Swift definitions; comments are left alone; an unknown name is refused")
    func namesPutIn() throws {
        let text = """
            local r = DENY.key_rpm -- DENY.nothing here
            if CLOCK.test then x = P .. NAME.key_spend .. STATUS.already_settled .. OUTCOME.fenced .. BUCKET.scale end
            local MYDENY = {}; local y = MYDENY.z
            """
        let expanded = try LuaSource.expand(text, clock: .redis)
        #expect(expanded == """
            local r = \(DenyReason.keyRPM.rawValue) -- DENY.nothing here
            if false then x = P .. '\(Keyspace.Segment.keySpend.rawValue)' .. \(ReservationStatus.alreadySettled.rawValue) .. \(CheckOutcome.fenced.rawValue) .. \(MinuteBucket.scale) end
            local MYDENY = {}; local y = MYDENY.z

            """)
        #expect(try LuaSource.expand("if CLOCK.test then end", clock: .testFrozen) == "if true then end\n")
        #expect(throws: LuaSource.UnknownName.self) { try LuaSource.expand("return DENY.key_rpn", clock: .redis) }
        #expect(throws: LuaSource.UnknownName.self) { try LuaSource.expand("return NAME.keyspend", clock: .redis) }
        // Every deny reason, outcome and status has a name; the names are the wire protocol's.
        let tables = LuaSource.constants(clock: .redis)
        #expect(tables["DENY"]?["unknown_key"] == "1" && tables["DENY"]?.count == DenyReason.allCases.count)
        #expect(tables["OUTCOME"] == ["denied": "0", "admitted": "1", "fenced": "2", "already_recorded": "3"])
        #expect(tables["NAME"]?["key_buckets"] == "'b:k:'" && tables["NAME"]?["lifetime"] == "'life'")
        #expect(Keyspace.buckets(7, scope: "k", id: 9) == "br:{o7}:b:k:9" && Keyspace.keySpend(7, 9, window: "life") == "br:{o7}:s:k:9:life")
    }

    @Test("every script loads into Redis: each is valid Lua once its names are put in")
    func scriptsLoad() async throws {
        try await withHarness { h in
            var scripts = Limiter(clock: .testFrozen).scripts + Limiter().scripts
            scripts += [LimiterLua.compile, UsageLua.key(.redis), UsageLua.project(.redis), UsageLua.org(.redis), UsageLua.top(.testFrozen)].map { RedisScript(source: $0) }
            scripts += MetadataLua.all
            // CHECK and SETTLE, single and batched, on either clock, are libraries, each named by its code.
            let libraries = scripts.compactMap(\.function)
            #expect(libraries.count == 8 && Set(libraries).count == 8, "\(libraries)")
            for script in scripts {
                guard let name = script.function else { continue }
                #expect(name.hasPrefix("bursar_") && name.count == 47 && script.source.hasPrefix("#!lua name=\(name)\n"), "\(name)")
            }
            for script in scripts {
                // A library the harness's own engine loaded already answers so: loaded either way.
                let reply = try await h.redis.send([script.loadCommand])[0]
                #expect(script.isLoaded(by: reply), "\(script.function ?? script.sha1): \(reply)")
            }
        }
    }

    @Test("the CHECK reply's slots are what CheckReplySlot names")
    func checkReplySlots() async throws {
        try await withHarness { h in
            let w = try await h.world(
                metered: true, credits: 100_000, project: ([], 50, 9_000, 8_000),
                limits: KeyLimits(budget: 5_000, period: .daily, rpm: 7, tpm: 1_000))
            let limiter = Limiter(clock: .testFrozen)
            let request = CheckRequest.make(w.digest, input: 12, output: 8, cost: 300)
            let identity = KeyIdentity(orgID: w.org.id, keyID: w.key.key.id)
            let reply = try await h.redis.send(limiter.checkCommand(request, identity: identity, sequence: ReservationSequence.make(epoch: 5, counter: 1)))
            // Decided: one string, the 18 slots as big-endian 64-bit integers.
            guard case .bulk(let packed) = reply else { Issue.record("not packed: \(reply)"); return }
            #expect(packed.count == CheckReplySlot.allCases.count * 8)
            let a = try #require(CheckReplySlots(reply))
            #expect(a.count == CheckReplySlot.allCases.count)
            func slot(_ s: CheckReplySlot) -> Int64? { a[s] }
            let nowMs = try await h.clockUs(org: w.org.id) / 1000
            let day = SpendWindow.containing(nowMs, period: .daily)
            let month = SpendWindow.containing(nowMs, period: .monthly)
            #expect(slot(.outcome) == CheckOutcome.admitted.rawValue)
            #expect(slot(.reason) == Int64(DenyReason.none.rawValue))
            #expect(slot(.retryAfterMs) == 0 && slot(.absent) == 0)
            #expect(slot(.project) == Int64(w.project.id))
            #expect(slot(.flags) == 0)
            #expect(slot(.requestsLimit) == 7 && slot(.requestsRemaining) == 6)
            #expect(slot(.tokensLimit) == 1_000 && slot(.tokensRemaining) == 980)
            #expect(slot(.keyBudgetRemaining) == 4_700 && slot(.keyBudgetResetAtMs) == day.endMs)
            #expect(slot(.projectBudgetRemaining) == 7_700 && slot(.projectBudgetResetAtMs) == month.endMs)
            #expect(slot(.orgCredits) == 99_700)
            // A refusal before the counters are read is an array that stops after `flags`; an
            // unknown key's after `reason`.
            let tooLarge = try await h.redis.send(limiter.checkCommand(
                CheckRequest.make(w.digest, input: 900, output: 200), identity: identity, sequence: ReservationSequence.make(epoch: 5, counter: 2)))
            #expect(tooLarge.array?.count == CheckReplySlot.flags.rawValue + 1)
            #expect(CheckReplySlots(tooLarge)?[.reason] == Int64(DenyReason.requestTooLarge.rawValue))
            #expect(CheckReplySlots(tooLarge)?[.project] == Int64(w.project.id))
            let unknown = try await h.redis.send(limiter.checkCommand(
                CheckRequest.make(KeyDigest(secret: "bk-nobody")), identity: identity, sequence: ReservationSequence.make(epoch: 5, counter: 3)))
            #expect(unknown.array?.count == CheckReplySlot.reason.rawValue + 1)
            #expect(CheckReplySlots(unknown)?[.reason] == Int64(DenyReason.unknownKey.rawValue))

            // No budget on the key or its project, an organization not metered: the three optional
            // slots have no value (`absent` says so), read as unlimited; the others as before.
            let free = try await h.world()
            let freeIdentity = KeyIdentity(orgID: free.org.id, keyID: free.key.key.id)
            let open = try await h.redis.send(limiter.checkCommand(
                CheckRequest.make(free.digest, cost: 300), identity: freeIdentity, sequence: ReservationSequence.make(epoch: 5, counter: 4)))
            let b = try #require(CheckReplySlots(open))
            #expect(b[.outcome] == CheckOutcome.admitted.rawValue && b[.project] == Int64(free.project.id))
            #expect(b[.absent] == CheckReplySlots.absentKeyBudget | CheckReplySlots.absentProjectBudget | CheckReplySlots.absentCredits)
            #expect(b[.keyBudgetRemaining] == nil && b[.projectBudgetRemaining] == nil && b[.orgCredits] == nil)
            #expect(b[.keyBudgetResetAtMs] == month.endMs && b[.requestsLimit] == 0)
            guard case .decided(let result) = try limiter.parseCheck(open, identity: freeIdentity, reservation: ReservationID(orgID: free.org.id, sequence: 4)) else {
                Issue.record("not decided: \(open)"); return
            }
            #expect(result.allowed && result.keyBudgetRemaining == CheckResult.unlimited
                && result.projectBudgetRemaining == CheckResult.unlimited && result.orgCreditsRemaining == CheckResult.unlimited)
            // A negative value packs and reads as itself: a budget already overspent (by settled
            // actuals above their estimates) leaves less than nothing.
            _ = try await h.redis.send(RedisCommand("INCRBY", Keyspace.keySpend(w.org.id, w.key.key.id, window: String(day.startMs)), "10000"))
            let over = try #require(CheckReplySlots(try await h.redis.send(limiter.checkCommand(
                CheckRequest.make(w.digest, input: 12, output: 8, cost: 1), identity: identity, sequence: ReservationSequence.make(epoch: 5, counter: 5)))))
            #expect(over[.reason] == Int64(DenyReason.keyBudget.rawValue) && over[.keyBudgetRemaining] == 4_700 - 10_000)
        }
    }
}

/// A small deterministic generator (SplitMix64), so a failing sequence can be replayed from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The Lua limiter against the Swift model of BursarLimits: random sequences of CHECKs, SETTLEs,
/// RELEASEs and clock moves on Redis's test clock, through a real bursard data plane; after every
/// step the admission, the deny reason, the retry hint, the rate headers and the key's stored
/// bucket levels must be what `MinuteBucket` computes.
@Suite("Lua limiter against the Swift model (differential)")
struct LimiterDifferentialTests {
    static let sequences = 24
    static let operationsPerSequence = 150

    /// The model of one key's two buckets.
    struct Model {
        var rpm: MinuteBucket
        var tpm: MinuteBucket
    }

    @Test("random sequences: identical admissions, reasons, retry hints, headers and bucket levels")
    func differential() async throws {
        // Reservations outlive the sequences' simulated hours, so every SETTLE and RELEASE applies.
        try await withHarness(reservationTTLMs: 7 * 86_400_000) { h in
            let c = try await h.connect()
            var operations = 0
            for n in 0..<Self.sequences {
                let seed = 0x5EED_0000 + UInt64(n)
                operations += try await Self.run(seed: seed, h, c)
            }
            print("differential: \(Self.sequences) sequences, \(operations) operations")
            #expect(operations == Self.sequences * Self.operationsPerSequence)
        }
    }

    /// One sequence; returns how many operations it ran.
    static func run(seed: UInt64, _ h: Harness, _ c: BursarConnection) async throws -> Int {
        var rng = SplitMix64(state: seed)
        let rpm = Int64.random(in: 1...12, using: &rng)
        let tpm = Int64.random(in: 40...3_000, using: &rng)
        let w = try await h.world(limits: KeyLimits(rpm: rpm, tpm: tpm))
        let org = w.org.id
        var now = try await h.clockUs(org: org)
        var model = Model(rpm: MinuteBucket(limit: rpm, level: 0, updatedUs: now), tpm: MinuteBucket(limit: tpm, level: 0, updatedUs: now))
        var open: [(id: ReservationID, tokens: Int64)] = []
        let context = "seed \(String(seed, radix: 16)) (rpm \(rpm), tpm \(tpm))"

        for step in 0..<operationsPerSequence {
            let where_ = "\(context), step \(step)"
            switch Int.random(in: 0..<10, using: &rng) {
            case 0...1:
                // The clock moves: within a millisecond, within seconds, or past a minute.
                let us: Int64 = switch Int.random(in: 0..<3, using: &rng) {
                case 0: .random(in: 0...1_500, using: &rng)
                case 1: .random(in: 0...8_000_000, using: &rng)
                default: .random(in: 30_000_000...90_000_000, using: &rng)
                }
                now += us
                try await h.store.setTestClock(org: org, us: now)
            case 2...3 where !open.isEmpty:
                // SETTLE with actual tokens below or above the estimate: TPM moves by the difference.
                let r = open.remove(at: Int.random(in: 0..<open.count, using: &rng))
                let actual = Int64.random(in: 0...(r.tokens * 2 + 5), using: &rng)
                let result = try await c.settle(SettleRequest(
                    reservation: r.id, inputTokens: UInt32(actual / 2), outputTokens: UInt32(actual - actual / 2), cost: 0))
                #expect(result.status == .applied && result.tokenDelta == actual - r.tokens, "\(where_): settle \(result)")
                if actual != r.tokens { model.tpm = model.tpm.moved(by: actual - r.tokens, atUs: now) }
            case 4 where !open.isEmpty:
                // RELEASE: the estimate's tokens go back; the request stays counted.
                let r = open.remove(at: Int.random(in: 0..<open.count, using: &rng))
                let result = try await c.release(r.id)
                #expect(result.status == .applied, "\(where_): release \(result)")
                if r.tokens != 0 { model.tpm = model.tpm.moved(by: -r.tokens, atUs: now) }
            default:
                let tokens = Int64.random(in: 0...(tpm + tpm / 4), using: &rng)
                let input = tokens / 3
                let result = try await c.check(.make(w.digest, input: UInt32(input), output: UInt32(tokens - input), cost: 0))
                let expected = expect(check: tokens, model: &model, nowUs: now)
                #expect(result.allowed == expected.allowed && result.reason == expected.reason, "\(where_): CHECK of \(tokens) tokens got \(result.reason), the model \(expected.reason)")
                #expect(result.retryAfterMs == expected.retryMs, "\(where_): retry \(result.retryAfterMs) ms, the model \(expected.retryMs)")
                if expected.reason != .requestTooLarge {
                    #expect(result.requestsLimit == UInt32(rpm) && result.tokensLimit == UInt32(tpm), "\(where_)")
                    #expect(result.requestsRemaining == expected.requests.remaining && result.requestsResetMs == expected.requests.resetMs,
                            "\(where_): requests \(result.requestsRemaining)/\(result.requestsResetMs) ms, the model \(expected.requests)")
                    #expect(result.tokensRemaining == expected.tokens.remaining && result.tokensResetMs == expected.tokens.resetMs,
                            "\(where_): tokens \(result.tokensRemaining)/\(result.tokensResetMs) ms, the model \(expected.tokens)")
                }
                if result.allowed { open.append((result.reservation, tokens)) }
            }
            // The stored buckets, drained to now, hold the model's levels.
            let stored = try #require(RateBuckets(reply: try await h.redis.send(RedisCommand("GET", Keyspace.buckets(org, scope: "k", id: w.key.key.id)))))
            let rpmLevel = MinuteBucket(limit: rpm, level: stored.rpmLevel, updatedUs: stored.rpmUpdatedUs).level(atUs: now)
            let tpmLevel = MinuteBucket(limit: tpm, level: stored.tpmLevel, updatedUs: stored.tpmUpdatedUs).level(atUs: now)
            #expect(rpmLevel == model.rpm.level(atUs: now) && tpmLevel == model.tpm.level(atUs: now),
                    "\(where_): stored levels \(rpmLevel), \(tpmLevel); the model \(model.rpm.level(atUs: now)), \(model.tpm.level(atUs: now))")
        }
        return operationsPerSequence
    }

    /// What the model answers to a CHECK of `tokens` at `nowUs` (and the model after it).
    static func expect(check tokens: Int64, model: inout Model, nowUs: Int64)
        -> (allowed: Bool, reason: DenyReason, retryMs: UInt32, requests: (remaining: UInt32, resetMs: UInt32), tokens: (remaining: UInt32, resetMs: UInt32))
    {
        func header(_ b: MinuteBucket) -> (remaining: UInt32, resetMs: UInt32) {
            (UInt32(b.remaining(atUs: nowUs)), UInt32((b.resetUs(atUs: nowUs) + 999) / 1000))
        }
        func ms(_ us: Int64) -> UInt32 { UInt32((us + 999) / 1000) }
        if tokens > model.tpm.limit { return (false, .requestTooLarge, 0, (0, 0), (0, 0)) }
        let r = model.rpm.evaluate(take: 1, atUs: nowUs)
        let t = model.tpm.evaluate(take: tokens, atUs: nowUs)
        switch (r, t) {
        case (.admitted(let rl), .admitted(let tl)):
            model.rpm = MinuteBucket(limit: model.rpm.limit, level: rl, updatedUs: nowUs)
            model.tpm = MinuteBucket(limit: model.tpm.limit, level: tl, updatedUs: nowUs)
            return (true, .none, 0, header(model.rpm), header(model.tpm))
        case (.retryAfter(let us), _):
            return (false, .keyRPM, ms(us), header(model.rpm), header(model.tpm))
        case (_, .retryAfter(let us)):
            return (false, .keyTPM, ms(us), header(model.rpm), header(model.tpm))
        default:
            return (false, .requestTooLarge, 0, (0, 0), (0, 0))
        }
    }
}
