import ArgumentParser
import BursarAPI

/// `bursarctl mcp …`: registered MCP servers (Owners only).
struct McpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp",
        abstract: "MCP servers: add, list, show, update, remove (Owners only).",
        subcommands: [Add.self, List.self, Show.self, Update.self, Remove.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register an MCP server.")

        @Option(name: .long, help: ArgumentHelp("Its name.", valueName: "name"))
        var name: String

        @Option(name: .long, help: ArgumentHelp("Its URL.", valueName: "url"))
        var url: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                let request = McpServerRequest(name: name, url: url)
                try await s.show(.POST, "\(try await s.orgPath())/mcp-servers", body: request, as: McpServerBody.self) {
                    printMcp($0)
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List MCP servers.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                try await s.show(.GET, "\(try await s.orgPath())/mcp-servers", as: McpServerListResponse.self) { r in
                    var table = Table("ID", "NAME", "URL")
                    for m in r.servers { table.add("\(m.id)", m.name, m.url) }
                    table.print(empty: "No MCP servers.")
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an MCP server.")

        @Argument(help: ArgumentHelp("Its id (see mcp list).", valueName: "id"))
        var id: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let id = try parseID(id, what: "ID")
            try await global.withSession { s in
                try await s.show(.GET, "\(try await s.orgPath())/mcp-servers/\(id)", as: McpServerBody.self) { printMcp($0) }
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rename an MCP server or change its URL.")

        @Argument(help: ArgumentHelp("Its id (see mcp list).", valueName: "id"))
        var id: String

        @Option(name: .long, help: ArgumentHelp("A new name.", valueName: "name"))
        var name: String?

        @Option(name: .long, help: ArgumentHelp("A new URL.", valueName: "url"))
        var url: String?

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let id = try parseID(id, what: "ID")
            guard name != nil || url != nil else { throw Failure.invalid("nothing to change: give --name and/or --url") }
            try await global.withSession { s in
                let request = McpServerRequest(name: name, url: url)
                try await s.show(
                    .PATCH, "\(try await s.orgPath())/mcp-servers/\(id)", body: request, as: McpServerBody.self
                ) { printMcp($0) }
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an MCP server.")

        @Argument(help: ArgumentHelp("Its id (see mcp list).", valueName: "id"))
        var id: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let id = try parseID(id, what: "ID")
            try await global.withSession { s in
                try await s.perform(.DELETE, "\(try await s.orgPath())/mcp-servers/\(id)", done: "Removed MCP server \(id).")
            }
        }
    }
}

func printMcp(_ m: McpServerBody) {
    printBlock([("id", "\(m.id)"), ("name", m.name), ("url", m.url)])
}
