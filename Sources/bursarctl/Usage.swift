import ArgumentParser
import BursarAPI
import Foundation
import NIOCore

/// `bursarctl usage key|project|org`: where a key, a project or the organization stands now;
/// `bursarctl usage history`: what was used, per UTC day.
struct UsageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage",
        abstract: "Live usage: the current minute, the current spend window, what is reserved, what remains.",
        discussion: """
            Read from Redis at the moment of the call, with the limiter's own clock and formulas: the \
            numbers are those a CHECK at that instant would report. REMAINING for money is budget − \
            spend and may be negative. Open reservations count at their estimate until they are \
            settled, released or expire.
            """,
        subcommands: [Key.self, Project.self, Org.self, History.self])

    struct Key: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A key's usage (its user, or a Project Admin or Owner).",
            discussion: """
                The key's limits are its effective ones (the tighter of its own and its creator's \
                grant); the `check` rows are what a CHECK reports: the tighter of the key's and the \
                project's level.
                """)

        @Argument(help: ArgumentHelp("Key id.", valueName: "k"))
        var key: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let id = try parseID(key, what: "K")
            try await global.withSession { s in
                try await s.show(.GET, "\(try await s.orgPath())/keys/\(id)/usage", as: KeyUsageResponse.self) { r in
                    printBlock([("key", "\(r.keyId) (\(r.name))"), ("project", "\(r.projectId)"), ("at", isoTime(r.atMs))])
                    print("")
                    var table = rateTable()
                    addRate(&table, "requests", r.requests)
                    addRate(&table, "tokens", r.tokens)
                    addRate(&table, "check requests", r.effectiveRequests)
                    addRate(&table, "check tokens", r.effectiveTokens)
                    table.print(empty: "")
                    print("")
                    printSpend(r.spend, r.reserved)
                }
            }
        }
    }

    struct Project: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A project's usage (anyone with a role in it).")

        @Argument(help: ArgumentHelp("Project id or name.", valueName: "p"))
        var project: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                let org = try await s.orgPath()
                let id = try await s.projectID(project, orgPath: org)
                try await s.show(.GET, "\(org)/projects/\(id)/usage", as: ProjectUsageResponse.self) { r in
                    printBlock([("project", "\(r.projectId) (\(r.name))"), ("at", isoTime(r.atMs))])
                    print("")
                    var table = rateTable()
                    addRate(&table, "requests", r.requests)
                    addRate(&table, "tokens", r.tokens)
                    table.print(empty: "")
                    print("")
                    printSpend(r.spend, r.reserved)
                }
            }
        }
    }

    struct Org: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The organization's usage: credits, this month's spend (Owners only).")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                try await s.show(.GET, "\(try await s.orgPath())/usage", as: OrgUsageResponse.self) { r in
                    printBlock([
                        ("organization", "\(r.orgId) (\(r.name))"), ("at", isoTime(r.atMs)),
                        ("credits", dollars(r.creditsNusd)), ("metered", r.metered ? "yes" : "no"),
                        ("requests/min", groupThousands(String(r.requestsUsed))), ("tokens/min", groupThousands(String(r.tokensUsed))),
                    ])
                    print("")
                    printSpend(r.spend, r.reserved)
                }
            }
        }
    }
}

/// `bursarctl top`: the busiest keys and projects of the last minute (Owners only).
struct Top: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the busiest keys and projects of the last minute (Owners only).",
        discussion: """
            Ranked by requests, then tokens, in their minute buckets. Only RPM and TPM limits keep \
            buckets: a key or project without them does not appear.
            """)

    @Option(name: .long, help: ArgumentHelp("How many keys and projects, 1…100 (default: 10).", valueName: "n"))
    var limit: Int?

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        if let limit, !(1...100).contains(limit) { throw Failure.invalid("--limit \(limit) is outside 1…100") }
        try await global.withSession { s in
            var path = "\(try await s.orgPath())/top"
            if let limit { path += "?limit=\(limit)" }
            try await s.show(.GET, path, as: TopResponse.self) { r in
                printBlock([("at", isoTime(r.atMs))])
                print("")
                var keys = Table("KEY", "NAME", "PROJECT", "REQUESTS", "TOKENS")
                for k in r.keys {
                    keys.add("\(k.keyId)", k.name, "\(k.projectId) (\(k.projectName))", count(k.requestsUsed), count(k.tokensUsed))
                }
                keys.print(empty: "No key was used in the last minute.")
                print("")
                var projects = Table("PROJECT", "NAME", "REQUESTS", "TOKENS")
                for p in r.projects { projects.add("\(p.projectId)", p.name, count(p.requestsUsed), count(p.tokensUsed)) }
                projects.print(empty: "No project was used in the last minute.")
            }
        }
    }
}

