import BursarClient
import BursarRedis
import BursarServer
import BursarStore
import BursarWire
import Testing

/// Every allow and deny reason, against a real redis-server started by the test.
@Suite("CHECK decisions against real Redis")
struct DecisionTests {
    @Test("an allowed CHECK reserves and reports the key, project, org and limit headroom")
    func allowReportsEverything() async throws {
        try await withHarness { h in
            let w = try await h.world(
                metered: true, credits: 10_000, project: ([], 600, 120_000, 2_000_000),
                limits: KeyLimits(budget: 5_000, period: .daily, rpm: 60, tpm: 20_000, contentLoggingDisabled: true))
            let c = try await h.connect()
            let r = try await c.check(.make(w.digest, input: 100, output: 400, cost: 1_200))
            #expect(r.allowed)
            #expect(r.reason == .none)
            // The client holds a sealed id (SPEC §5); it names the organization's reservation whose
            // sequence is bursard's own choice: its epoch's first, made before it was sent.
            let name = try h.name(r)
            #expect(name.orgID == w.org.id && ReservationSequence.counter(of: name.sequence) == 1)
            #expect(r.reservation != name && r.reservation.orgID != w.org.id, "the id shows the organization in clear")
            #expect(ReservationSequence.epoch(of: name.sequence) == h.engine.epoch && h.engine.epoch > 0)
            #expect(!ReservationSequence.isLocal(name.sequence))
            #expect(r.keyID == w.key.key.id && r.projectID == w.project.id && r.orgID == w.org.id)
            #expect(r.contentLoggingDisabled)
            // Tighter of key (60 RPM, 59 left) and project (600, 599 left) is the key.
            #expect(r.requestsLimit == 60 && r.requestsRemaining == 59)
            #expect(r.requestsResetMs == 1_000)
            #expect(r.tokensLimit == 20_000 && r.tokensRemaining == 19_500)
            #expect(r.tokensResetMs == 1_500)
            #expect(r.keyBudgetRemaining == 3_800)
            #expect(r.projectBudgetRemaining == 2_000_000 - 1_200)
            #expect(r.orgCreditsRemaining == 8_800)
            #expect(try await h.store.credits(w.org.id) == 8_800)
            await c.close()
        }
    }

    @Test("an unlimited key reports no limits and unlimited budgets")
    func unlimited() async throws {
        try await withHarness { h in
            let w = try await h.world()
            let c = try await h.connect()
            let r = try await c.check(.make(w.digest))
            #expect(r.allowed)
            #expect(r.requestsLimit == 0 && r.tokensLimit == 0)
            #expect(r.keyBudgetRemaining == CheckResult.unlimited)
            #expect(r.projectBudgetRemaining == CheckResult.unlimited)
            #expect(r.orgCreditsRemaining == CheckResult.unlimited)
            #expect(!r.contentLoggingDisabled)
            await c.close()
        }
    }

    @Test("an unknown digest is denied and then served from the negative cache")
    func unknownKey() async throws {
        try await withHarness(negativeCacheTTL: .seconds(60)) { h in
            let c = try await h.connect()
            let digest = KeyDigest(secret: "sk-br-not-a-key")
            let before = h.engine.cacheStats.negativeHits.load(ordering: .relaxed)
            #expect(try await c.check(.make(digest)).reason == .unknownKey)
            #expect(try await c.check(.make(digest)).reason == .unknownKey)
            #expect(h.engine.cacheStats.negativeHits.load(ordering: .relaxed) == before + 1)
            await c.close()
        }
    }

    @Test("revocation applies on the very next CHECK despite the cache")
    func revoked() async throws {
        try await withHarness { h in
            let w = try await h.world()
            let c = try await h.connect()
            #expect(try await c.check(.make(w.digest)).allowed)
            try await h.store.revokeKey(org: w.org.id, w.key.key.id)
            let r = try await c.check(.make(w.digest))
            #expect(r.reason == .keyRevoked && !r.allowed && r.reservation == .none)
            await c.close()
        }
    }

