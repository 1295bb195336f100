import ArgumentParser
import BursarAPI

/// `bursarctl byok …`: external provider keys (Owners only).
struct ByokCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "byok",
        abstract: "External provider keys (bring your own key): add, list, remove (Owners only).",
        subcommands: [Add.self, List.self, Remove.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Store a provider key. The secret is write-only: only its last four characters are shown back.",
            discussion: """
                Give the secret with --secret-file PATH, or --secret - to read it from standard input, \
                so it stays out of your shell history. Surrounding whitespace and a trailing newline are removed.
                """)

        @Option(name: .long, help: ArgumentHelp("The provider, e.g. openai or anthropic.", valueName: "provider"))
        var provider: String

        @Option(name: .long, help: ArgumentHelp("A name for this key.", valueName: "name"))
        var name: String

        @Option(name: .long, help: ArgumentHelp("The provider's secret, or - for standard input.", valueName: "secret"))
        var secret: String?

        @Option(name: .long, help: ArgumentHelp("Read the secret from this file.", valueName: "path"))
        var secretFile: String?

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let text: String
            switch (secret, secretFile) {
            case (nil, nil): throw Failure.invalid("give the secret with --secret, --secret - (standard input) or --secret-file")
            case (.some, .some): throw Failure.invalid("--secret and --secret-file cannot be used together")
            case ("-"?, nil): text = try readText(path: "-", flag: "--secret")
            case (let value?, nil): text = value
            case (nil, let path?): text = try readText(path: path, flag: "--secret-file")
            }
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !trimmed.isEmpty else { throw Failure.invalid("the secret is empty") }
            let request = CreateByokRequest(provider: provider, name: name, secret: trimmed)
            try await global.withSession { s in
                try await s.show(.POST, "\(try await s.orgPath())/byok", body: request, as: ByokBody.self) { b in
                    printBlock([
                        ("id", "\(b.id)"), ("provider", b.provider), ("name", b.name), ("secret", b.display),
                        ("created", isoTime(b.createdAtMs)),
                    ])
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List provider keys.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                try await s.show(.GET, "\(try await s.orgPath())/byok", as: ByokListResponse.self) { r in
                    var table = Table("ID", "PROVIDER", "NAME", "SECRET", "CREATED")
                    for b in r.keys { table.add("\(b.id)", b.provider, b.name, b.display, isoTime(b.createdAtMs)) }
                    table.print(empty: "No provider keys.")
                }
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a provider key.")

        @Argument(help: ArgumentHelp("Its id (see byok list).", valueName: "id"))
        var id: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let id = try parseID(id, what: "ID")
            try await global.withSession { s in
                try await s.perform(.DELETE, "\(try await s.orgPath())/byok/\(id)", done: "Removed provider key \(id).")
            }
        }
    }
}
