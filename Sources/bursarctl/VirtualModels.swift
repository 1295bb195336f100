import ArgumentParser
import BursarAPI

/// `bursarctl virtual-model …`: aliases for real models (Owners only).
struct VirtualModelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "virtual-model",
        abstract: "Virtual models: names that map to real models, usable in model lists (Owners only).",
        subcommands: [Set.self, List.self, Show.self, Remove.self])

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a virtual model or replace its targets.")

        @Argument(help: ArgumentHelp("The virtual model's name.", valueName: "name"))
        var name: String

        @Option(name: .long, help: ArgumentHelp("The real models it maps to.", valueName: "a,b"))
        var targets: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let list = parseModels(targets) ?? []
            guard !list.isEmpty, targets.lowercased() != "all" else {
                throw Failure.invalid("--targets: name at least one model")
            }
            try await global.withSession { s in
                let path = "\(try await s.orgPath())/virtual-models/\(segment(name))"
                try await s.show(.PUT, path, body: PutVirtualModelRequest(targets: list), as: VirtualModelBody.self) {
                    printBlock([("name", $0.name), ("targets", $0.targets.joined(separator: ","))])
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List virtual models.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                try await s.show(.GET, "\(try await s.orgPath())/virtual-models", as: VirtualModelListResponse.self) { r in
                    var table = Table("NAME", "TARGETS")
                    for m in r.models { table.add(m.name, m.targets.joined(separator: ",")) }
                    table.print(empty: "No virtual models.")
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a virtual model.")

        @Argument(help: ArgumentHelp("The virtual model's name.", valueName: "name"))
        var name: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                let path = "\(try await s.orgPath())/virtual-models/\(segment(name))"
                try await s.show(.GET, path, as: VirtualModelBody.self) {
                    printBlock([("name", $0.name), ("targets", $0.targets.joined(separator: ","))])
                }
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a virtual model.")

        @Argument(help: ArgumentHelp("The virtual model's name.", valueName: "name"))
        var name: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                let path = "\(try await s.orgPath())/virtual-models/\(segment(name))"
                try await s.perform(.DELETE, path, done: "Removed virtual model \(name).")
            }
        }
    }
}
