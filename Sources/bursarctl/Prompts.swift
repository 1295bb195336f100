import ArgumentParser
import BursarAPI

/// `bursarctl prompt …`: named, versioned prompts (Owners only).
struct PromptCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prompt",
        abstract: "Prompts: named texts with versions (Owners only).",
        subcommands: [Create.self, Version.self, List.self, Show.self, Remove.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a prompt (its version 1).")

        @Argument(help: ArgumentHelp("The prompt's name.", valueName: "name"))
        var name: String

        @OptionGroup var text: PromptTextOptions

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let request = PromptRequest(name: name, text: try text.read())
            try await global.withSession { s in
                try await s.show(.POST, "\(try await s.orgPath())/prompts", body: request, as: PromptBody.self) {
                    try printPrompt($0, version: nil)
                }
            }
        }
    }

    struct Version: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a new version of a prompt.")

        @Argument(help: ArgumentHelp("The prompt's name.", valueName: "name"))
        var name: String

        @OptionGroup var text: PromptTextOptions

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let request = PromptRequest(text: try text.read())
            try await global.withSession { s in
                let path = "\(try await s.orgPath())/prompts/\(segment(name))/versions"
                try await s.show(.POST, path, body: request, as: PromptBody.self) { try printPrompt($0, version: nil) }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List prompts with their latest version.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                try await s.show(.GET, "\(try await s.orgPath())/prompts", as: PromptListResponse.self) { r in
                    var table = Table("NAME", "LATEST VERSION")
                    for p in r.prompts { table.add(p.name, "\(p.latestVersion)") }
                    table.print(empty: "No prompts.")
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a prompt: its versions, and the text of the latest (or --version N).")

        @Argument(help: ArgumentHelp("The prompt's name.", valueName: "name"))
        var name: String

        @Option(name: .long, help: ArgumentHelp("Print this version's text instead of the latest.", valueName: "n"))
        var version: Int64?

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                let path = "\(try await s.orgPath())/prompts/\(segment(name))"
                try await s.show(.GET, path, as: PromptBody.self) { try printPrompt($0, version: version) }
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a prompt and all its versions.")

        @Argument(help: ArgumentHelp("The prompt's name.", valueName: "name"))
        var name: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                let path = "\(try await s.orgPath())/prompts/\(segment(name))"
                try await s.perform(.DELETE, path, done: "Removed prompt \(name).")
            }
        }
    }
}

/// `--text` or `--file` (exactly one).
struct PromptTextOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The prompt's text.", valueName: "text"))
    var text: String?

    @Option(name: .long, help: ArgumentHelp("Read the text from this file (- for standard input), as-is.", valueName: "path"))
    var file: String?

    func read() throws -> String {
        switch (text, file) {
        case (let text?, nil): return text
        case (nil, let path?): return try readText(path: path, flag: "--file")
        case (nil, nil): throw Failure.invalid("give the text with --text or --file")
        case (.some, .some): throw Failure.invalid("--text and --file cannot be used together")
        }
    }
}

/// The versions table, then one version's text (the latest when `version` is nil).
func printPrompt(_ p: PromptBody, version: Int64?) throws {
    let chosen: PromptVersionBody?
    if let version {
        guard let match = p.versions.first(where: { $0.version == version }) else {
            throw Failure.notFound("prompt '\(p.name)' has no version \(version)")
        }
        chosen = match
    } else {
        chosen = p.versions.last
    }
    print("prompt: \(p.name)\n")
    var table = Table("VERSION", "CREATED", "BY", "CHARACTERS")
    for v in p.versions { table.add("\(v.version)", isoTime(v.createdAtMs), "\(v.createdBy)", "\(v.text.count)") }
    table.print(empty: "No versions.")
    guard let chosen else { return }
    print("\n--- version \(chosen.version) ---")
    print(chosen.text, terminator: chosen.text.hasSuffix("\n") ? "" : "\n")
}
