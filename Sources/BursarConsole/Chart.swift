import BursarAPI
import BursarAdmin
import BursarStore
import Foundation

/// Usage history as stacked bars, one bar per UTC day: the geometry (here, pure and tested by
/// ChartTests) and the numbers of the table behind it. The SVG itself is Templates/chart.mustache,
/// so every text in it is escaped by the template like any other value of a page.
///
/// Values stay integers (nano-USD, tokens) and every label is formatted from them (`Units`); only
/// coordinates are floating point.
struct Chart: Sendable {
    /// What the bars measure.
    enum Measure: String, Sendable {
        case spend, tokens

        /// A value as the table and the tooltips show it: exact dollars, or a grouped count.
        func text(_ v: Int64) -> String { self == .spend ? Units.dollars(v) : Units.count(v) }

        /// A gridline's label (1, 2 or 5 × 10ⁿ of the unit): `$200`, `$0.05`, `40k`, `1.5M`.
        func tick(_ v: Int64) -> String {
            switch self {
            case .spend:
                let d = Units.dollars(v)
                return d.hasSuffix(".00") ? String(d.dropLast(3)) : d
            case .tokens:
                for (unit, suffix) in [(Int64(1_000_000_000), "B"), (1_000_000, "M"), (1_000, "k")] where v >= unit {
                    if v % unit == 0 { return Units.count(v / unit) + suffix }
                    if v % (unit / 10) == 0 { return Units.count(v / unit) + "." + String(v % unit / (unit / 10)) + suffix }
                }
                return Units.count(v)
            }
        }
    }

    /// One series of the stack: what it is (`project:12`, `key:7`, `model:gpt-5.5`, or `other`),
    /// its name, and its value on each day of the range.
    struct Series: Sendable, Equatable {
        var id: String
        var name: String
        var values: [Int64]
        /// For `other`: the series summed into it, by id.
        var members: [String] = []

        var total: Int64 { values.reduce(0, +) }
    }

    /// A line drawn across the bars, one value per day (a budget, or its daily pace).
    struct Line: Sendable, Equatable {
        var values: [Int64]
        var label: String
    }

    /// The series' colours in stacking order, and the colour of "Other". Each has at least 3:1
    /// contrast with the white panel (WCAG 1.4.11); stacked segments are also parted by a white gap,
    /// and every value is in the table behind the chart.
    static let palette = ["#1d4ed8", "#c2410c", "#047857", "#7e22ce", "#be185d", "#0e7490"]
    static let otherColour = "#6b7280"
    /// The most series drawn by name; the rest are summed as "Other".
    static let top = palette.count

    /// The drawing's size (the SVG's viewBox: text stays legible from a 390 px phone, where it is
    /// drawn about 340 px wide, to half a 1280 px page), its plot area, and the baseline of the
    /// days' labels.
    static let width = 400.0, height = 216.0
    static let left = 54.0, right = 394.0, plotTop = 20.0, bottom = 186.0, daysBaseline = 206.0

    var measure: Measure
    /// The first day (days since 1970-01-01 UTC); `series[i].values[d]` is day `from + d`.
    var from: Int64
    var days: Int
    var series: [Series]
    var line: Line?

    // MARK: Series

    /// The rows of `history` (grouped by day and `dimension`) as series of both measures, with the
    /// same series and order in each: ranked by spend, then tokens, then name; a series with
    /// neither is left out, and those after the first `top` are summed into "Other".
    static func series(
        _ history: HistoryResponse, by dimension: HistoryQuery.Dimension, from: Int64, days: Int, top: Int = top
    ) -> (spend: [Series], tokens: [Series]) {
        var order: [String] = []
        var names: [String: String] = [:]
        var spend: [String: [Int64]] = [:], tokens: [String: [Int64]] = [:]
        for r in history.rows {
            guard let text = r.day, let day = HistoryDay.parse(text), day >= from, day - from < Int64(days) else { continue }
            let (id, name) = identity(r, dimension)
            if names[id] == nil {
                names[id] = name
                order.append(id)
                spend[id] = Array(repeating: 0, count: days)
                tokens[id] = Array(repeating: 0, count: days)
            }
            spend[id]![Int(day - from)] += r.spendNusd
            tokens[id]![Int(day - from)] += r.tokens
        }
        let totals = Dictionary(uniqueKeysWithValues: order.map { ($0, (spend[$0]!.reduce(0, +), tokens[$0]!.reduce(0, +))) })
        let ranked = order.filter { totals[$0]! != (0, 0) }.sorted {
            let (a, b) = (totals[$0]!, totals[$1]!)
            return a.0 != b.0 ? a.0 > b.0 : a.1 != b.1 ? a.1 > b.1 : (names[$0]!, $0) < (names[$1]!, $1)
        }
        func measured(_ values: [String: [Int64]]) -> [Series] {
            fold(ranked.map { Series(id: $0, name: names[$0]!, values: values[$0]!) }, top: top)
        }
        return (measured(spend), measured(tokens))
    }

