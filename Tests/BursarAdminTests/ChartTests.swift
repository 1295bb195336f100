import BursarAPI
import BursarAdmin
import BursarStore
import Foundation
import Testing

@testable import BursarConsole

/// The console's usage charts (Chart.swift, Templates/chart.mustache): the numbers drawn and
/// tabled are exactly the history's, the geometry adds up, and every text is escaped.
@Suite("Usage charts: stacks, folding, budget line, labels and the empty state")
struct ChartTests {
    static let june1 = HistoryDay.parse("2026-06-01")!

    static func series(_ id: String, _ values: [Int64]) -> Chart.Series { Chart.Series(id: id, name: id, values: values) }

    @Test("each day's segments stack from zero without gaps to exactly its total, bottom up in series order; zeros are not drawn")
    func stacking() {
        let chart = Chart(
            measure: .spend, from: Self.june1, days: 4,
            series: [Self.series("a", [3, 0, 7, 1]), Self.series("b", [5, 0, 0, 2]), Self.series("c", [1, 0, 9, 0])], line: nil)
        #expect(chart.totals == [9, 0, 16, 3])
        #expect(chart.scale == (20, 5))
        for d in 0..<4 {
            let segments = chart.segments(d)
            #expect(segments.map(\.value).reduce(0, +) == chart.totals[d])
            #expect(segments.allSatisfy { $0.value != 0 })
            #expect(segments.map(\.series) == segments.map(\.series).sorted())
            var bottom = chart.y(0)
            for s in segments {
                #expect(abs(s.y + s.height - bottom) < 1e-9, "no gap under a segment")
                bottom = s.y
            }
            #expect(abs(bottom - chart.y(chart.totals[d])) < 1e-9, "the stack ends at the day's total")
        }
        #expect(chart.segments(1).isEmpty)
        let ctx = chart.context(id: "t", title: "T", by: "key")
        #expect(ctx["barCount"] as? String == "3", "a day without usage has no bar")
        let tableTotal = (ctx["totals"] as? [String: Any])?["total"] as? [String: Any]
        #expect(tableTotal?["value"] as? String == "28")
    }

    @Test("beyond the top six, series are summed day by day into Other, which names them: nothing is lost")
    func folding() {
        let ranked = (0..<9).map { i in Self.series("key:\(i)", [Int64(100 - i), Int64(i), 1_000_000_000_000 + Int64(i)]) }
        let folded = Chart.fold(ranked, top: 6)
        #expect(folded.map(\.id) == ["key:0", "key:1", "key:2", "key:3", "key:4", "key:5", "other"])
        #expect(folded.last?.members == ["key:6", "key:7", "key:8"])
        #expect(folded.last?.name == "Other (3)")
        #expect(folded.last?.values == [94 + 93 + 92, 6 + 7 + 8, 3_000_000_000_021])
        for d in 0..<3 {
            let shown: Int64 = folded.reduce(0) { $0 + $1.values[d] }
            let all: Int64 = ranked.reduce(0) { $0 + $1.values[d] }
            #expect(shown == all)
        }
        #expect(Chart.fold(Array(ranked.prefix(6)), top: 6) == Array(ranked.prefix(6)), "six series need no Other")
    }

