import BursarLimits
public import BursarRedis
public import BursarWire

/// How long usage history is kept: a record expires this many days after its day ends (SPEC
/// §13.13). Put into the limiter's scripts when they are loaded (`HISTORY.retention_ms`).
public struct HistoryRetention: Sendable, Hashable {
    /// Days after a day's end.
    public let days: Int
    /// The least allowed: a reservation's SETTLE must always find its day's record (a
    /// reservation lives at most its TTL plus an hour).
    public static let minimumDays = 35
    /// The most allowed (ten years).
    public static let maximumDays = 3_660
    /// 13 months, the longest being 31 + 365 days.
    public static let standard = HistoryRetention(uncheckedDays: 396)

    private init(uncheckedDays: Int) { days = uncheckedDays }

    /// A retention; nil outside `minimumDays…maximumDays`.
    public init?(days: Int) {
        guard (Self.minimumDays...Self.maximumDays).contains(days) else { return nil }
        self.days = days
    }
}

/// Budget alerts an atomic step crossed (history.lua): a key's or a project's window spend
/// reaching 50, 80 or 100 % of its budget, recorded once per window.
public struct BudgetAlerts: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let key50 = BudgetAlerts(rawValue: 1 << 0)
    public static let key80 = BudgetAlerts(rawValue: 1 << 1)
    public static let key100 = BudgetAlerts(rawValue: 1 << 2)
    public static let project50 = BudgetAlerts(rawValue: 1 << 3)
    public static let project80 = BudgetAlerts(rawValue: 1 << 4)
    public static let project100 = BudgetAlerts(rawValue: 1 << 5)

    /// The thresholds, in percent.
    public static let percents = [50, 80, 100]

    /// Each alert as (scope `key`/`project`, percent).
    public var crossings: [(scope: String, percent: Int)] {
        var out: [(String, Int)] = []
        for (i, p) in Self.percents.enumerated() {
            if rawValue & (1 << i) != 0 { out.append(("key", p)) }
            if rawValue & (1 << (i + 3)) != 0 { out.append(("project", p)) }
        }
        return out
    }
}

/// The slots of a usage-history record (history.lua): signed 64-bit big-endian integers, in this
/// order; the denials of reason r at `deniedBase + r`.
public enum HistorySlot: Int, CaseIterable, Sendable {
    case admitted, settled, released, settledTokens, settledSpend, openRequests, openTokens, openSpend
    /// The slot of the denials of reason 0 (none are counted there).
    public static let deniedBase = 7
}

/// What one key did with one model on one day, or the sum of several such (SPEC §13.13).
public struct HistoryCounts: Sendable, Hashable {
    /// CHECKs admitted (a voided attempt taken back; a swept one counted again when settled).
    public var admitted: Int64 = 0
    /// Of them settled, and released.
    public var settled: Int64 = 0
    public var released: Int64 = 0
    /// The settled actual tokens and cost (nano-USD).
    public var settledTokens: Int64 = 0
    public var settledSpend: Int64 = 0
    /// Admitted and neither settled nor released (expired ones stay here, as their estimate stays
    /// in the spend windows): how many, and their estimates.
    public var openRequests: Int64 = 0
    public var openTokens: Int64 = 0
    public var openSpend: Int64 = 0
    /// CHECKs denied, by reason.
    public var denied: [DenyReason: Int64] = [:]

    public init() {}

    /// What the spend windows were debited: settled actuals plus open estimates.
    public var spend: Int64 { settledSpend &+ openSpend }
    /// Tokens counted the same way.
    public var tokens: Int64 { settledTokens &+ openTokens }
    /// Every denial.
    public var deniedTotal: Int64 { denied.values.reduce(0, &+) }

    /// A record's bytes (BITFIELD's layout: big-endian, as many slots as were written).
    public init(record bytes: [UInt8]) {
        func slot(_ i: Int) -> Int64 { PackedSlots.int64(bytes, i) }
        admitted = slot(HistorySlot.admitted.rawValue)
        settled = slot(HistorySlot.settled.rawValue)
        released = slot(HistorySlot.released.rawValue)
        settledTokens = slot(HistorySlot.settledTokens.rawValue)
        settledSpend = slot(HistorySlot.settledSpend.rawValue)
        openRequests = slot(HistorySlot.openRequests.rawValue)
        openTokens = slot(HistorySlot.openTokens.rawValue)
        openSpend = slot(HistorySlot.openSpend.rawValue)
        let slots = (bytes.count + 7) / 8
        if slots > HistorySlot.deniedBase + 1 {
            for i in (HistorySlot.deniedBase + 1)..<slots {
                let n = slot(i)
                if n != 0, let r = DenyReason(rawValue: UInt8(i - HistorySlot.deniedBase)) { denied[r] = n }
            }
        }
    }

