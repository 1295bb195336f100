import BursarAPI
@_spi(Testing) import BursarAdmin
import BursarClient
@_spi(Testing) import BursarStore
import BursarWire
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// The console's usage charts, CSV download and budget badges, over a real data plane and Redis:
/// three days of traffic on the test clock, read back through the pages and the admin API.
@Suite("Web console usage history: charts of what the admin API answers, its CSV, budget alerts, and the range refused clearly")
struct ConsoleHistoryTests {
    @Test("pages chart the admin API's history per day; the CSV is the API's, scoped alike; a bad range is a 400 that says why; alerts show as badges")
    func history() async throws {
        try await withAdmin(clock: .testFrozen) { h in
            let w = try await h.world()
            let mine = try await h.store.createKey(
                org: w.org, project: w.p, user: w.member.id, name: "mia-daily", limits: KeyLimits(budget: 10_000_000_000, period: .daily))
            let tess = try await h.store.createKey(org: w.org, project: w.p, user: w.tess.id, name: "tess <b>", limits: KeyLimits())
            let today = HistoryDay.of(ms: try await h.store.redisTimeMs())
            let c = try await h.connect()
            func spend(_ secret: String, day: Int64, model: String, tokens: UInt32, cost: Int64, settle: Bool = true) async throws {
                try await h.store.setTestClock(org: w.org, us: (day * 86_400_000 + 43_200_000) * 1000)
                let r = try await c.check(CheckRequest(
                    digest: KeyDigest(secret: secret), model: try ModelName(model), inputTokens: tokens, maxOutputTokens: 0, estimatedCost: cost))
                #expect(r.allowed, "\(r)")
                guard settle else { return }
                #expect(try await c.settle(SettleRequest(reservation: r.reservation, inputTokens: tokens, outputTokens: 0, cost: cost)).status == .applied)
            }
            do {
                try await spend(mine.secret, day: today - 2, model: "m", tokens: 100, cost: 1_000_000_000)
                try await spend(tess.secret, day: today - 2, model: "gpt-5.5", tokens: 300, cost: 2_500_000_000)
                try await spend(tess.secret, day: today - 1, model: "m", tokens: 50, cost: 1)
                // 85 % of the daily budget: the 50 and 80 % alerts of today's window.
                try await spend(mine.secret, day: today, model: "m", tokens: 10, cost: 8_500_000_000)
                // Open: counted at its estimate, as the spend windows count it.
                try await spend(tess.secret, day: today, model: "m", tokens: 5, cost: 250_000_000, settle: false)
                await c.close()
            } catch {
                await c.close()
                throw error
            }
            let (from, to) = (HistoryDay.format(today - 29), HistoryDay.format(today))

            var owner = Browser(client: h.api.client)
            _ = try await owner.signIn(w.owner.token)
            let project = try await owner.get("/console/o/\(w.org)/p/\(w.p)")
            #expect(project.status == 200)
            #expect(project.html.contains("data-testid=\"history\" data-from=\"\(from)\" data-to=\"\(to)\""))
            #expect(project.html.contains("data-measure=\"spend\" data-bars=\"3\" data-series-count=\"2\""))
            #expect(project.html.contains("data-series=\"key:\(tess.key.id)\" data-members=\"\">tess &lt;b&gt;</th>"))
            #expect(project.html.contains("data-testid=\"budget-line\""), "the project's monthly budget, as its daily pace")
            let byDay = try await Self.history(h, w.org, "group_by=day&project_id=\(w.p)", w.owner.token).decode(HistoryResponse.self)
            #expect(byDay.rows.count == 3)
            for r in byDay.rows {
                #expect(Self.row(project.html, r.day!).contains("data-total=\"\" data-value=\"\(r.spendNusd)\""), "\(r.day!)")
            }
            #expect(project.html.contains("<td class=\"num\" data-total=\"\" data-value=\"\(byDay.totals.spendNusd)\">$12.250000001</td></tr></tfoot>"))
            #expect(project.html.contains("data-testid=\"budget-alert\" data-percent=\"80\">80% of budget</span>"), "mia's key row")

            // The CSV link: the admin API's CSV, byte for byte, as a download.
            let query = "from=\(from)&to=\(to)&group_by=day,key&project_id=\(w.p)"
            #expect(project.html.contains("href=\"/console/o/\(w.org)/usage/history.csv?\(query.replacingOccurrences(of: "&", with: "&amp;"))\""))
            let csv = try await owner.get("/console/o/\(w.org)/usage/history.csv?\(query)")
            let apiCSV = try await Self.history(h, w.org, "\(query)&format=csv", w.owner.token)
            #expect(csv.status == 200 && apiCSV.status == 200)
            #expect(csv.html == String(decoding: apiCSV.body, as: UTF8.self))
            #expect(csv.html.split(separator: "\r\n").count == 6, "a header and five rows (day, key)")
            #expect(csv.headers[.contentType] == "text/csv; charset=utf-8")
            #expect(csv.headers[.contentDisposition] == "attachment; filename=\"bursar-usage-\(w.org)-\(from)-\(to).csv\"")
            #expect(csv.headers[.cacheControl] == "no-store")

            // The overview, stacked by project.
            let overview = try await owner.get("/console/o/\(w.org)")
            #expect(overview.html.contains("data-measure=\"tokens\" data-bars=\"3\" data-series-count=\"1\""))
            #expect(overview.html.contains("<li data-series=\"project:\(w.p)\">"))

            // A Project Member: their own key alone, on the page, in the CSV, and on its key page.
            var member = Browser(client: h.api.client)
            _ = try await member.signIn(w.member.token)
            let theirs = try await member.get("/console/o/\(w.org)/p/\(w.p)")
            #expect(theirs.html.contains("data-measure=\"spend\" data-bars=\"2\" data-series-count=\"1\""))
            #expect(!theirs.html.contains("key:\(tess.key.id)"))
            let memberCSV = try await member.get("/console/o/\(w.org)/usage/history.csv?\(query)")
            #expect(memberCSV.html == String(decoding: try await Self.history(h, w.org, "\(query)&format=csv", w.member.token).body, as: UTF8.self))
            #expect(memberCSV.html.split(separator: "\r\n").count == 3)
            #expect(!memberCSV.html.contains("tess"))
            let refused = try await member.get("/console/o/\(w.org)/usage/history.csv?key_id=\(tess.key.id)")
            let apiRefused = try await Self.history(h, w.org, "key_id=\(tess.key.id)", w.member.token)
            #expect(refused.status == apiRefused.status && refused.status == 403, "refused as the admin API refuses it")
            #expect(refused.error == apiRefused.code)
            let foreign = try await member.get("/console/o/\(w.org)/keys/\(tess.key.id)")
            #expect(foreign.page == "error" && foreign.status >= 400)
            let keyPage = try await member.get("/console/o/\(w.org)/keys/\(mine.key.id)")
            #expect(keyPage.status == 200 && keyPage.page == "key")
            #expect(keyPage.html.contains("data-testid=\"budget-alert\" data-percent=\"80\">80% of budget</span>"))
            #expect(keyPage.html.contains("<li data-series=\"model:m\">"))
            #expect(keyPage.html.contains("data-testid=\"budget-line\" d=\"M54.0 20.0 H"), "$10.00 a day: the top of an axis of $10 (steps of $5)")
            #expect(keyPage.html.contains("<title>Daily budget $10.00</title></path>"), "a daily key's budget line is its budget")

            // A range that cannot be read: the page, with its form and the reason, and a 400.
            let bad = try await owner.get("/console/o/\(w.org)/p/\(w.p)?from=2026-02-30&to=\(to)")
            #expect(bad.status == 400 && bad.page == "project")
            #expect(bad.html.contains("data-testid=\"range-error\">From must be a date as YYYY-MM-DD, not &#39;2026-02-30&#39;.</div>"))
            #expect(bad.html.contains("name=\"from\" type=\"date\" value=\"2026-02-30\""))
            #expect(!bad.html.contains("data-testid=\"chart\""))
            let reversed = try await owner.get("/console/o/\(w.org)?from=\(to)&to=\(from)")
            #expect(reversed.status == 400 && reversed.html.contains("is after to"))
            let badCSV = try await owner.get("/console/o/\(w.org)/usage/history.csv?to=yesterday")
            #expect(badCSV.status == 400 && badCSV.error == "invalid")
            var nobody = Browser(client: h.api.client)
            let signedOut = try await nobody.get("/console/o/\(w.org)/usage/history.csv")
            #expect(signedOut.status == 303 && signedOut.location?.hasPrefix("/console/sign-in") == true)

            // A range with no usage in it says so.
            let quiet = try await owner.get("/console/o/\(w.org)/p/\(w.p)?from=2020-01-01&to=2020-01-31")
            #expect(quiet.status == 200 && quiet.html.contains("data-testid=\"no-usage\""))
        }
    }

    /// The admin API's usage history of the world's organization (not in proto/openapi.json yet,
    /// so its answers are not validated against it here).
    static func history(_ h: AdminHarness, _ org: UInt64, _ query: String, _ token: String) async throws -> Reply {
        try await h.api.undocumented(.get, "/v1/orgs/\(org)/usage/history?\(query)", token: token).reply
    }

    /// The first table row of `day` (the spend chart's table comes first).
    static func row(_ html: String, _ day: String) -> Substring {
        guard let start = html.range(of: "<tr data-day=\"\(day)\">"), let end = html.range(of: "</tr>", range: start.upperBound..<html.endIndex) else { return "" }
        return html[start.lowerBound..<end.upperBound]
    }
}
