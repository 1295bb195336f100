import ArgumentParser
import BursarAPI
import Foundation

/// `bursarctl audit`: the organization's audit log, newest first (Owners only).
struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the audit log, newest first (Owners only).",
        discussion: """
            Every admin action of the organization's members and the operator is recorded with who \
            tried it, on what, and how it ended (ok or the error code). Pages with --before (the \
            'next page' cursor printed under the table); --all reads every page, and with --csv or \
            --json exports the whole log. Control and bidi characters in entries are shown escaped \
            (\\n, \\u{202E}).
            """)

    @Option(name: .long, help: ArgumentHelp("Entries per page, 1…1000 (default: 100).", valueName: "n"))
    var limit: Int?

    @Option(name: .long, help: ArgumentHelp("Only entries older than this entry id (a previous page's cursor).", valueName: "id"))
    var before: String?

    @Option(name: .long, help: ArgumentHelp("Only this actor (user:12, operator).", valueName: "actor"))
    var actor: String?

    @Option(name: .long, help: ArgumentHelp("Only this action (key.revoke, …).", valueName: "action"))
    var action: String?

    @Option(name: .long, help: ArgumentHelp("Only entries at or after this time (Unix ms).", valueName: "ms"))
    var fromMs: Int64?

    @Option(name: .long, help: ArgumentHelp("Only entries at or before this time (Unix ms).", valueName: "ms"))
    var toMs: Int64?

    @Flag(name: .long, help: "Read every page (from --before, if given, to the oldest entry).")
    var all = false

    @Flag(name: .long, help: "Print CSV (id,time_ms,actor,action,target,outcome) instead of a table.")
    var csv = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        if let limit, !(1...1000).contains(limit) { throw Failure.invalid("--limit \(limit) is outside 1…1000") }
        if csv && global.json { throw Failure.invalid("--csv and --json are two formats: give one") }
        try await global.withSession { s in
            let base = "\(try await s.orgPath())/audit"
            var entries: [AuditEntryBody] = []
            var cursor = before
            var next: String?
            repeat {
                var items: [URLQueryItem] = []
                if let limit { items.append(URLQueryItem(name: "limit", value: String(limit))) }
                if let cursor { items.append(URLQueryItem(name: "before", value: cursor)) }
                if let actor { items.append(URLQueryItem(name: "actor", value: actor)) }
                if let action { items.append(URLQueryItem(name: "action", value: action)) }
                if let fromMs { items.append(URLQueryItem(name: "from_ms", value: String(fromMs))) }
                if let toMs { items.append(URLQueryItem(name: "to_ms", value: String(toMs))) }
                var components = URLComponents()
                components.queryItems = items.isEmpty ? nil : items
                // '+' in a value would read as a space: encode it too.
                let query = (components.percentEncodedQuery ?? "").replacingOccurrences(of: "+", with: "%2B")
                let page = try await s.call(.GET, base + (query.isEmpty ? "" : "?" + query), as: AuditResponse.self)
                entries += page.entries
                next = page.nextBefore
                cursor = next
            } while all && next != nil
            if global.json {
                let data = try APIJSON.encoder().encode(AuditResponse(entries: entries, nextBefore: next))
                print(String(decoding: data, as: UTF8.self))
            } else if csv {
                print("id,time_ms,actor,action,target,outcome")
                for e in entries { print([e.id, String(e.timeMs), e.actor, e.action, e.target, e.outcome].map(Self.csvField).joined(separator: ",")) }
            } else {
                var table = Table("TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME")
                for e in entries { table.add(isoTime(e.timeMs), e.actor, e.action, e.target, e.outcome) }
                table.print(empty: "No audit entries.")
                if let next { print("\nOlder entries: --before \(next)") }
            }
        }
    }

    /// A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break. The API
    /// already shows control characters escaped, so no field breaks a line.
    static func csvField(_ s: String) -> String {
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0.isNewline }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
