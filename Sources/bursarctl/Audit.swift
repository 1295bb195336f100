import ArgumentParser
import BursarAPI

/// `bursarctl audit`: the organization's audit log, newest first (Owners only).
struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the audit log, newest first (Owners only).",
        discussion: "Every admin action is recorded with who tried it, on what, and how it ended (ok or the error code).")

    @Option(name: .long, help: ArgumentHelp("How many entries, 1…1000 (default: 100).", valueName: "n"))
    var limit: Int?

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        if let limit, !(1...1000).contains(limit) { throw Failure.invalid("--limit \(limit) is outside 1…1000") }
        try await global.withSession { s in
            var path = "\(try await s.orgPath())/audit"
            if let limit { path += "?limit=\(limit)" }
            try await s.show(.GET, path, as: AuditResponse.self) { r in
                var table = Table("TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME")
                for e in r.entries { table.add(isoTime(e.timeMs), e.actor, e.action, e.target, e.outcome) }
                table.print(empty: "No audit entries.")
            }
        }
    }
}