    /// Adds another's counts.
    public mutating func add(_ o: HistoryCounts) {
        admitted &+= o.admitted
        settled &+= o.settled
        released &+= o.released
        settledTokens &+= o.settledTokens
        settledSpend &+= o.settledSpend
        openRequests &+= o.openRequests
        openTokens &+= o.openTokens
        openSpend &+= o.openSpend
        for (r, n) in o.denied { denied[r, default: 0] &+= n }
    }
}

/// One history record: a key's use of one model on one UTC day.
public struct HistoryEntry: Sendable, Hashable {
    /// Days since 1970-01-01 UTC.
    public var day: Int64
    public var projectID: UInt64
    public var keyID: UInt64
    /// The model as the CHECK named it; empty for denials of a model the key may not use.
    public var model: String
    public var counts: HistoryCounts

    public init(day: Int64, projectID: UInt64, keyID: UInt64, model: String, counts: HistoryCounts) {
        (self.day, self.projectID, self.keyID, self.model, self.counts) = (day, projectID, keyID, model, counts)
    }
}

/// Reads usage history (SPEC §13.13): a day's index, then its records, every day of a range in
/// one pipelined round trip each way.
public struct HistoryReader: Sendable {
    /// The Redis client.
    public let redis: RedisClient
    /// The most days one read may span.
    public static let maximumDays: Int64 = 3_660

    public init(redis: RedisClient) { self.redis = redis }

    /// Every record of days `from…to` (days since 1970-01-01 UTC), in day, project, key, model
    /// order; `include` picks (project, key) pairs to read (nil: all).
    public func entries(org: UInt64, from: Int64, to: Int64, include: (@Sendable (UInt64, UInt64) -> Bool)? = nil) async throws -> [HistoryEntry] {
        guard from <= to else { return [] }
        let days = Array(from...to)
        let indexes = try await redis.send(days.map { RedisCommand("SMEMBERS", Keyspace.historyIndex(org, day: $0)) }, timeout: .seconds(10))
        var wanted: [(day: Int64, project: UInt64, key: UInt64, model: String)] = []
        for (day, reply) in zip(days, indexes) {
            if case .error(let e) = reply { throw RedisError(.server, e) }
            for member in reply.array ?? [] {
                guard let text = member.string, let parsed = Self.parseMember(text) else { continue }
                if let include, !include(parsed.project, parsed.key) { continue }
                wanted.append((day, parsed.project, parsed.key, parsed.model))
            }
        }
        wanted.sort { ($0.day, $0.project, $0.key, $0.model) < ($1.day, $1.project, $1.key, $1.model) }
        var out: [HistoryEntry] = []
        out.reserveCapacity(wanted.count)
        var start = 0
        while start < wanted.count {
            let chunk = wanted[start..<min(start + 5_000, wanted.count)]
            let replies = try await redis.send(chunk.map { RedisCommand("GET", Keyspace.history(org, day: $0.day, key: $0.key, model: $0.model)) }, timeout: .seconds(10))
            for (w, reply) in zip(chunk, replies) {
                switch reply {
                case .bulk(let bytes):
                    out.append(HistoryEntry(day: w.day, projectID: w.project, keyID: w.key, model: w.model, counts: HistoryCounts(record: bytes)))
                case .error(let e): throw RedisError(.server, e)
                default: continue
                }
            }
            start += chunk.count
        }
        return out
    }

    /// `<project>:<key>:<model>` (the model may hold colons).
    static func parseMember(_ text: String) -> (project: UInt64, key: UInt64, model: String)? {
        let parts = text.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let p = UInt64(parts[0]), let k = UInt64(parts[1]) else { return nil }
        return (p, k, String(parts[2]))
    }

    /// The budget alerts recorded in the window whose counter is `window` (a spend-window key
    /// name), as percents.
    public func alerts(window: String) async throws -> [Int] {
        let replies = try await redis.send(BudgetAlerts.percents.map { RedisCommand("EXISTS", Keyspace.budgetAlert(window: window, percent: $0)) })
        return zip(BudgetAlerts.percents, replies).compactMap { $1.int == 1 ? $0 : nil }
    }
}

/// Days since 1970-01-01 UTC and civil dates (proleptic Gregorian), for the history's days.
public enum HistoryDay {
    /// The day of Unix ms `ms`.
    public static func of(ms: Int64) -> Int64 { ms >= 0 ? ms / 86_400_000 : -((86_399_999 - ms) / 86_400_000) }

    /// `YYYY-MM-DD` of `day`.
    public static func format(_ day: Int64) -> String {
        let (y, m, d) = civil(fromDays: day)
        func pad(_ v: Int64, _ n: Int) -> String { String(repeating: "0", count: max(0, n - String(v).count)) + String(v) }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))"
    }

    /// The day of `YYYY-MM-DD`; nil if it is not a valid date.
    public static func parse(_ text: String) -> Int64? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              parts.allSatisfy({ $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
              let y = Int64(parts[0]), let m = Int64(parts[1]), let d = Int64(parts[2]),
              (1...12).contains(m), d >= 1
        else { return nil }
        let day = days(fromCivil: y, m, d)
        guard civil(fromDays: day) == (y, m, d) else { return nil }
        return day
    }
}