extension UsageCommand {
    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Usage history per UTC day: requests, denials, tokens and spend, grouped as asked.",
            discussion: """
                What the enforcement counters were debited, kept per day, key and model: a request \
                belongs to the day of its CHECK, however late it is settled. Owners see everything, \
                Project Admins their projects, Project Members their own keys. Spend is settled \
                actuals plus open estimates (reservations neither settled nor released). With \
                --csv, the server's CSV (integer nano-USD, one column per deny reason) is printed \
                as it came.
                """)

        @Option(name: .long, help: ArgumentHelp("First day, YYYY-MM-DD (default: 29 days before --to).", valueName: "date"))
        var from: String?

        @Option(name: .long, help: ArgumentHelp("Last day, YYYY-MM-DD (default: today, UTC).", valueName: "date"))
        var to: String?

        @Option(name: .customLong("group-by"), help: ArgumentHelp("day, project, key and/or model, comma-separated (default: day).", valueName: "dims"))
        var groupBy: String?

        @Option(name: .long, help: ArgumentHelp("Only this project (id or name).", valueName: "p"))
        var project: String?

        @Option(name: .long, help: ArgumentHelp("Only this key (id).", valueName: "k"))
        var key: String?

        @Flag(name: .long, help: "Print CSV instead of a table.")
        var csv = false

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            for (name, value) in [("--from", from), ("--to", to)] {
                if let value, !isDate(value) { throw Failure.invalid("\(name) '\(value)' is not a date as YYYY-MM-DD") }
            }
            let keyID = try key.map { try parseID($0, what: "K") }
            try await global.withSession { s in
                let org = try await s.orgPath()
                var query: [String] = []
                if let from { query.append("from=\(from)") }
                if let to { query.append("to=\(to)") }
                if let groupBy { query.append("group_by=\(groupBy.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? groupBy)") }
                if let project { query.append("project_id=\(try await s.projectID(project, orgPath: org))") }
                if let keyID { query.append("key_id=\(keyID)") }
                if csv {
                    query.append("format=csv")
                    let bytes = try await s.send(.GET, "\(org)/usage/history?" + query.joined(separator: "&"))
                    print(String(buffer: bytes), terminator: "")
                    return
                }
                let path = "\(org)/usage/history" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
                try await s.show(.GET, path, as: HistoryResponse.self) { r in
                    printBlock([("from", r.from), ("to", r.to), ("grouped by", r.groupBy.joined(separator: ", "))])
                    print("")
                    var columns: [String] = []
                    for d in r.groupBy {
                        switch d {
                        case "day": columns.append("DAY")
                        case "project": columns.append("PROJECT")
                        case "key": columns.append("KEY")
                        case "model": columns.append("MODEL")
                        default: continue
                        }
                    }
                    var table = Table(columns: columns + ["ADMITTED", "DENIED", "OPEN", "TOKENS", "SPEND"])
                    func add(_ row: HistoryRowBody, _ labels: [String]) {
                        table.add(row: labels + [
                            count(row.requestsAdmitted), count(row.requestsDenied), count(row.requestsOpen), count(row.tokens), dollars(row.spendNusd),
                        ])
                    }
                    for row in r.rows {
                        var labels: [String] = []
                        for d in r.groupBy {
                            switch d {
                            case "day": labels.append(row.day ?? "")
                            case "project": labels.append(row.projectId.map { id in row.projectName.map { "\(id) (\($0))" } ?? "\(id)" } ?? "")
                            case "key": labels.append(row.keyId.map { id in row.keyName.map { "\(id) (\($0))" } ?? "\(id)" } ?? "")
                            case "model": labels.append(row.model.map { $0.isEmpty ? "(not allowed)" : $0 } ?? "")
                            default: continue
                            }
                        }
                        add(row, labels)
                    }
                    if !r.rows.isEmpty { add(r.totals, ["total"] + Array(repeating: "", count: max(0, columns.count - 1))) }
                    table.print(empty: "Nothing was used in this range.")
                }
            }
        }

        private func isDate(_ s: String) -> Bool {
            let u = Array(s.utf8)
            return u.count == 10 && u[4] == UInt8(ascii: "-") && u[7] == UInt8(ascii: "-")
                && u.enumerated().allSatisfy { i, c in i == 4 || i == 7 || (c >= 48 && c <= 57) }
        }
    }
}

// MARK: Rendering

private func count(_ n: Int64) -> String { groupThousands(String(n)) }

private func rateTable() -> Table { Table("PER MINUTE", "LIMIT", "USED", "REMAINING", "EMPTY IN") }

private func addRate(_ table: inout Table, _ label: String, _ r: RateUsageBody) {
    table.add(label, limit(r.limit), count(r.used), r.remaining.map(count) ?? "-", r.resetMs == 0 ? "-" : "\(count(r.resetMs)) ms")
}

private func printSpend(_ s: SpendUsageBody, _ reserved: ReservedUsageBody) {
    let window = s.windowStartMs.map { "\(isoTime($0)) … \(isoTime(s.resetsAtMs))" } ?? "lifetime"
    printBlock([
        ("spend", dollars(s.spendNusd)), ("window", "\(s.period), \(window)"), ("budget", dollars(s.budgetNusd)),
        ("remaining", s.budgetNusd == nil ? nil : dollars(s.remainingNusd)),
        ("reserved", "\(count(reserved.count)) open, \(dollars(reserved.costNusd)), \(count(reserved.tokens)) tokens"),
    ])
}
