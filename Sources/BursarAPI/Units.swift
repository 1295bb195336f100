// What people type and read: dollars, rate limits, dates. Shared by bursarctl and the web
// console, so both accept and print exactly the same forms. Integer arithmetic only.

import BursarLimits

/// Text that is not the amount, number or date it should be. `message` starts with the text
/// itself (`'12.x' is not a dollar amount …`); callers put the field's name in front.
public struct UnitParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong, naming the text.
    public var message: String
    /// An error.
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Parsing and printing of dollars (as nano-USD), rate limits and dates.
public enum Units {
    // MARK: Money

    /// Dollars as exact nano-USD ($1 = 1_000_000_000): `200`, `$200`, `200.5`,
    /// `0.000000001`; a leading `-` only when `allowNegative`.
    public static func parseMoney(_ text: String, allowNegative: Bool = false) throws(UnitParseError) -> Int64 {
        let bad = UnitParseError("'\(text)' is not a dollar amount (e.g. 200, $12.50, 0.000000001)")
        var rest = Substring(text.trimmingSpaces)
        var negative = false
        if rest.hasPrefix("-") {
            negative = true
            rest = rest.dropFirst()
        }
        if rest.hasPrefix("$") { rest = rest.dropFirst() }
        if !negative && rest.hasPrefix("-") {
            negative = true
            rest = rest.dropFirst()
        }
        let parts = rest.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let whole = parts[0]
        let fraction = parts.count > 1 ? parts[1] : ""
        func isDigits(_ s: Substring) -> Bool { s.allSatisfy { $0.isASCII && $0.isNumber } }
        guard isDigits(whole), isDigits(fraction), !(whole.isEmpty && fraction.isEmpty) else { throw bad }
        guard fraction.count <= 9 else {
            throw UnitParseError("'\(text)' has more than 9 decimals (the smallest amount is $0.000000001)")
        }
        if negative && !allowNegative { throw UnitParseError("'\(text)' must not be negative") }
        let tooLarge = UnitParseError("'\(text)' is too large (at most $9,223,372,036.854775807)")
        var value: Int64 = 0
        for digit in whole + fraction + String(repeating: "0", count: 9 - fraction.count) {
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int64(digit.wholeNumberValue!))
            if o1 || o2 { throw tooLarge }
            value = sum
        }
        return negative ? -value : value
    }

    /// Nano-USD as dollars: at least cents, more decimals only when they are not zero
    /// (`$200.00`, `$0.000000001`, `-$5.10`).
    public static func dollars(_ nusd: Int64) -> String {
        let magnitude = nusd.magnitude
        let whole = magnitude / 1_000_000_000
        var fraction = String(magnitude % 1_000_000_000)
        fraction = String(repeating: "0", count: 9 - fraction.count) + fraction
        while fraction.count > 2 && fraction.hasSuffix("0") { fraction.removeLast() }
        return (nusd < 0 ? "-$" : "$") + groupThousands(String(whole)) + "." + fraction
    }

    /// Nano-USD as a plain decimal a form field takes back unchanged (`200`, `12.5`, `0.000000001`).
    public static func plainDollars(_ nusd: Int64) -> String {
        let magnitude = nusd.magnitude
        var fraction = String(magnitude % 1_000_000_000)
        fraction = String(repeating: "0", count: 9 - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return (nusd < 0 ? "-" : "") + String(magnitude / 1_000_000_000) + (fraction.isEmpty ? "" : "." + fraction)
    }

    /// `1234567` as `1,234,567`.
    public static func groupThousands(_ digits: String) -> String {
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return out
    }

    /// A count with thousands grouped (`120,000`).
    public static func count(_ n: Int64) -> String { (n < 0 ? "-" : "") + groupThousands(String(n.magnitude)) }

    // MARK: Limits

    /// A rate limit (requests or tokens per minute): a non-negative integer, optionally with a `k`
    /// (thousand) or `m` (million) suffix: `600`, `20k`, `1m`, `120_000`.
    public static func parseLimit(_ text: String) throws(UnitParseError) -> Int64 {
        var digits = Substring(text.trimmingSpaces.replacingAll("_", with: ""))
        var multiplier: Int64 = 1
        switch digits.last {
        case "k", "K":
            multiplier = 1_000
            digits = digits.dropLast()
        case "m", "M":
            multiplier = 1_000_000
            digits = digits.dropLast()
        default: break
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            if text.hasPrefix("-") { throw UnitParseError("'\(text)' must not be negative") }
            throw UnitParseError("'\(text)' is not a whole number (e.g. 600, 20k, 1m)")
        }
        guard let base = Int64(digits) else { throw UnitParseError("'\(text)' is too large") }
        let (value, overflow) = base.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { throw UnitParseError("'\(text)' is too large") }
        return value
    }

    // MARK: Dates

    /// Why text is not a day: not of the form `YYYY-MM-DD` (1970 or later), or a date the
    /// calendar does not have (`2026-02-30`).
    public enum DayFailure: Error, Sendable { case malformed, notACalendarDate }

    /// `YYYY-MM-DD`, exactly (no spaces), as Unix ms at 00:00 UTC of that date.
    public static func dayStart(_ text: Substring) -> Result<Int64, DayFailure> {
        let date = text.split(separator: "-", omittingEmptySubsequences: false)
        guard date.count == 3, date[0].count == 4, date[1].count == 2, date[2].count == 2,
            let y = Int64(date[0]), let m = Int64(date[1]), let d = Int64(date[2]), y >= 1970,
            (1...12).contains(m), (1...31).contains(d)
        else { return .failure(.malformed) }
        let day = days(fromCivil: y, m, d)
        guard civil(fromDays: day) == (y, m, d) else { return .failure(.notACalendarDate) }
        return .success(day * 86_400_000)
    }

    /// `YYYY-MM-DD` (spaces around it allowed) as Unix ms at 00:00 UTC of that date.
    public static func parseDay(_ text: String) throws(UnitParseError) -> Int64 {
        switch dayStart(Substring(text.trimmingSpaces)) {
        case .success(let ms): return ms
        case .failure(.malformed): throw UnitParseError("'\(text)' is not a date: use YYYY-MM-DD")
        case .failure(.notACalendarDate): throw UnitParseError("'\(text)' is not a calendar date")
        }
    }

    /// Unix ms as `YYYY-MM-DD` (UTC).
    public static func day(_ ms: Int64) -> String { String(isoTime(ms).prefix { $0 != "T" }) }

    /// Unix ms as ISO-8601 UTC, `2026-12-31T00:00:00Z` (milliseconds shown only when not zero).
    public static func isoTime(_ ms: Int64) -> String {
        let dayMs: Int64 = 86_400_000
        var day = ms / dayMs
        var rest = ms % dayMs
        if rest < 0 {
            day -= 1
            rest += dayMs
        }
        let (y, m, d) = civil(fromDays: day)
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let seconds = rest / 1000
        var text = "\(y)-\(two(m))-\(two(d))T\(two(seconds / 3600)):\(two(seconds / 60 % 60)):\(two(seconds % 60))"
        if rest % 1000 != 0 {
            let millis = String(rest % 1000)
            text += "." + String(repeating: "0", count: 3 - millis.count) + millis
        }
        return text + "Z"
    }

    /// How far `ms` is from `nowMs`, in words: `in 30 days`, `3 hours ago`, `in 2 minutes`, `now`.
    public static func relative(_ ms: Int64, nowMs: Int64) -> String {
        let delta = ms - nowMs
        let span = delta.magnitude / 1000
        let phrase: String
        switch span {
        case 0..<45: return "now"
        case 45..<5400: phrase = plural(Int64((span + 30) / 60), "minute")
        case 5400..<79_200: phrase = plural(Int64((span + 1800) / 3600), "hour")
        case 79_200..<(86_400 * 45): phrase = plural(max(1, Int64((span + 43_200) / 86_400)), "day")
        case (86_400 * 45)..<(86_400 * 730): phrase = plural(Int64((span + 15 * 86_400) / (30 * 86_400)), "month")
        default: phrase = plural(Int64(span / (365 * 86_400)), "year")
        }
        return delta > 0 ? "in \(phrase)" : "\(phrase) ago"
    }

    private static func plural(_ n: Int64, _ unit: String) -> String { n == 1 ? "1 \(unit)" : "\(n) \(unit)s" }
}

extension String {
    fileprivate var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }

    fileprivate func replacingAll(_ a: Character, with b: String) -> String {
        var out = ""
        for c in self { if c == a { out += b } else { out.append(c) } }
        return out
    }
}
