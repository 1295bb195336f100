import BursarAdmin
import BursarAPI
import Foundation
import Hummingbird

extension Console {
    /// What a page charts: whose usage history, stacked by what, and the budget drawn across it.
    struct HistoryView {
        /// What the bars are stacked by: projects (overview), keys (project), models (key).
        var dimension: HistoryQuery.Dimension
        /// Only this project's history, or this key's.
        var project: UInt64? = nil
        var key: UInt64? = nil
        /// A budget drawn on the spend chart as its daily pace (`Chart.pace`), and whose it is.
        var budget: (nusd: Int64, period: String, whose: String)? = nil
        var heading: String
        /// A sentence on whose usage this is.
        var scope: String
    }

    /// A page's usage-history section (Templates/history.mustache) over the range its query names
    /// (`from`, `to`: YYYY-MM-DD, UTC; by default the 30 days ending today), read through
    /// `AdminService.usageHistory`, which sees what the admin API would show the caller. With a
    /// range that cannot be read the section says why, and the page's status is 400.
    func history(_ signed: Signed, _ org: UInt64, _ req: Request, _ view: HistoryView) async throws -> (context: [String: Any], status: HTTPResponse.Status) {
        let typed = Self.queryFields(req)
        var ctx: [String: Any] = [
            "heading": view.heading, "scope": view.scope, "path": req.uri.path, "error": false,
            "from": typed("from") ?? "", "to": typed("to") ?? "",
        ]
        var q: HistoryQuery
        do {
            q = try HistoryQuery.parse({ $0 == "from" || $0 == "to" ? typed($0) : nil }, today: try await service.historyToday(org))
        } catch let e as APIError where e.code == .invalid {
            ctx["error"] = Self.sentence(e.message)
            return (ctx, .badRequest)
        }
        (q.groupBy, q.project, q.key) = ([.day, view.dimension], view.project, view.key)
        let h = try await service.usageHistory(signed.actor, org, q)
        let days = Int(q.to - q.from + 1)
        var line: Chart.Line?
        var lineNote: Any = false
        if let b = view.budget {
            let paces = (0..<days).compactMap { Chart.pace(b.nusd, period: b.period, day: q.from + Int64($0)) }
            if paces.count == days {
                let amount = Units.dollars(b.nusd)
                line = b.period == "daily"
                    ? Chart.Line(values: paces, label: "Daily budget \(amount)")
                    : Chart.Line(values: paces, label: "Budget pace (\(amount)/\(b.period == "weekly" ? "wk" : "mo"))")
                lineNote = b.period == "daily"
                    ? "The dashed line is \(b.whose) daily budget."
                    : "The dashed line is the daily pace of \(b.whose) \(b.period) budget: \(amount) over the days of each \(b.period == "weekly" ? "week (7)" : "month")."
            }
        }
        let by = view.dimension.rawValue
        let (spend, tokens) = Chart.series(h, by: view.dimension, from: q.from, days: days)
        var csv = "/console/o/\(org)/usage/history.csv?from=\(h.from)&to=\(h.to)&group_by=day,\(by)"
        if let p = view.project { csv += "&project_id=\(p)" }
        if let k = view.key { csv += "&key_id=\(k)" }
        ctx["from"] = h.from
        ctx["to"] = h.to
        ctx["range"] = "Per UTC day, \(h.from) to \(h.to)"
        ctx["lineNote"] = lineNote
        ctx["csv"] = csv
        ctx["spend"] = Chart(measure: .spend, from: q.from, days: days, series: spend, line: line)
            .context(id: "spend-chart", title: "Spend per day by \(by)", by: by)
        ctx["tokens"] = Chart(measure: .tokens, from: q.from, days: days, series: tokens, line: nil)
            .context(id: "tokens-chart", title: "Tokens per day by \(by)", by: by)
        return (ctx, .ok)
    }

    /// A query parameter of the request, nil when absent or empty (an empty form field).
    static func queryFields(_ req: Request) -> (String) -> String? {
        let params = req.uri.queryParameters
        return { name in params.get(name).flatMap { $0.isEmpty ? nil : String($0) } }
    }

    /// The usage history as the admin API's CSV (`HistoryCSV`), for the session's user: the same
    /// query parameters (`from`, `to`, `group_by`, `project_id`, `key_id`), the same scoping by
    /// role, sent as a download.
    func historyCSV(_ signed: Signed, _ req: Request, _ org: UInt64) async throws -> Response {
        let q = try HistoryQuery.parse(Self.queryFields(req), today: try await service.historyToday(org))
        let h = try await service.usageHistory(signed.actor, org, q)
        var headers = Views.securityHeaders
        headers[.contentType] = "text/csv; charset=utf-8"
        headers[.contentDisposition] = "attachment; filename=\"bursar-usage-\(org)-\(h.from)-\(h.to).csv\""
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: HistoryCSV.render(h))))
    }
}
