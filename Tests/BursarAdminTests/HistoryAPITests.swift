import BursarAPI
import BursarAdmin
import BursarClient
@_spi(Testing) import BursarStore
import BursarWire
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// GET /v1/orgs/{org}/usage/history: what each role may see, JSON and CSV that agree with each
/// other and with the live spend windows, and clear errors for bad input. Every reply is checked
/// against proto/openapi.json by the harness.
@Suite("usage history API")
struct HistoryAPITests {
    /// Traffic on three keys (mia's and tess's in P, the Owner's in Q) through the real data plane.
    static func traffic(_ h: AdminHarness, _ w: World) async throws -> UInt64 {
        let ownerKey = try await h.store.createKey(org: w.org, project: w.q, user: w.owner.id, name: "olivia-q", limits: KeyLimits())
        let c = try await h.connect()
        func check(_ key: UInt64, _ secret: String, _ model: String, _ cost: Int64) async throws -> CheckResult {
            let r = try await c.check(CheckRequest(
                digest: KeyDigest(secret: secret), model: try ModelName(model), inputTokens: 100, maxOutputTokens: 50, estimatedCost: cost))
            #expect(r.allowed, "\(r)")
            return r
        }
        let secrets = try await Self.secrets(h, w, ownerKey)
        let a = try await check(w.memberKey, secrets.mia, "m", 3_000_000)
        let b = try await check(w.memberKey, secrets.mia, "gpt-5.5", 2_000_000)
        let t1 = try await check(w.tessKey, secrets.tess, "m", 5_000_000)
        let t2 = try await check(w.tessKey, secrets.tess, "m", 1_000_000)
        _ = try await check(ownerKey.key.id, ownerKey.secret, "m", 7_000_000)
        #expect(try await c.settle(SettleRequest(reservation: a.reservation, inputTokens: 90, outputTokens: 40, cost: 2_500_000)).status == .applied)
        #expect(try await c.settle(SettleRequest(reservation: b.reservation, inputTokens: 10, outputTokens: 10, cost: 2_600_000)).status == .applied)
        #expect(try await c.settle(SettleRequest(reservation: t1.reservation, inputTokens: 100, outputTokens: 50, cost: 5_000_000)).status == .applied)
        #expect(try await c.release(t2.reservation).status == .applied)
        // A denial, kept by reason: a model the project does not allow.
        let denied = try await c.check(CheckRequest(
            digest: KeyDigest(secret: secrets.mia), model: try ModelName("not-in-p"), inputTokens: 1, maxOutputTokens: 1, estimatedCost: 1))
        #expect(denied.reason == .modelNotAllowed)
        await c.close()
        return ownerKey.key.id
    }

    /// The secrets of mia's and tess's keys (the world keeps only ids): rotated here to new ones.
    static func secrets(_ h: AdminHarness, _ w: World, _ ownerKey: CreatedKey) async throws -> (mia: String, tess: String) {
        let mia = try await h.store.rotateKey(org: w.org, w.memberKey).0.secret
        let tess = try await h.store.rotateKey(org: w.org, w.tessKey).0.secret
        return (mia, tess)
    }

    func history(_ h: AdminHarness, _ w: World, _ token: String, _ query: String) async throws -> HistoryResponse {
        let r = try await h.api.get("/v1/orgs/\(w.org)/usage/history?\(query)", token)
        #expect(r.status == 200, "\(r)")
        return try r.decode(HistoryResponse.self)
    }

    @Test("each role sees its own scope: Owners everything, a Project Admin the project, a Member their own keys; 404 beyond")
    func scopes() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            let ownerKey = try await Self.traffic(h, w)
            let all = try await history(h, w, w.owner.token, "group_by=key")
            #expect(Set(all.rows.compactMap(\.keyId)) == [w.memberKey, w.tessKey, ownerKey])
            #expect(all.totals.requestsAdmitted == 5 && all.totals.requestsSettled == 3 && all.totals.requestsReleased == 1)
            #expect(all.totals.requestsOpen == 1 && all.totals.requestsDenied == 1 && all.totals.denied == ["model_not_allowed": 1])
            #expect(all.totals.spendSettledNusd == 2_500_000 + 2_600_000 + 5_000_000)
            #expect(all.totals.spendOpenNusd == 7_000_000)
            #expect(all.totals.spendNusd == all.rows.reduce(0) { $0 + $1.spendNusd })
            #expect(all.rows.first { $0.keyId == w.memberKey }?.keyName == "mia-key")
            #expect(all.rows.first { $0.keyId == w.memberKey }?.projectName == "Production")