    @Test("a key stops working at its expiry time")
    func expired() async throws {
        try await withHarness { h in
            let org = try await h.store.createOrganization(name: "o")
            try await h.freezeClock(org: org.id)
            let now = try await h.clockUs(org: org.id) / 1000
            let owner = try await h.store.createUser(org: org.id, email: "o-\(org.id)@o.test", name: "o", role: .owner)
            let p = try await h.store.createProject(org: org.id, name: "p")
            let key = try await h.store.createKey(org: org.id, project: p.id, user: owner.id, name: "k", limits: KeyLimits(expiresAtMs: now + 60_000))
            let c = try await h.connect()
            #expect(try await c.check(.make(KeyDigest(secret: key.secret))).allowed)
            try await h.advance(org: org.id, by: .seconds(61))
            #expect(try await c.check(.make(KeyDigest(secret: key.secret))).reason == .keyExpired)
            await c.close()
        }
    }

    @Test("a key stops working when its creator leaves the project or the organization")
    func creatorLostAccess() async throws {
        try await withHarness { h in
            let w = try await h.world()
            let c = try await h.connect()
            #expect(try await c.check(.make(w.digest)).allowed)
            try await h.store.removeMembership(org: w.org.id, project: w.project.id, user: w.member.id)
            #expect(try await c.check(.make(w.digest)).reason == .creatorLostAccess)

            let w2 = try await h.world()
            try await h.store.removeUser(org: w2.org.id, w2.member.id)
            #expect(try await c.check(.make(w2.digest)).reason == .creatorLostAccess)
            await c.close()
        }
    }

    @Test("an owner's key needs no project membership, and demoting the owner cuts it off")
    func ownerKey() async throws {
        try await withHarness { h in
            let w = try await h.world(ownerKey: true)
            let c = try await h.connect()
            #expect(try await c.check(.make(w.digest)).allowed)
            // The last Owner cannot be demoted, so the member becomes an Owner first.
            try await h.store.setUserRole(org: w.org.id, w.member.id, .owner)
            try await h.store.setUserRole(org: w.org.id, w.owner.id, .member)
            #expect(try await c.check(.make(w.digest)).reason == .creatorLostAccess)
            await c.close()
        }
    }

    @Test("an archived project and a suspended organization deny their keys")
    func projectAndOrgStanding() async throws {
        try await withHarness { h in
            let w = try await h.world()
            let c = try await h.connect()
            var p = w.project
            p.status = .archived
            try await h.store.updateProject(p)
            #expect(try await c.check(.make(w.digest)).reason == .projectInactive)
            p.status = .active
            try await h.store.updateProject(p)
            #expect(try await c.check(.make(w.digest)).allowed)
            try await h.store.setOrganizationStatus(w.org.id, .suspended)
            #expect(try await c.check(.make(w.digest)).reason == .orgSuspended)
            await c.close()
        }
    }