    /// What a row is a series of, and its name (a deleted project or key has no name left).
    static func identity(_ r: HistoryRowBody, _ dimension: HistoryQuery.Dimension) -> (id: String, name: String) {
        switch dimension {
        case .project: ("project:\(r.projectId ?? 0)", r.projectName ?? "Project \(r.projectId ?? 0) (deleted)")
        case .key: ("key:\(r.keyId ?? 0)", r.keyName ?? "Key \(r.keyId ?? 0) (deleted)")
        case .model: ("model:\(r.model ?? "")", (r.model ?? "").isEmpty ? "(no model)" : r.model!)
        case .day: ("day", "All")
        }
    }

    /// The first `top` of `ranked`, and the rest summed day by day into one "Other" series.
    static func fold(_ ranked: [Series], top: Int) -> [Series] {
        guard ranked.count > top, let days = ranked.first?.values.count else { return ranked }
        let rest = ranked.dropFirst(top)
        var sum = [Int64](repeating: 0, count: days)
        for s in rest {
            for d in 0..<days { sum[d] += s.values[d] }
        }
        return Array(ranked.prefix(top)) + [Series(id: "other", name: "Other (\(rest.count))", values: sum, members: rest.map(\.id))]
    }

    // MARK: Budget line

    /// A budget's daily pace on `day`: the budget itself for a daily one; a weekly one over 7; a
    /// monthly one over the days of that calendar month (rounded down to the nano-dollar); nil
    /// for a lifetime budget, which has no pace.
    static func pace(_ budget: Int64, period: String, day: Int64) -> Int64? {
        switch period {
        case "daily": budget
        case "weekly": budget / 7
        case "monthly": budget / daysInMonth(day)
        default: nil
        }
    }

    /// The number of days of the calendar month of `day`.
    static func daysInMonth(_ day: Int64) -> Int64 {
        func firstOfMonth(_ d: Int64) -> Int64 { d - Int64(HistoryDay.format(d).suffix(2))! + 1 }
        let first = firstOfMonth(day)
        return firstOfMonth(first + 31) - first
    }

    // MARK: Geometry

    /// Each day's stack: the sum of every series.
    var totals: [Int64] { (0..<days).map { d in series.reduce(0) { $0 + $1.values[d] } } }

    /// The axis: its top value and the gridlines' step.
    var scale: (top: Int64, step: Int64) { Self.scale(max(totals.max() ?? 0, line?.values.max() ?? 0)) }

    /// Steps of 1, 2 or 5 × 10ⁿ, the smallest of which four reach `peak`; the top is the first
    /// step at or above it.
    static func scale(_ peak: Int64) -> (top: Int64, step: Int64) {
        guard peak > 0 else { return (4, 1) }
        func up(_ a: Int64, _ b: Int64) -> Int64 { a / b + (a % b == 0 ? 0 : 1) }
        var magnitude: Int64 = 1
        while true {
            for m: Int64 in [1, 2, 5] where m * magnitude >= up(peak, 4) {
                let step = m * magnitude
                let (top, overflow) = up(peak, step).multipliedReportingOverflow(by: step)
                return (overflow ? Int64.max : top, step)
            }
            magnitude *= 10
        }
    }

    /// The height of `v` on the axis (SVG y grows downwards).
    func y(_ v: Int64) -> Double { Self.bottom - (Self.bottom - Self.plotTop) * Double(v) / Double(scale.top) }

    /// The width of one day's slot, and of its bar.
    var slot: Double { (Self.right - Self.left) / Double(max(days, 1)) }
    var barWidth: Double { max(1, slot * 0.72) }
    func x(_ day: Int) -> Double { Self.left + slot * Double(day) }

    /// A bar's segment: one series on one day, from `y` down to `y + height`.
    struct Segment: Sendable, Equatable {
        var series: Int
        var value: Int64
        var y: Double
        var height: Double
    }

    /// The segments of day `d`, bottom up in series order; zeros are not drawn. Each segment
    /// spans from the running sum below it to the running sum with it, so the top of the stack is
    /// exactly `y(totals[d])`.
    func segments(_ d: Int) -> [Segment] {
        var below: Int64 = 0
        var out: [Segment] = []
        for (i, s) in series.enumerated() where s.values[d] != 0 {
            let (y0, y1) = (y(below), y(below + s.values[d]))
            out.append(Segment(series: i, value: s.values[d], y: y1, height: y0 - y1))
            below += s.values[d]
        }
        return out
    }