            let admin = try await history(h, w, w.admin.token, "group_by=key")
            #expect(Set(admin.rows.compactMap(\.keyId)) == [w.memberKey, w.tessKey])
            let member = try await history(h, w, w.member.token, "group_by=key,model")
            #expect(Set(member.rows.compactMap(\.keyId)) == [w.memberKey])
            #expect(member.rows.map { $0.model ?? "?" }.sorted() == ["", "gpt-5.5", "m"])
            let outsider = try await history(h, w, w.outsider.token, "")
            #expect(outsider.rows.isEmpty && outsider.totals.requestsAdmitted == 0)

            // Narrowed to another project's: 404, exactly as for what does not exist.
            #expect(try await h.api.get("/v1/orgs/\(w.org)/usage/history?project_id=\(w.q)", w.member.token).status == 404)
            #expect(try await h.api.get("/v1/orgs/\(w.org)/usage/history?project_id=\(w.q)", w.admin.token).status == 404)
            // Another member's key in one's own project: refused as for its live usage (403).
            #expect(try await h.api.get("/v1/orgs/\(w.org)/usage/history?key_id=\(w.tessKey)", w.member.token).status == 403)
            #expect(try await h.api.get("/v1/orgs/\(w.org)/usage/history?key_id=999999", w.owner.token).status == 404)
            #expect(try await h.api.get("/v1/orgs/\(w.org)/usage/history", nil).status == 401)
            let other = try await h.store.createOrganization(name: "other-\(w.org)")
            #expect(try await h.api.get("/v1/orgs/\(other.id)/usage/history", w.owner.token).status == 404)
            // A Project Member narrowed to their project sees their own keys in it, not tess's.
            let inP = try await history(h, w, w.member.token, "project_id=\(w.p)&group_by=key")
            #expect(Set(inP.rows.compactMap(\.keyId)) == [w.memberKey])
            let tessAsAdmin = try await history(h, w, w.admin.token, "key_id=\(w.tessKey)&group_by=day")
            #expect(tessAsAdmin.rows.count == 1 && tessAsAdmin.totals.requestsAdmitted == 2)

