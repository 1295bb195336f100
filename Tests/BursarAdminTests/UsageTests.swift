import BursarAPI
import BursarAdmin
import BursarClient
import BursarLimits
import BursarRedis
@_spi(Testing) import BursarStore
import BursarWire
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// A scripted day on one metered organization, over the binary protocol, on a frozen clock so
/// that the usage reads happen at the very instant of the last CHECKs.
///
/// Key A (mia, a Project Member): rpm 20, tpm 40k, $4 a week, narrowed by her grant to rpm 10
/// and $3. Key B (tess): rpm 600 and tpm 45k, looser than the project's level in use. Project P:
/// rpm 600, tpm 45k, $50 a month.
/// Credits: $10.
struct ScriptedUsage: Sendable {
    /// One reservation left open at the end.
    struct Open: Sendable {
        var key: UInt64
        var tokens: Int64
        var cost: Int64
    }

    let world: World
    let keyA: UInt64
    let keyB: UInt64
    /// The instant the organization's clock is frozen at, Unix ms.
    let nowMs: Int64
    /// The last CHECK of key A (requests: the key level is tighter).
    let lastA: CheckResult
    /// The very last CHECK, of key B (it reports the project's levels, the tighter ones).
    let lastB: CheckResult
    let open: [Open]

    static let credits: Int64 = 10_000_000_000

    static func run(_ h: AdminHarness) async throws -> ScriptedUsage {
        let w = try await h.world()
        var p = try #require(try await h.store.project(org: w.org, w.p))
        p.tpm = 45_000
        p.monthlyBudget = 50_000_000_000
        try await h.store.updateProject(p)
        try await h.store.setMetered(w.org, true)
        try await h.store.addCredits(w.org, credits)
        let a = try await h.store.createKey(
            org: w.org, project: w.p, user: w.member.id, name: "mia-live",
            limits: KeyLimits(budget: 4_000_000_000, period: .weekly, rpm: 20, tpm: 40_000))
        let b = try await h.store.createKey(org: w.org, project: w.p, user: w.tess.id, name: "tess-live", limits: KeyLimits(rpm: 600, tpm: 45_000))
        // Narrowed after the key was made: CHECK (and usage) apply the tighter values.
        try await h.store.setMembership(Membership(
            orgID: w.org, projectID: w.p, userID: w.member.id, role: .member, grant: Grant(maxKeySpend: 3_000_000_000, rpm: 10)))
        let nowMs = try await h.store.redisTimeMs()
        try await h.store.setTestClock(org: w.org, us: nowMs * 1000 + 789)

        let c = try await h.connect()
        func check(_ secret: String, _ input: UInt32, _ output: UInt32, _ cost: Int64) async throws -> CheckResult {
            let r = try await c.check(CheckRequest(
                digest: KeyDigest(secret: secret), model: try ModelName("m"), inputTokens: input, maxOutputTokens: output, estimatedCost: cost))
            #expect(r.allowed, "\(r)")
            return r
        }
        do {
            let b1 = try await check(b.secret, 20_000, 0, 1_000_000_000)
            let a1 = try await check(a.secret, 3_000, 2_000, 500_000_000)
            let a2 = try await check(a.secret, 5_000, 0, 400_000_000)
            _ = try await check(a.secret, 4_000, 1_000, 300_000_000)
            _ = try await check(a.secret, 4_000, 0, 200_000_000)
            // Settled below the estimate, released, settled above it.
            #expect(try await c.settle(SettleRequest(reservation: a1.reservation, inputTokens: 1_200, outputTokens: 800, cost: 350_000_000)).status == .applied)
            #expect(try await c.release(a2.reservation).status == .applied)
            #expect(try await c.settle(SettleRequest(reservation: b1.reservation, inputTokens: 20_000, outputTokens: 5_000, cost: 1_200_000_000)).status == .applied)
            let lastA = try await check(a.secret, 3_000, 0, 100_000_000)
            let lastB = try await check(b.secret, 1_000, 0, 50_000_000)
            await c.close()
            let open = [
                Open(key: a.key.id, tokens: 5_000, cost: 300_000_000), Open(key: a.key.id, tokens: 4_000, cost: 200_000_000),
                Open(key: a.key.id, tokens: 3_000, cost: 100_000_000), Open(key: b.key.id, tokens: 1_000, cost: 50_000_000),
            ]
            return ScriptedUsage(world: w, keyA: a.key.id, keyB: b.key.id, nowMs: nowMs, lastA: lastA, lastB: lastB, open: open)
        } catch {
            await c.close()
            throw error
        }
    }