    /// The line as horizontal steps, one per day: across the day's slot at the height of its value.
    var lineSteps: [(x0: Double, x1: Double, y: Double)] {
        guard let line else { return [] }
        return line.values.enumerated().map { (x($0.offset), x($0.offset + 1), y($0.element)) }
    }

    // MARK: The template's values

    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// `Jun 3`.
    static func shortDay(_ day: Int64) -> String {
        let ymd = HistoryDay.format(day)
        return months[Int(ymd.dropFirst(5).prefix(2))! - 1] + " " + String(Int(ymd.suffix(2))!)
    }

    static func coordinate(_ v: Double) -> String { String(format: "%.1f", v) }

    func colour(_ i: Int) -> String { series[i].id == "other" ? Self.otherColour : Self.palette[i % Self.palette.count] }

    /// The values of Templates/chart.mustache: `id` names the SVG's title and description, `by`
    /// what the series are (for the description).
    func context(id: String, title: String, by: String) -> [String: Any] {
        let c = Self.coordinate
        let totals = self.totals
        let sum = totals.reduce(0, +)
        let noUsage = series.isEmpty
        let (top, step) = scale
        var grid: [[String: Any]] = []
        if !noUsage {
            for v in stride(from: Int64(0), through: top, by: Int(step)) {
                grid.append(["x1": c(Self.left), "x2": c(Self.right), "y": c(y(v)), "labelX": c(Self.left - 6), "labelY": c(y(v) + 4), "label": measure.tick(v)])
            }
        }
        var bars: [[String: Any]] = []
        for d in 0..<days where totals[d] != 0 {
            let day = HistoryDay.format(from + Int64(d))
            let segments = self.segments(d).map { s -> [String: Any] in
                [
                    "series": series[s.series].id, "colour": colour(s.series), "value": String(s.value), "y": c(s.y), "height": c(s.height),
                    "tip": "\(series[s.series].name), \(day): \(measure.text(s.value))",
                ]
            }
            bars.append(["day": day, "x": c(x(d) + (slot - barWidth) / 2), "width": c(barWidth), "total": String(totals[d]), "segments": segments])
        }
        // At most five days named (room for each on a phone), counted back from the last, which is
        // always named and ends at the plot's right edge (centred under its bar it would run off).
        let every = max(1, (days + 4) / 5)
        let xLabels = stride(from: days - 1, through: 0, by: -every).reversed().map { d -> [String: Any] in
            let last = d == days - 1
            return [
                "x": c(last ? Self.right : x(d) + slot / 2), "y": c(Self.daysBaseline), "anchor": last ? "end" : "middle",
                "text": Self.shortDay(from + Int64(d)),
            ]
        }
        var lineContext: Any = false
        if let line, !noUsage {
            let steps = lineSteps
            var path = ""
            for (i, s) in steps.enumerated() {
                path += (i == 0 ? "M\(c(s.x0)) \(c(s.y))" : " V\(c(s.y))") + " H\(c(s.x1))"
            }
            lineContext = ["path": path, "label": line.label]
        }
        let legend = series.enumerated().map { i, s -> [String: Any] in
            ["id": s.id, "name": s.name, "colour": colour(i), "total": measure.text(s.total)]
        }
        func cell(_ v: Int64) -> [String: Any] { ["value": String(v), "text": measure.text(v)] }
        let rows = (0..<days).map { d -> [String: Any] in
            ["day": HistoryDay.format(from + Int64(d)), "cells": series.map { cell($0.values[d]) }, "total": cell(totals[d])]
        }
        let range = "\(HistoryDay.format(from)) to \(HistoryDay.format(from + Int64(days) - 1))"
        var desc = "\(measure == .spend ? "Spend" : "Tokens") per UTC day from \(range), by \(by): \(measure.text(sum)) in all"
        if !noUsage { desc += "; " + series.map { "\($0.name) \(measure.text($0.total))" }.joined(separator: ", ") }
        if let line, !noUsage { desc += ". Dashed line: \(line.label)" }
        return [
            "id": id, "title": title, "viewBox": "0 0 \(Int(Self.width)) \(Int(Self.height))", "desc": desc + ".", "measure": measure.rawValue, "noUsage": noUsage,
            "grid": grid, "bars": bars, "xLabels": xLabels, "line": lineContext, "legend": legend,
            "barCount": String(bars.count), "seriesCount": String(series.count),
            "columns": series.map { ["id": $0.id, "name": $0.name, "members": $0.members.joined(separator: " ")] as [String: Any] },
            "rows": rows, "totals": ["cells": series.map { cell($0.total) }, "total": cell(sum)] as [String: Any],
        ]
    }
}