    @Test("a CHECK reads one metadata hash: the key's compiled record, rewritten by admin writes and compiled by a CHECK when missing")
    func compiledRecord() async throws {
        try await withHarness { h in
            let w = try await h.world(project: ([], 600, nil, nil), grant: Grant(rpm: 30), limits: KeyLimits(rpm: 60))
            let c = try await h.connect()
            let hash = Keyspace.key(w.org.id, w.key.key.id)
            // The packed record, shown as "4 gate met rpm tpm bud prpm ptpm pbud pnm gnm knm expires
            // period flags project user", '-' = no limit.
            func compiled() async throws -> String? {
                guard case .bulk(let x) = try await h.redis.send(RedisCommand("HGET", hash, "x")) else { return nil }
                return compiledText(x)
            }
            let ids = "\(w.project.id) \(w.member.id)"
            // Written by the key's creation: the grant's 30 RPM is tighter than the key's 60.
            #expect(try await compiled() == "4 0 0 30 - - 600 - - 0 0 0 0 monthly 0 \(ids)")
            // One admitted CHECK reads one hash (HMGET of two fields): not the organization's,
            // project's and membership's besides (the heartbeat's HGETs may run meanwhile, so HMGET
            // is what counts).
            func calls(_ command: String) async throws -> Int { try await commandCalls(h, command) }
            let hmget = try await calls("hmget")
            let r = try await c.check(.make(w.digest))
            #expect(r.allowed && r.requestsLimit == 30 && r.requestsRemaining == 29)
            #expect(try await calls("hmget") == hmget + 1)

            // Admin writes rewrite it: metering on, the grant loosened, the project's RPM lowered.
            try await h.store.setMetered(w.org.id, true)
            try await h.store.addCredits(w.org.id, 1_000_000)
            try await h.store.setMembership(Membership(orgID: w.org.id, projectID: w.project.id, userID: w.member.id, role: .member, grant: Grant(rpm: 50)))
            var p = w.project
            p.rpm = 45
            try await h.store.updateProject(p)
            #expect(try await compiled() == "4 0 1 50 - - 45 - - 0 0 0 0 monthly 0 \(ids)")
            let metered = try await c.check(.make(w.digest, cost: 10))
            #expect(metered.allowed && metered.requestsLimit == 45 && metered.orgCreditsRemaining == 1_000_000 - 10)

            // A key written before compiled records existed, whose project an older writer then
            // archived: its first CHECK compiles it from the sources and is denied.
            _ = try await h.redis.send(RedisCommand("HDEL", hash, "x"))
            _ = try await h.redis.send(RedisCommand("HSET", Keyspace.project(w.org.id, w.project.id), "status", "archived"))
            #expect(try await c.check(.make(w.digest)).reason == .projectInactive)
            #expect(try await compiled() == "4 5 1 50 - - 45 - - 0 0 0 0 monthly 0 \(ids)")

            // A key compiled by the layout before one field (eleven `x…` fields, no `x`), whose
            // project is active again: its first CHECK compiles it anew and drops the old fields.
            let old = ["xv", "xgate", "xmet", "xrpm", "xtpm", "xbud", "xprpm", "xptpm", "xpbud", "xpnm", "xgnm"]
            let oldValues = ["1", "5", "1", "50", "", "", "45", "", "", "0", "0"]
            _ = try await h.redis.send(RedisCommand(["HSET", hash] + zip(old, oldValues).flatMap { [$0, $1] }))
            _ = try await h.redis.send(RedisCommand("HDEL", hash, "x"))
            _ = try await h.redis.send(RedisCommand("HSET", Keyspace.project(w.org.id, w.project.id), "status", "active"))
            let again = try await c.check(.make(w.digest, cost: 10))
            #expect(again.allowed && again.requestsLimit == 45)
            #expect(try await compiled() == "4 0 1 50 - - 45 - - 0 0 0 0 monthly 0 \(ids)")
            let left = (try await h.redis.send(RedisCommand(["HMGET", hash] + old)).array ?? []).compactMap { $0.string }
            #expect(left.isEmpty, "old compiled fields left: \(left)")

            // Records of the layouts before ("2 …", without the key's own fields; "3 …", text): the
            // first CHECK compiles each anew, and obeys what it compiled (a text record saying
            // revoked is not trusted over the key's own status).
            _ = try await h.redis.send(RedisCommand("HSET", hash, "x", "2 0 1 50 - - 45 - - 0 0"))
            #expect(try await c.check(.make(w.digest, cost: 10)).allowed)
            #expect(try await compiled() == "4 0 1 50 - - 45 - - 0 0 0 0 monthly 0 \(ids)")
            _ = try await h.redis.send(RedisCommand("HSET", hash, "x", "3 \(DenyReason.keyRevoked.rawValue) 1 50 - - 45 - - 0 0 0 0 monthly 0 \(ids)"))
            #expect(try await c.check(.make(w.digest, cost: 10)).allowed)
            #expect(try await compiled() == "4 0 1 50 - - 45 - - 0 0 0 0 monthly 0 \(ids)")

            // The key's own limits are in it: its models, expiry, window and flags.
            let expires = try await h.clockUs(org: w.org.id) / 1_000 + 3_600_000
            try await h.store.updateKeyLimits(org: w.org.id, w.key.key.id, KeyLimits(
                period: .daily, rpm: 60, models: ["gpt-5"], expiresAtMs: expires, contentLoggingDisabled: true))
            let flag = CheckResult.flagContentLoggingDisabled
            #expect(try await compiled() == "4 0 1 50 - - 45 - - 0 0 1 \(expires) daily \(flag) \(ids)")
            let limited = try await c.check(.make(w.digest, cost: 10))
            #expect(limited.allowed && limited.contentLoggingDisabled)
            #expect(try await c.check(.make(w.digest, model: "haiku", cost: 10)).reason == .modelNotAllowed)
            // Revoked: the record says so (gate 2, key_revoked) and the very next CHECK is refused.
            try await h.store.revokeKey(org: w.org.id, w.key.key.id)
            #expect(try await compiled() == "4 \(DenyReason.keyRevoked.rawValue) 1 50 - - 45 - - 0 0 1 \(expires) daily \(flag) \(ids)")
            #expect(try await c.check(.make(w.digest, cost: 10)).reason == .keyRevoked)
            await c.close()
        }
    }