            // The history's spend of a key equals its live spend window (the month: all today).
            let usage = try await h.api.get("/v1/orgs/\(w.org)/keys/\(w.tessKey)/usage", w.owner.token).decode(KeyUsageResponse.self)
            #expect(usage.spend.spendNusd == all.rows.first { $0.keyId == w.tessKey }?.spendNusd)
            let project = try await h.api.get("/v1/orgs/\(w.org)/projects/\(w.p)/usage", w.owner.token).decode(ProjectUsageResponse.self)
            let byProject = try await history(h, w, w.owner.token, "group_by=project")
            #expect(project.spend.spendNusd == byProject.rows.first { $0.projectId == w.p }?.spendNusd)
        }
    }

    @Test("CSV: the same rows as JSON, a column per sum and per deny reason, sums equal to the totals")
    func csv() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            _ = try await Self.traffic(h, w)
            let json = try await history(h, w, w.owner.token, "group_by=day,project,key,model")
            let r = try await h.api.get("/v1/orgs/\(w.org)/usage/history?group_by=day,project,key,model&format=csv", w.owner.token)
            #expect(r.status == 200)
            let lines = String(decoding: r.body, as: UTF8.self).components(separatedBy: "\r\n").filter { !$0.isEmpty }
            let header = lines[0].split(separator: ",").map(String.init)
            #expect(Array(header.prefix(6)) == ["day", "project_id", "project_name", "key_id", "key_name", "model"])
            #expect(header.count == 6 + HistoryCSV.sumColumns.count + HistoryCSV.reasons.count)
            #expect(lines.count == json.rows.count + 1)
            let rows = lines.dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
            func column(_ name: String) -> Int64 {
                let i = header.firstIndex(of: name)!
                return rows.reduce(0) { $0 + Int64($1[i])! }
            }
            #expect(column("spend_nusd") == json.totals.spendNusd)
            #expect(column("spend_settled_nusd") == json.totals.spendSettledNusd)
            #expect(column("tokens") == json.totals.tokens)
            #expect(column("requests_admitted") == json.totals.requestsAdmitted)
            #expect(column("denied_model_not_allowed") == 1)
        }
    }

    @Test("the CSV's deny-reason columns are the reasons the limiter's scripts decide, in code order")
    func csvReasons() {
        let bursardOnly: Set<DenyReason> = [.none, .unknownKey, .storeUnavailable, .overloaded, .keyLookupsThrottled]
        #expect(HistoryCSV.reasons == DenyReason.allCases.filter { !bursardOnly.contains($0) }.map(\.description))
    }

    @Test("CSV cells a spreadsheet would run as formulas are defused; commas and quotes are quoted")
    func csvCells() {
        let row = HistoryRowBody(projectId: 1, projectName: "=HYPERLINK(\"x\")", model: "a,b")
        let text = HistoryCSV.render(HistoryResponse(from: "2026-12-01", to: "2026-12-01", groupBy: ["project", "model"], rows: [row], totals: row))
        let line = text.components(separatedBy: "\r\n")[1]
        #expect(line.hasPrefix("1,\"'=HYPERLINK(\"\"x\"\")\",\"a,b\",0,"))
    }

    @Test("bursarctl usage history: --csv parses and sums to the API's totals; --json is the API's answer; bad dates are named")
    func bursarctl() async throws {
        let binary = try builtBinary("bursarctl")
        try await withAdmin { h in
            let w = try await h.world()
            _ = try await Self.traffic(h, w)
            let app = Application(
                router: OpsServer.router(service: h.service),
                configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)), logger: AdminHarness.logger)
            try await app.test(.live) { client in
                let server = "http://127.0.0.1:\(try #require(client.port))"
                let common = ["--server", server, "--org", "\(w.org)"]
                let api = try await history(h, w, w.owner.token, "group_by=day,key")

                let (status, csv) = try await runCtl(binary, ["usage", "history", "--group-by", "day,key", "--csv"] + common, token: w.owner.token)
                #expect(status == 0, "\(csv)")
                let lines = csv.components(separatedBy: "\r\n").filter { !$0.isEmpty }
                let header = lines[0].split(separator: ",").map(String.init)
                #expect(Array(header.prefix(3)) == ["day", "key_id", "key_name"])
                #expect(lines.count == api.rows.count + 1)
                let cells = lines.dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
                func sum(_ name: String) throws -> Int64 {
                    let i = try #require(header.firstIndex(of: name))
                    return try cells.reduce(0) { $0 + (try #require(Int64($1[i]), "\(name): \($1[i])")) }
                }
                #expect(try sum("spend_nusd") == api.totals.spendNusd)
                #expect(try sum("spend_open_nusd") == api.totals.spendOpenNusd)
                #expect(try sum("tokens") == api.totals.tokens)
                #expect(try sum("requests_admitted") == api.totals.requestsAdmitted)
                #expect(try sum("requests_denied") == api.totals.requestsDenied)

                let (jsonStatus, json) = try await runCtl(binary, ["usage", "history", "--group-by", "day,key", "--json"] + common, token: w.owner.token)
                #expect(jsonStatus == 0)
                let raw = try await h.api.get("/v1/orgs/\(w.org)/usage/history?group_by=day,key", w.owner.token)
                #expect(try JSONValue.parse(Data(json.utf8)) == JSONValue.parse(raw.body))

                // The table: one row per key, then the total, in dollars.
                let (tableStatus, table) = try await runCtl(binary, ["usage", "history", "--group-by", "key"] + common, token: w.member.token)
                #expect(tableStatus == 0)
                #expect(table.contains("\(w.memberKey) (mia-key)") && !table.contains("tess-key") && table.contains("total"), "\(table)")
                #expect(table.contains("$0.0051"), "mia settled $0.0025 + $0.0026: \(table)")

                let (badStatus, bad) = try await runCtl(binary, ["usage", "history", "--from", "yesterday"] + common, token: w.owner.token)
                #expect(badStatus != 0 && bad.contains("--from 'yesterday'"), "\(bad)")
                let (serverStatus, server400) = try await runCtl(binary, ["usage", "history", "--from", "2026-02-30"] + common, token: w.owner.token)
                #expect(serverStatus != 0 && server400.contains("from"), "\(server400)")
            }
        }
    }

    @Test("bad input is answered 400 invalid naming the parameter; what is only unusual is answered")
    func badInput() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            _ = try await Self.traffic(h, w)
            // A dimension named twice counts once.
            let twice = try await history(h, w, w.owner.token, "group_by=key,key")
            #expect(twice.groupBy == ["key"] && twice.rows.count == 3)
            for (query, names) in [
                ("from=2026-02-30", "from"), ("to=26-01-01", "to"), ("from=2026-12-05&to=2026-12-01", "after"),
                ("from=2020-01-01&to=2026-12-01", "800 days"), ("group_by=week", "group_by"), ("group_by=day,,key", "group_by"), ("group_by=day,key,day,key,day", "group_by"),
                ("group_by=", "group_by"), ("format=xml", "format"), ("project_id=abc", "project_id"), ("key_id=0", "key_id"),
            ] {
                let r = try await h.api.get("/v1/orgs/\(w.org)/usage/history?\(query)", w.owner.token)
                #expect(r.status == 400 && r.code == "invalid", "\(query): \(r)")
                #expect(String(decoding: r.body, as: UTF8.self).contains(names), "\(query): \(r)")
            }
        }
    }
}
