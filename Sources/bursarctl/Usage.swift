import ArgumentParser
import BursarAPI

/// `bursarctl usage key|project|org`: where a key, a project or the organization stands now.
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
        subcommands: [Key.self, Project.self, Org.self])

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