    @Test("series from a history: placed on their days, ranked by spend then tokens then name, the same order for both measures; empty ones left out")
    func fromHistory() {
        func row(_ day: String, _ project: UInt64, _ name: String?, spend: Int64, tokens: Int64) -> HistoryRowBody {
            HistoryRowBody(day: day, projectId: project, projectName: name, requestsAdmitted: 1, tokens: tokens, spendNusd: spend)
        }
        var deniedOnly = row("2026-06-02", 9, "Denied", spend: 0, tokens: 0)
        deniedOnly.requestsDenied = 4
        let h = HistoryResponse(
            from: "2026-06-01", to: "2026-06-03", groupBy: ["day", "project"],
            rows: [
                row("2026-06-01", 1, "Beta", spend: 5, tokens: 10), row("2026-06-01", 2, "Alpha", spend: 5, tokens: 10),
                row("2026-06-03", 2, "Alpha", spend: 2, tokens: 1), row("2026-06-02", 3, nil, spend: 0, tokens: 500),
                row("2026-06-03", 4, "Gamma", spend: 1_000_000_000, tokens: 1), deniedOnly,
            ],
            totals: HistoryRowBody())
        let (spend, tokens) = Chart.series(h, by: .project, from: Self.june1, days: 3)
        #expect(spend.map(\.id) == ["project:4", "project:2", "project:1", "project:3"])
        #expect(tokens.map(\.id) == spend.map(\.id))
        #expect(spend.map(\.name) == ["Gamma", "Alpha", "Beta", "Project 3 (deleted)"])
        #expect(spend[1].values == [5, 0, 2])
        #expect(tokens[3].values == [0, 500, 0])
    }

    @Test("the budget line is each day's pace at the axis' height of that value: a daily budget itself, a monthly one over its month's days")
    func budgetLine() {
        #expect(Chart.daysInMonth(HistoryDay.parse("2026-02-14")!) == 28)
        #expect(Chart.daysInMonth(HistoryDay.parse("2028-02-01")!) == 29)
        #expect(Chart.daysInMonth(HistoryDay.parse("2026-12-31")!) == 31)
        #expect(Chart.daysInMonth(HistoryDay.parse("2026-06-30")!) == 30)
        let may31 = HistoryDay.parse("2026-05-31")!
        #expect(Chart.pace(2_000_000_000_000, period: "monthly", day: may31) == 64_516_129_032)
        #expect(Chart.pace(2_000_000_000_000, period: "monthly", day: may31 + 1) == 66_666_666_666)
        #expect(Chart.pace(50_000_000_000, period: "weekly", day: may31) == 7_142_857_142)
        #expect(Chart.pace(20_000_000_000, period: "daily", day: may31) == 20_000_000_000)
        #expect(Chart.pace(20_000_000_000, period: "lifetime", day: may31) == nil)

        let paces = [may31, may31 + 1].map { Chart.pace(2_000_000_000_000, period: "monthly", day: $0)! }
        let chart = Chart(
            measure: .spend, from: may31, days: 2, series: [Self.series("key:1", [10_000_000_000, 90_000_000_000])],
            line: Chart.Line(values: paces, label: "Budget pace"))
        #expect(chart.scale.top == 100_000_000_000, "the axis reaches the higher of the bars and the line")
        let steps = chart.lineSteps
        #expect(steps.count == 2)
        for (i, s) in steps.enumerated() {
            #expect(s.y == chart.y(paces[i]))
            #expect(s.x0 == chart.x(i) && s.x1 == chart.x(i + 1))
        }
        #expect(abs(steps[1].y - (Chart.bottom - (Chart.bottom - Chart.plotTop) * 0.66666666666)) < 1e-6)
        let line = chart.context(id: "t", title: "T", by: "key")["line"] as? [String: Any]
        #expect(line?["path"] as? String == "M54.0 \(Chart.coordinate(steps[0].y)) H224.0 V\(Chart.coordinate(steps[1].y)) H394.0")
    }