    func reserved(_ include: (Open) -> Bool) -> ReservedUsageBody {
        let chosen = open.filter(include)
        return ReservedUsageBody(count: Int64(chosen.count), costNusd: chosen.reduce(0) { $0 + $1.cost }, tokens: chosen.reduce(0) { $0 + $1.tokens })
    }
}

/// The level a CHECK_RESULT reports (0 = no limit), as usage reports it.
private func expectSame(_ usage: RateUsageBody, limit: UInt32, remaining: UInt32, resetMs: UInt32, _ what: String) {
    #expect(usage.limit == Int64(limit), "\(what) limit")
    #expect(usage.remaining == Int64(remaining), "\(what) remaining")
    #expect(usage.resetMs == Int64(resetMs), "\(what) reset")
}

@Suite("Live usage reports what CHECK reports, for a key, a project and the organization")
struct UsageTests {
    @Test("after CHECK/SETTLE/RELEASE, the usage endpoints equal the last CHECK responses, and reserved = the open reservations")
    func usageEqualsCheck() async throws {
        try await withAdmin(clock: .testFrozen) { h in
            let s = try await ScriptedUsage.run(h)
            let w = s.world, o = "/v1/orgs/\(w.org)"

            // Key A: requests at the key level (grant-tightened to 10) are what its last CHECK said.
            let a = try await h.api.get("\(o)/keys/\(s.keyA)/usage", w.member.token).decode(KeyUsageResponse.self)
            #expect(a.atMs == s.nowMs && a.projectId == w.p && a.name == "mia-live")
            expectSame(a.requests, limit: s.lastA.requestsLimit, remaining: s.lastA.requestsRemaining, resetMs: s.lastA.requestsResetMs, "key A requests")
            expectSame(a.effectiveRequests, limit: s.lastA.requestsLimit, remaining: s.lastA.requestsRemaining, resetMs: s.lastA.requestsResetMs, "key A CHECK requests")
            #expect(a.requests == RateUsageBody(limit: 10, used: 5, remaining: 5, resetMs: 30_000))
            // Its own TPM bucket: 5k + 5k + 5k + 4k reserved, −3k settled, −5k released, +3k.
            #expect(a.tokens == RateUsageBody(limit: 40_000, used: 14_000, remaining: 26_000, resetMs: 21_000))
            // Tokens are tighter at the project level, which key B's CHECK moved last.
            expectSame(a.effectiveTokens, limit: s.lastB.tokensLimit, remaining: s.lastB.tokensRemaining, resetMs: s.lastB.tokensResetMs, "key A CHECK tokens")
            #expect(a.spend.remainingNusd == s.lastA.keyBudgetRemaining)
            #expect(a.spend.resetsAtMs == s.lastA.keyBudgetResetAtMs)
            let week = SpendWindow.containing(s.nowMs, period: .weekly)
            #expect(a.spend == SpendUsageBody(
                period: "weekly", spendNusd: 950_000_000, windowStartMs: week.startMs, resetsAtMs: week.endMs, budgetNusd: 3_000_000_000,
                remainingNusd: 2_050_000_000))
            #expect(a.reserved == s.reserved { $0.key == s.keyA })
            #expect(a.reserved == ReservedUsageBody(count: 3, costNusd: 600_000_000, tokens: 12_000))

            // Key B: the project's levels are tighter, so CHECK reported them; no key budget.
            let b = try await h.api.get("\(o)/keys/\(s.keyB)/usage", w.tess.token).decode(KeyUsageResponse.self)
            #expect(b.requests == RateUsageBody(limit: 600, used: 2, remaining: 598, resetMs: 200))
            #expect(b.tokens == RateUsageBody(limit: 45_000, used: 26_000, remaining: 19_000, resetMs: 34_667))
            expectSame(b.effectiveRequests, limit: s.lastB.requestsLimit, remaining: s.lastB.requestsRemaining, resetMs: s.lastB.requestsResetMs, "key B CHECK requests")
            expectSame(b.effectiveTokens, limit: s.lastB.tokensLimit, remaining: s.lastB.tokensRemaining, resetMs: s.lastB.tokensResetMs, "key B CHECK tokens")
            #expect(s.lastB.keyBudgetRemaining == CheckResult.unlimited && b.spend.remainingNusd == nil && b.spend.budgetNusd == nil)
            #expect(b.spend.period == "monthly" && b.spend.resetsAtMs == s.lastB.keyBudgetResetAtMs)
            #expect(b.spend.spendNusd == 1_250_000_000)
            #expect(b.reserved == s.reserved { $0.key == s.keyB })

