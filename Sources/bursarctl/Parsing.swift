import ArgumentParser
import BursarAPI
import BursarLimits
import Foundation

// Parsers for what users type: money, rate limits, model lists, dates and durations. Each
// throws `Failure.invalid` (exit 2) with a message that names the flag.

// MARK: Money

/// Dollars as exact nano-USD ($1 = 1_000_000_000): `200`, `$200`, `200.5`, `0.000000001`;
/// a leading `-` only when `allowNegative`. No floating point anywhere (`Units.parseMoney`).
func parseMoney(_ text: String, flag: String, allowNegative: Bool = false) throws -> Int64 {
    do {
        return try Units.parseMoney(text, allowNegative: allowNegative)
    } catch {
        throw Failure.invalid("\(flag): \(error.message)")
    }
}

/// A money flag of an update: absent keeps, `none` clears, else an amount.
func parseMoneyPatch(_ text: String?, flag: String) throws -> Patch<Int64> {
    guard let text else { return .unchanged }
    if isNone(text) { return .clear }
    return .set(try parseMoney(text, flag: flag))
}

// MARK: Limits

/// A rate limit (requests or tokens per minute): a non-negative integer, optionally with a `k`
/// (thousand) or `m` (million) suffix: `600`, `20k`, `1m` (`Units.parseLimit`).
func parseLimit(_ text: String, flag: String) throws -> Int64 {
    do {
        return try Units.parseLimit(text)
    } catch {
        throw Failure.invalid("\(flag): \(error.message)")
    }
}

/// A limit flag of an update: absent keeps, `none` clears, else a number.
func parseLimitPatch(_ text: String?, flag: String) throws -> Patch<Int64> {
    guard let text else { return .unchanged }
    if isNone(text) { return .clear }
    return .set(try parseLimit(text, flag: flag))
}

/// `none` (any case): the word that clears a cap in update commands.
func isNone(_ text: String) -> Bool { text.trimmingCharacters(in: .whitespaces).lowercased() == "none" }

// MARK: Models

/// `a,b,c` as a list. `all` (or an empty string) is the empty list, which means every model.
func parseModels(_ text: String?) -> [String]? {
    guard let text else { return nil }
    if text.trimmingCharacters(in: .whitespaces).lowercased() == "all" { return [] }
    return text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
}

// MARK: Ids

/// A numeric id.
func parseID(_ text: String, what: String) throws -> UInt64 {
    guard let id = UInt64(text.trimmingCharacters(in: .whitespaces)) else {
        throw Failure.invalid("\(what) '\(text)' is not an id (a whole number)")
    }
    return id
}

// MARK: Time

/// When a key expires, as the API takes it.
enum Expiry: Equatable {
    /// At this Unix ms.
    case at(ms: Int64)
    /// This many whole days after the server receives the request.
    case inDays(Int64)
}

/// `--expires`: `YYYY-MM-DD` is 00:00 UTC at the start of that date (the key no longer works on
/// that day); `YYYY-MM-DDTHH:MM[:SS]Z` is that instant.
func parseDate(_ text: String, flag: String) throws -> Int64 {
    let bad = Failure.invalid("\(flag): '\(text)' is not a date: use YYYY-MM-DD (00:00 UTC) or YYYY-MM-DDTHH:MM:SSZ")
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    let halves = trimmed.split(separator: "T", maxSplits: 1, omittingEmptySubsequences: false)
    var ms: Int64
    switch Units.dayStart(halves[0]) {
    case .success(let start): ms = start
    case .failure(.malformed): throw bad
    case .failure(.notACalendarDate): throw Failure.invalid("\(flag): '\(text)' is not a calendar date")
    }
    if halves.count == 2 {
        var time = halves[1]
        guard time.hasSuffix("Z") || time.hasSuffix("z") else { throw bad }
        time = time.dropLast()
        let fields = time.split(separator: ":", omittingEmptySubsequences: false)
        guard (2...3).contains(fields.count), fields.allSatisfy({ $0.count == 2 }),
            let h = Int64(fields[0]), let mi = Int64(fields[1]), (0...23).contains(h), (0...59).contains(mi)
        else { throw bad }
        let s = fields.count == 3 ? Int64(fields[2]) : 0
        guard let s, (0...59).contains(s) else { throw bad }
        ms += ((h * 60 + mi) * 60 + s) * 1000
    }
    return ms
}

/// `--expires-in`: `30d` or `30` (days, counted by the server), `2w` (weeks), `12h` (hours,
/// turned into an instant with this machine's clock).
func parseDuration(_ text: String, flag: String, nowMs: Int64) throws -> Expiry {
    let bad = Failure.invalid("\(flag): '\(text)' is not a duration: use e.g. 30d, 30 (days), 2w or 12h")
    var digits = Substring(text.trimmingCharacters(in: .whitespaces).lowercased())
    let unit = digits.last.flatMap { $0.isLetter ? $0 : nil } ?? "d"
    if digits.last?.isLetter == true { digits = digits.dropLast() }
    guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int64(digits) else {
        throw bad
    }
    guard n > 0 else { throw Failure.invalid("\(flag): '\(text)' must be longer than zero") }
    let tooLong = Failure.invalid("\(flag): '\(text)' is too long")
    switch unit {
    case "d":
        return .inDays(n)
    case "w":
        let (days, o) = n.multipliedReportingOverflow(by: 7)
        if o { throw tooLong }
        return .inDays(days)
    case "h":
        let (ms, o1) = n.multipliedReportingOverflow(by: 3_600_000)
        let (at, o2) = nowMs.addingReportingOverflow(ms)
        if o1 || o2 { throw tooLong }
        return .at(ms: at)
    default:
        throw bad
    }
}

/// The expiry of `--expires` / `--expires-in` (at most one of them).
func parseExpiry(expires: String?, expiresIn: String?) throws -> Expiry? {
    switch (expires, expiresIn) {
    case (nil, nil): return nil
    case (.some, .some): throw Failure.invalid("--expires and --expires-in cannot be used together")
    case (let date?, nil): return .at(ms: try parseDate(date, flag: "--expires"))
    case (nil, let duration?): return try parseDuration(duration, flag: "--expires-in", nowMs: nowMs())
    }
}

/// This machine's clock, Unix ms.
func nowMs() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }

// MARK: Choices

/// An organization role.
enum OrgRole: String, CaseIterable, ExpressibleByArgument {
    case owner, member
}

/// A project role.
enum ProjectRole: String, CaseIterable, ExpressibleByArgument {
    case admin, member
}

/// A project status.
enum ProjectStatus: String, CaseIterable, ExpressibleByArgument {
    case active, archived
}

/// A key's budget period.
enum Period: String, CaseIterable, ExpressibleByArgument {
    case daily, weekly, monthly, lifetime
}

// MARK: Files

/// The text of `path`, or standard input for `-`.
func readText(path: String, flag: String) throws -> String {
    let data: Data
    if path == "-" {
        if isatty(STDIN_FILENO) != 0 { printError("bursarctl: reading \(flag) from standard input; end with Ctrl-D.") }
        data = FileHandle.standardInput.readDataToEndOfFile()
    } else {
        guard let contents = FileManager.default.contents(atPath: path) else {
            throw Failure.invalid("\(flag): cannot read '\(path)'")
        }
        data = contents
    }
    guard let text = String(data: data, encoding: .utf8) else {
        throw Failure.invalid("\(flag): '\(path == "-" ? "standard input" : path)' is not UTF-8 text")
    }
    return text
}