    @Test("gridlines at 1, 2 or 5 × 10ⁿ, labelled from the integers: dollars without drift, tokens exact")
    func axis() {
        #expect(Chart.scale(0) == (4, 1))
        #expect(Chart.scale(7) == (8, 2))
        #expect(Chart.scale(1_236_500_000_000) == (1_500_000_000_000, 500_000_000_000))
        #expect(Chart.scale(300_000_000) == (300_000_000, 100_000_000))
        #expect(Chart.scale(300_000_001) == (400_000_000, 100_000_000))
        #expect(Chart.scale(Int64.max / 2).top >= Int64.max / 2)
        #expect(Chart.Measure.spend.tick(1_500_000_000_000) == "$1,500")
        #expect(Chart.Measure.spend.tick(100_000_000) == "$0.10")
        #expect(Chart.Measure.spend.tick(50_000_000) == "$0.05")
        #expect(Chart.Measure.spend.tick(3) == "$0.000000003")
        #expect(Chart.Measure.tokens.tick(1_500_000) == "1.5M")
        #expect(Chart.Measure.tokens.tick(40_000) == "40k")
        #expect(Chart.Measure.tokens.tick(1_050_000) == "1,050k")
        #expect(Chart.Measure.tokens.tick(250) == "250")
        #expect(Chart.shortDay(HistoryDay.parse("2026-06-03")!) == "Jun 3")
    }

    @Test("every name and label is escaped by the template; an empty range says so and draws nothing")
    func rendering() throws {
        let views = Views()
        let hostile = "<script>alert(\"x\")</script> & 'co'"
        var chart = Chart(
            measure: .spend, from: Self.june1, days: 2,
            series: [Chart.Series(id: "key:1", name: hostile, values: [1_000_000_000, 0])], line: Chart.Line(values: [1, 1], label: hostile))
        var ctx = chart.context(id: "spend-chart", title: hostile, by: "key")
        ctx["csv"] = "/console/o/1/usage/history.csv?a=1&b=<2>"
        let html = try #require(views.library.render(ctx, withTemplate: "chart"))
        #expect(!html.contains("<script"))
        #expect(!html.contains("'co'"))
        #expect(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;co&#39;"))
        #expect(html.contains("href=\"/console/o/1/usage/history.csv?a=1&amp;b=&lt;2&gt;\""))
        #expect(html.contains("role=\"img\" aria-labelledby=\"spend-chart-title spend-chart-desc\""))
        #expect(html.contains("<rect x=\"") && html.contains("data-series=\"key:1\" data-value=\"1000000000\""))
        #expect(html.contains("<td class=\"num\" data-value=\"1000000000\">$1.00</td>"))
        #expect(!html.contains("data-testid=\"no-usage\""))
        #expect(html.contains("<text x=\"139.0\" y=\"206.0\" text-anchor=\"middle\">Jun 1</text><text x=\"394.0\" y=\"206.0\" text-anchor=\"end\">Jun 2</text>"))

        chart.series = []
        ctx = chart.context(id: "spend-chart", title: "Spend", by: "key")
        ctx["csv"] = ""
        let empty = try #require(views.library.render(ctx, withTemplate: "chart"))
        #expect(empty.contains("data-testid=\"no-usage\">No usage in this range.</p>"))
        #expect(!empty.contains("<svg") && !empty.contains("<rect"))
        #expect(empty.contains("data-bars=\"0\""))
        #expect(empty.contains("<tr data-day=\"2026-06-02\"><th scope=\"row\">2026-06-02</th><td class=\"num\" data-total=\"\" data-value=\"0\">$0.00</td></tr>"))
    }

    @Test("each series colour, and Other's, has at least 3:1 contrast with the white panel, and no two are the same")
    func colours() {
        func luminance(_ hex: String) -> Double {
            let v = Int(hex.dropFirst(), radix: 16)!
            func channel(_ c: Int) -> Double {
                let s = Double(c) / 255
                return s <= 0.03928 ? s / 12.92 : pow((s + 0.055) / 1.055, 2.4)
            }
            return 0.2126 * channel(v >> 16 & 0xff) + 0.7152 * channel(v >> 8 & 0xff) + 0.0722 * channel(v & 0xff)
        }
        let all = Chart.palette + [Chart.otherColour]
        #expect(Set(all).count == all.count)
        for c in all {
            #expect((1.05) / (luminance(c) + 0.05) >= 3, "\(c)")
        }
    }
}
