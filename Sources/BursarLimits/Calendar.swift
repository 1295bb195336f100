/// A spend window's reset period. Windows are calendar windows in UTC.
public enum BudgetPeriod: String, Sendable, CaseIterable, Codable {
    /// 00:00 UTC to the next 00:00 UTC.
    case daily
    /// Monday 00:00 UTC to the next Monday 00:00 UTC.
    case weekly
    /// The 1st 00:00 UTC to the next month's 1st.
    case monthly
    /// One window for the key's whole life; never resets.
    case lifetime
}

/// A half-open window of time `[startMs, endMs)`, in Unix milliseconds. `endMs` is nil for a lifetime window.
public struct SpendWindow: Hashable, Sendable {
    /// First millisecond of the window.
    public var startMs: Int64
    /// First millisecond after the window, or nil if it never ends.
    public var endMs: Int64?

    /// A window.
    public init(startMs: Int64, endMs: Int64?) {
        self.startMs = startMs
        self.endMs = endMs
    }

    /// The window of `period` that contains `nowMs`.
    ///
    /// This is the same arithmetic the limiter script runs inside Redis (with Redis's clock); the
    /// tests check the two agree.
    public static func containing(_ nowMs: Int64, period: BudgetPeriod) -> SpendWindow {
        let dayMs: Int64 = 86_400_000
        let day = floorDiv(nowMs, dayMs)
        switch period {
        case .daily:
            return SpendWindow(startMs: day * dayMs, endMs: (day + 1) * dayMs)
        case .weekly:
            // 1970-01-01 was a Thursday: day 0 has weekday index 3 counting from Monday = 0.
            let monday = day - floorMod(day + 3, 7)
            return SpendWindow(startMs: monday * dayMs, endMs: (monday + 7) * dayMs)
        case .monthly:
            let (y, m, _) = civil(fromDays: day)
            let start = days(fromCivil: y, m, 1)
            let end = m == 12 ? days(fromCivil: y + 1, 1, 1) : days(fromCivil: y, m + 1, 1)
            return SpendWindow(startMs: start * dayMs, endMs: end * dayMs)
        case .lifetime:
            return SpendWindow(startMs: 0, endMs: nil)
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
public func days(fromCivil year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
    let y = month <= 2 ? year - 1 : year
    let era = floorDiv(y, 400)
    let yoe = y - era * 400
    let mp = (month + 9) % 12
    let doy = (153 * mp + 2) / 5 + day - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    return era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01).
public func civil(fromDays z0: Int64) -> (year: Int64, month: Int64, day: Int64) {
    let z = z0 + 719_468
    let era = floorDiv(z, 146_097)
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let d = doy - (153 * mp + 2) / 5 + 1
    let m = mp < 10 ? mp + 3 : mp - 9
    return (m <= 2 ? yoe + era * 400 + 1 : yoe + era * 400, m, d)
}

@inline(__always) func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}

@inline(__always) func floorMod(_ a: Int64, _ b: Int64) -> Int64 { a - floorDiv(a, b) * b }