            // Project P: both levels are the project's in key B's last CHECK.
            let p = try await h.api.get("\(o)/projects/\(w.p)/usage", w.member.token).decode(ProjectUsageResponse.self)
            #expect(p.atMs == s.nowMs && p.name == "Production")
            expectSame(p.requests, limit: s.lastB.requestsLimit, remaining: s.lastB.requestsRemaining, resetMs: s.lastB.requestsResetMs, "project requests")
            expectSame(p.tokens, limit: s.lastB.tokensLimit, remaining: s.lastB.tokensRemaining, resetMs: s.lastB.tokensResetMs, "project tokens")
            #expect(p.requests.used == 7 && p.tokens.used == 40_000 && p.tokens.remaining == 5_000)
            #expect(p.spend.remainingNusd == s.lastB.projectBudgetRemaining)
            #expect(p.spend.resetsAtMs == s.lastB.projectBudgetResetAtMs)
            let month = SpendWindow.containing(s.nowMs, period: .monthly)
            #expect(p.spend == SpendUsageBody(
                period: "monthly", spendNusd: 2_200_000_000, windowStartMs: month.startMs, resetsAtMs: month.endMs, budgetNusd: 50_000_000_000,
                remainingNusd: 47_800_000_000))
            #expect(p.reserved == s.reserved { _ in true })

            // The organization: its balance is what the last CHECK reported.
            let org = try await h.api.get("\(o)/usage", w.owner.token).decode(OrgUsageResponse.self)
            #expect(org.metered && org.creditsNusd == s.lastB.orgCreditsRemaining)
            #expect(org.creditsNusd == ScriptedUsage.credits - 2_200_000_000)
            #expect(org.atMs == s.nowMs && org.requestsUsed == 7 && org.tokensUsed == 40_000)
            #expect(org.spend == SpendUsageBody(
                period: "monthly", spendNusd: 2_200_000_000, windowStartMs: month.startMs, resetsAtMs: month.endMs, budgetNusd: nil, remainingNusd: nil))
            #expect(org.reserved == s.reserved { _ in true })
            #expect(org.reserved == ReservedUsageBody(count: 4, costNusd: 650_000_000, tokens: 13_000))

            // The same reads straight from the store agree with the API's.
            let direct = try #require(try await h.service.store.redis.send(RedisCommand("GET", Keyspace.credits(w.org))).int)
            #expect(direct == org.creditsNusd)
        }
    }

    @Test("top: the busiest keys and projects of the last minute, with names; limit 1…100")
    func top() async throws {
        try await withAdmin(clock: .testFrozen) { h in
            let s = try await ScriptedUsage.run(h)
            let w = s.world, o = "/v1/orgs/\(w.org)"
            let t = try await h.api.get("\(o)/top", w.owner.token).decode(TopResponse.self)
            #expect(t.atMs == s.nowMs)
            // By requests first: key A (5) before key B (2, though more tokens).
            #expect(t.keys == [
                TopKeyBody(keyId: s.keyA, projectId: w.p, name: "mia-live", projectName: "Production", requestsUsed: 5, tokensUsed: 14_000),
                TopKeyBody(keyId: s.keyB, projectId: w.p, name: "tess-live", projectName: "Production", requestsUsed: 2, tokensUsed: 26_000),
            ])
            #expect(t.projects == [TopProjectBody(projectId: w.p, name: "Production", requestsUsed: 7, tokensUsed: 40_000)])

            // A busier key in another project ranks first.
            let q = try #require(try await h.store.project(org: w.org, w.q))
            var capped = q
            capped.rpm = 100
            try await h.store.updateProject(capped)
            let busy = try await h.store.createKey(org: w.org, project: w.q, user: w.owner.id, name: "busy", limits: KeyLimits(rpm: 100))
            for _ in 0..<6 { #expect(try await h.check(busy.secret, tokens: 1).allowed) }
            let two = try await h.api.get("\(o)/top?limit=2", w.owner.token).decode(TopResponse.self)
            #expect(two.keys.map(\.keyId) == [busy.key.id, s.keyA])
            #expect(two.keys.first?.requestsUsed == 6 && two.keys.first?.tokensUsed == 0 && two.keys.first?.projectName == "Sandbox")
            #expect(two.projects.map(\.projectId) == [w.p, w.q])
            let one = try await h.api.get("\(o)/top?limit=1", w.owner.token).decode(TopResponse.self)
            #expect(one.keys.count == 1 && one.projects.count == 1)
            for bad in ["0", "101", "x"] {
                let r = try await h.api.get("\(o)/top?limit=\(bad)", w.owner.token)
                #expect(r.status == 400 && r.code == "invalid", "\(r)")
            }
        }
    }

    @Test("a key without limits of its own: usage reports the project's levels, as SPEC 7.1 says CHECK does")
    func keyWithoutLimits() async throws {
        try await withAdmin(clock: .testFrozen) { h in
            let w = try await h.world()
            let o = "/v1/orgs/\(w.org)"
            try await h.store.setTestClock(org: w.org, us: try await h.store.redisTimeMs() * 1000)
            let k = try await h.store.createKey(org: w.org, project: w.p, user: w.tess.id, name: "free", limits: KeyLimits())
            let r = try await h.check(k.secret, tokens: 100)
            #expect(r.allowed)
            let u = try await h.api.get("\(o)/keys/\(k.key.id)/usage", w.tess.token).decode(KeyUsageResponse.self)
            let p = try await h.api.get("\(o)/projects/\(w.p)/usage", w.tess.token).decode(ProjectUsageResponse.self)
            #expect(u.requests == RateUsageBody(limit: nil, used: 0, remaining: nil, resetMs: 0))
            #expect(u.effectiveRequests == p.requests && u.effectiveTokens == p.tokens)
            #expect(p.requests == RateUsageBody(limit: 600, used: 1, remaining: 599, resetMs: 100))
            // A key with no limit of its own: CHECK reports the project's level (this once failed:
            // the script walked ipairs({key, project}), which stops at the absent key level).
            #expect(r.requestsLimit == 600 && r.requestsRemaining == 599)
            expectSame(u.effectiveRequests, limit: r.requestsLimit, remaining: r.requestsRemaining, resetMs: r.requestsResetMs, "CHECK requests")
            expectSame(u.effectiveTokens, limit: r.tokensLimit, remaining: r.tokensRemaining, resetMs: r.tokensResetMs, "CHECK tokens")
        }
    }

    @Test("on Redis's clock too: a fresh key's usage shows its CHECK at once, and an empty org reads zero")
    func redisClock() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            let o = "/v1/orgs/\(w.org)"
            let k = try await h.store.createKey(org: w.org, project: w.p, user: w.member.id, name: "k", limits: KeyLimits(budget: 1_000_000, period: .lifetime, rpm: 1))
            let r = try await h.check(k.secret, tokens: 10, cost: 1_000)
            #expect(r.allowed)
            let u = try await h.api.get("\(o)/keys/\(k.key.id)/usage", w.member.token).decode(KeyUsageResponse.self)
            // Lifetime: no window bounds; the budget remaining is exact whatever the clock did.
            #expect(u.spend == SpendUsageBody(period: "lifetime", spendNusd: 1_000, windowStartMs: nil, resetsAtMs: nil, budgetNusd: 1_000_000, remainingNusd: 999_000))
            #expect(u.spend.remainingNusd == r.keyBudgetRemaining && r.keyBudgetResetAtMs == 0)
            // At 1 per minute the one request stays in the bucket for a minute of Redis time.
            #expect(u.requests.limit == 1 && u.requests.used == 1 && u.requests.remaining == 0)
            #expect(u.reserved == ReservedUsageBody(count: 1, costNusd: 1_000, tokens: 10))
            let org = try await h.api.get("\(o)/usage", w.owner.token).decode(OrgUsageResponse.self)
            #expect(!org.metered && org.creditsNusd == 0 && org.reserved.count == 1)
            let now = try await h.store.redisTimeMs()
            #expect(abs(org.atMs - now) < 60_000)
        }
    }

    @Test("who may read: a key's user and admins; a Member not another member's key (403); no project → 404; org and top Owners only; refusals audited, reads not")
    func permissions() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            let o = "/v1/orgs/\(w.org)"
            #expect(try await h.api.get("\(o)/keys/\(w.memberKey)/usage", w.member.token).status == 200)
            #expect(try await h.api.get("\(o)/keys/\(w.tessKey)/usage", w.admin.token).status == 200)
            #expect(try await h.api.get("\(o)/keys/\(w.tessKey)/usage", w.owner.token).status == 200)
            let other = try await h.api.get("\(o)/keys/\(w.tessKey)/usage", w.member.token)
            #expect(other.status == 403 && other.code == "forbidden", "\(other)")
            // A key of a project the caller has no role in, or none at all: 404 either way.
            #expect(try await h.api.get("\(o)/keys/\(w.tessKey)/usage", w.outsider.token).code == "not_found")
            #expect(try await h.api.get("\(o)/keys/999999/usage", w.owner.token).code == "not_found")

            #expect(try await h.api.get("\(o)/projects/\(w.p)/usage", w.member.token).status == 200)
            let noProject = try await h.api.get("\(o)/projects/\(w.p)/usage", w.outsider.token)
            #expect(noProject.status == 404 && noProject.code == "not_found", "\(noProject)")
            #expect(try await h.api.get("\(o)/projects/\(w.q)/usage", w.member.token).status == 404)
            #expect(try await h.api.get("\(o)/projects/999999/usage", w.owner.token).status == 404)

            #expect(try await h.api.get("\(o)/usage", w.owner.token).status == 200)
            #expect(try await h.api.get("\(o)/top", w.owner.token).status == 200)
            for token in [w.admin.token, w.member.token, w.outsider.token] {
                #expect(try await h.api.get("\(o)/usage", token).status == 403)
                #expect(try await h.api.get("\(o)/top", token).status == 403)
            }
            #expect(try await h.api.get("\(o)/usage", nil).status == 401)

            let log = try await h.audit(w)
            #expect(log.contains { $0.action == "key.usage" && $0.outcome == "forbidden" && $0.actor == "user:\(w.member.id)" })
            #expect(log.contains { $0.action == "project.usage" && $0.outcome == "not_found" && $0.actor == "user:\(w.outsider.id)" })
            #expect(log.contains { $0.action == "org.usage" && $0.outcome == "forbidden" })
            #expect(log.contains { $0.action == "org.top" && $0.outcome == "forbidden" })
            #expect(!log.contains { $0.outcome == "ok" && ["key.usage", "project.usage", "org.usage", "org.top"].contains($0.action) })
        }
    }

    @Test("bursarctl usage key|project|org and top --json print exactly what the API answers")
    func bursarctl() async throws {
        let binary = try builtBinary("bursarctl")
        try await withAdmin(clock: .testFrozen) { h in
            let s = try await ScriptedUsage.run(h)
            let w = s.world, o = "/v1/orgs/\(w.org)"
            // bursarctl needs a real HTTP server: the same service, live on an ephemeral port.
            let app = Application(
                router: OpsServer.router(service: h.service),
                configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)), logger: AdminHarness.logger)
            try await app.test(.live) { client in
                let server = "http://127.0.0.1:\(try #require(client.port))"
                let cases: [([String], String, String)] = [
                    (["usage", "key", "\(s.keyA)"], "\(o)/keys/\(s.keyA)/usage", w.member.token),
                    (["usage", "project", "Production"], "\(o)/projects/\(w.p)/usage", w.member.token),
                    (["usage", "org"], "\(o)/usage", w.owner.token),
                    (["top", "--limit", "5"], "\(o)/top?limit=5", w.owner.token),
                ]
                for (args, path, token) in cases {
                    let (status, output) = try await runCtl(binary, args + ["--json", "--server", server, "--org", "\(w.org)"], token: token)
                    #expect(status == 0, "\(args): \(output)")
                    let api = try await h.api.get(path, token)
                    #expect(api.status == 200)
                    #expect(try JSONValue.parse(Data(output.utf8)) == JSONValue.parse(api.body), "\(args):\n\(output)\nAPI: \(api)")
                }
                // The table shows the same figures.
                let (status, table) = try await runCtl(binary, ["usage", "key", "\(s.keyA)", "--server", server, "--org", "\(w.org)"], token: w.member.token)
                #expect(status == 0, "\(table)")
                #expect(table.contains("requests") && table.contains("$2.05") && table.contains("3 open, $0.60, 12,000 tokens"), "\(table)")
                let (refused, message) = try await runCtl(binary, ["usage", "org", "--server", server, "--org", "\(w.org)"], token: w.member.token)
                #expect(refused == 3 && message.contains("forbidden"), "\(message)")
            }
        }
    }
}

/// Runs bursarctl with a token; returns its exit status and everything it printed.
func runCtl(_ binary: String, _ args: [String], token: String) async throws -> (Int32?, String) {
    let log = NSTemporaryDirectory() + "bursarctl-usage-\(UUID().uuidString).log"
    defer { try? FileManager.default.removeItem(atPath: log) }
    var env = ProcessInfo.processInfo.environment
    env["BURSAR_TOKEN"] = token
    env["BURSAR_SERVER"] = nil
    env["BURSAR_ORG"] = nil
    let child = try ChildProcess([binary] + args, logPath: log, environment: env)
    // Poll rather than block: a blocked cooperative thread stalls every other test.
    while child.isRunning { try await Task.sleep(for: .milliseconds(10)) }
    return (child.exitCode, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
}

extension AdminHarness {
    /// The organization's audit log, newest first.
    func audit(_ w: World) async throws -> [AuditEntry] {
        try await service.audit.read(org: w.org, limit: 1000)
    }
}