    @Test("the model must be allowed by the key, the member's grant and the project")
    func models() async throws {
        try await withHarness { h in
            let c = try await h.connect()
            let byKey = try await h.world(limits: KeyLimits(models: ["gpt-5"]))
            #expect(try await c.check(.make(byKey.digest, model: "gpt-5")).allowed)
            #expect(try await c.check(.make(byKey.digest, model: "claude-opus")).reason == .modelNotAllowed)

            let byGrant = try await h.world(grant: Grant(models: ["claude-opus"]))
            #expect(try await c.check(.make(byGrant.digest, model: "claude-opus")).allowed)
            #expect(try await c.check(.make(byGrant.digest, model: "gpt-5")).reason == .modelNotAllowed)

            let byProject = try await h.world(project: (["gpt-5", "gpt-5-mini"], nil, nil, nil))
            #expect(try await c.check(.make(byProject.digest, model: "gpt-5-mini")).allowed)
            #expect(try await c.check(.make(byProject.digest, model: "llama")).reason == .modelNotAllowed)
            await c.close()
        }
    }

    @Test("key RPM: a full minute of burst, then retry-after, then refill with time")
    func keyRPM() async throws {
        try await withHarness { h in
            let w = try await h.world(limits: KeyLimits(rpm: 3))
            let c = try await h.connect()
            for _ in 0..<3 { #expect(try await c.check(.make(w.digest)).allowed) }
            let denied = try await c.check(.make(w.digest))
            #expect(denied.reason == .keyRPM)
            #expect(denied.retryAfterMs == 20_000)
            #expect(denied.requestsRemaining == 0 && denied.requestsLimit == 3)
            try await h.advance(org: w.org.id, by: .milliseconds(Int64(denied.retryAfterMs)))
            #expect(try await c.check(.make(w.digest)).allowed)
            #expect(try await c.check(.make(w.digest)).reason == .keyRPM)
            await c.close()
        }
    }

    @Test("key TPM counts input plus maximum output tokens")
    func keyTPM() async throws {
        try await withHarness { h in
            let w = try await h.world(limits: KeyLimits(tpm: 1_000))
            let c = try await h.connect()
            #expect(try await c.check(.make(w.digest, input: 300, output: 300)).allowed)
            let r = try await c.check(.make(w.digest, input: 300, output: 300))
            #expect(r.reason == .keyTPM)
            #expect(r.tokensRemaining == 400)
            #expect(r.retryAfterMs > 0)
            #expect(try await c.check(.make(w.digest, input: 200, output: 200)).allowed)
            await c.close()
        }
    }

    @Test("project RPM and TPM are shared by every key of the project")
    func projectRates() async throws {
        try await withHarness { h in
            let w = try await h.world(project: ([], 2, 500, nil))
            let second = try await h.store.createKey(org: w.org.id, project: w.project.id, user: w.member.id, name: "k2", limits: KeyLimits())
            let c = try await h.connect()
            #expect(try await c.check(.make(w.digest)).allowed)
            #expect(try await c.check(.make(KeyDigest(secret: second.secret))).allowed)
            #expect(try await c.check(.make(w.digest)).reason == .projectRPM)

            let t = try await h.world(project: ([], nil, 500, nil))
            #expect(try await c.check(.make(t.digest, input: 200, output: 200)).allowed)
            #expect(try await c.check(.make(t.digest, input: 100, output: 100)).reason == .projectTPM)
            await c.close()
        }
    }

    @Test("a request larger than a TPM limit is denied as too large, with no retry time")
    func tooLarge() async throws {
        try await withHarness { h in
            let w = try await h.world(project: ([], nil, 10_000, nil), limits: KeyLimits(tpm: 1_000))
            let c = try await h.connect()
            let r = try await c.check(.make(w.digest, input: 900, output: 101))
            #expect(r.reason == .requestTooLarge && r.retryAfterMs == 0)
            let p = try await h.world(project: ([], nil, 500, nil))
            #expect(try await c.check(.make(p.digest, input: 500, output: 1)).reason == .requestTooLarge)
            await c.close()
        }
    }

    @Test("member grants tighten the key's own limits")
    func grantsTighten() async throws {
        try await withHarness { h in
            let w = try await h.world(grant: Grant(maxKeySpend: 1_500, rpm: 1), limits: KeyLimits(budget: 10_000, rpm: 100))
            let c = try await h.connect()
            let r = try await c.check(.make(w.digest, cost: 1_000))
            #expect(r.allowed && r.requestsLimit == 1 && r.keyBudgetRemaining == 500)
            #expect(try await c.check(.make(w.digest, cost: 1_000)).reason == .keyRPM)
            await c.close()
        }
    }

    @Test("key budget, project budget and org credits each deny with their own reason")
    func spend() async throws {
        try await withHarness { h in
            let c = try await h.connect()
            let k = try await h.world(limits: KeyLimits(budget: 2_500))
            #expect(try await c.check(.make(k.digest, cost: 1_000)).allowed)
            #expect(try await c.check(.make(k.digest, cost: 1_500)).allowed)
            let kd = try await c.check(.make(k.digest, cost: 1))
            #expect(kd.reason == .keyBudget && kd.keyBudgetRemaining == 0)

            let p = try await h.world(project: ([], nil, nil, 1_000))
            #expect(try await c.check(.make(p.digest, cost: 999)).allowed)
            #expect(try await c.check(.make(p.digest, cost: 2)).reason == .projectBudget)

            let o = try await h.world(metered: true, credits: 500)
            #expect(try await c.check(.make(o.digest, cost: 500)).allowed)
            let od = try await c.check(.make(o.digest, cost: 1))
            #expect(od.reason == .orgCredits && od.orgCreditsRemaining == 0)
            try await h.store.addCredits(o.org.id, 100)
            #expect(try await c.check(.make(o.digest, cost: 100)).allowed)
            await c.close()
        }
    }

    @Test("a denied CHECK moves no counter")
    func denyMovesNothing() async throws {
        try await withHarness { h in
            let w = try await h.world(metered: true, credits: 1_000, limits: KeyLimits(rpm: 10, tpm: 100))
            let c = try await h.connect()
            let tooMuch = try await c.check(.make(w.digest, input: 10, output: 10, cost: 5_000))
            #expect(tooMuch.reason == .orgCredits)
            #expect(try await h.store.credits(w.org.id) == 1_000)
            // The RPM and TPM buckets were not touched by the deny: all 10 requests remain.
            let ok = try await c.check(.make(w.digest, input: 10, output: 10, cost: 0))
            #expect(ok.requestsRemaining == 9 && ok.tokensRemaining == 80)
            await c.close()
        }
    }

    @Test("deny reasons follow the documented order: identity, standing, model, size, rate, spend")
    func order() async throws {
        try await withHarness { h in
            let w = try await h.world(metered: true, credits: 0, project: (["gpt-5"], 1, nil, nil), limits: KeyLimits(tpm: 10))
            let c = try await h.connect()
            try await h.store.setOrganizationStatus(w.org.id, .suspended)
            try await h.store.revokeKey(org: w.org.id, w.key.key.id)
            #expect(try await c.check(.make(w.digest, model: "x", input: 100)).reason == .keyRevoked)
            let w2 = try await h.world(metered: true, credits: 0, project: (["gpt-5"], 1, nil, nil), limits: KeyLimits(tpm: 10))
            try await h.store.setOrganizationStatus(w2.org.id, .suspended)
            #expect(try await c.check(.make(w2.digest, model: "x", input: 100)).reason == .orgSuspended)
            try await h.store.setOrganizationStatus(w2.org.id, .active)
            #expect(try await c.check(.make(w2.digest, model: "x", input: 100)).reason == .modelNotAllowed)
            #expect(try await c.check(.make(w2.digest, input: 100)).reason == .requestTooLarge)
            #expect(try await c.check(.make(w2.digest, input: 1, output: 1, cost: 1)).reason == .orgCredits)
            try await h.store.addCredits(w2.org.id, 10)
            #expect(try await c.check(.make(w2.digest, input: 1, output: 1, cost: 1)).allowed)
            #expect(try await c.check(.make(w2.digest, input: 1, output: 1, cost: 100)).reason == .projectRPM)
            await c.close()
        }
    }
}

/// Coalescing: concurrent CHECKs from many connections share Redis round trips.
@Suite("pipelining to Redis")
struct PipeliningTests {
    @Test("concurrent CHECKs from many connections are coalesced into fewer Redis round trips")
    func coalesced() async throws {
        try await withHarness { h in
            let w = try await h.world()
            let warm = try await h.connect()
            #expect(try await warm.check(.make(w.digest)).allowed)  // the digest is now cached
            let connections = try await withThrowingTaskGroup(of: BursarConnection.self) { group in
                for _ in 0..<20 { group.addTask { try await h.connect() } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let tripsBefore = h.redis.stats.roundTrips.load(ordering: .relaxed)
            let commandsBefore = h.redis.stats.commands.load(ordering: .relaxed)
            for _ in 0..<500 where h.engine.pendingDeliveryConfirmations > 0 { try await Task.sleep(for: .milliseconds(10)) }
            let confirmationsBefore = h.engine.reconcileStats.deliveryCommands.load(ordering: .relaxed)
            let heartbeatsBefore = h.engine.reconcileStats.registryCommands.load(ordering: .relaxed)
            let answers = try await withThrowingTaskGroup(of: CheckResult.self) { group in
                for c in connections {
                    for _ in 0..<10 { group.addTask { try await c.check(.make(w.digest)) } }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(answers.filter(\.allowed).count == 200)
            #expect(Set(answers.map(\.reservation)).count == 200, "each CHECK its own reservation")
            // Each admission is confirmed delivered (SPEC §13.7), many to one command.
            for _ in 0..<500 where h.engine.pendingDeliveryConfirmations > 0 { try await Task.sleep(for: .milliseconds(10)) }
            let confirmations = h.engine.reconcileStats.deliveryCommands.load(ordering: .relaxed) - confirmationsBefore
            // A heartbeat may fall in the window (the engine's first is due at start).
            let heartbeats = h.engine.reconcileStats.registryCommands.load(ordering: .relaxed) - heartbeatsBefore
            let trips = h.redis.stats.roundTrips.load(ordering: .relaxed) - tripsBefore
            let commands = h.redis.stats.commands.load(ordering: .relaxed) - commandsBefore - confirmations - heartbeats
            // CHECKs of one organization that go out in one round trip are one script call
            // (SPEC §13.11): fewer calls than CHECKs, and nothing else but the confirmations.
            #expect(commands >= 1 && commands < 200, "200 CHECKs went out as \(commands) script calls")
            #expect(confirmations < 200, "\(confirmations) delivery confirmations for 200 admissions")
            #expect(trips < 200, "200 CHECKs took \(trips) round trips")
            for c in connections { await c.close() }
            await warm.close()
        }
    }
}

/// A packed compiled record (compiled-record.lua, `X_PACK`) as text: "4", then gate, met, the
/// six limits ('-': none), the three model-list sizes, expiry, period, flags, project and user.
private func compiledText(_ x: [UInt8]) -> String? {
    guard x.first == UInt8(ascii: "4"), x.count >= 1 + 2 + 10 * 8 + 1 + 8 + 4 else { return nil }
    func i64(_ at: Int) -> Int64 { PackedSlots.int64(x, at: at) }
    var f = ["4", String(x[1]), String(x[2])]
    for i in 0..<6 { let v = i64(3 + i * 8); f.append(v < 0 ? "-" : String(v)) }
    for i in 6..<10 { f.append(String(i64(3 + i * 8))) }
    let periods = ["daily", "weekly", "monthly", "lifetime"]
    let p = Int(x[83])
    guard (1...4).contains(p) else { return nil }
    f.append(periods[p - 1])
    f.append(String(i64(84)))
    guard let ids = PackedSlots.strings(x, at: 92, count: 2), ids.end == x.count else { return nil }
    return (f + ids.strings).joined(separator: " ")
}
