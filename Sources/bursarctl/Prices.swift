import ArgumentParser
import BursarAPI
import Foundation

/// `bursarctl price …`: the organization's price table, which prices requests that come without
/// a cost (Envoy's, and CHECKs that ask bursar to price them). Owners edit it; Members see the
/// prices of their projects' models.
struct PriceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "price",
        abstract: "The price table: USD per million input, output and cached input tokens, per model.",
        subcommands: [Set.self, List.self, Remove.self, Import.self])

    static func render(_ prices: [PriceBody]) {
        var table = Table("MODEL", "INPUT/1M", "OUTPUT/1M", "CACHED INPUT/1M")
        for p in prices {
            table.add(p.model, dollars(p.inputPerMillionNusd), dollars(p.outputPerMillionNusd), dollars(p.cachedInputPerMillionNusd))
        }
        table.print(empty: "No prices.")
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set a model's price (Owners only); the next request priced from the table uses it.")

        @Argument(help: ArgumentHelp("The model, as requests name it.", valueName: "model"))
        var model: String

        @Option(name: .long, help: ArgumentHelp("USD per million input tokens, e.g. 2.50.", valueName: "usd"))
        var input: String

        @Option(name: .long, help: ArgumentHelp("USD per million output tokens, e.g. 10.", valueName: "usd"))
        var output: String

        @Option(name: .long, help: ArgumentHelp("USD per million cached input tokens (default: the input price).", valueName: "usd"))
        var cachedInput: String?

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let body = PutPriceRequest(
                inputPerMillionNusd: try parseMoney(input, flag: "--input"),
                outputPerMillionNusd: try parseMoney(output, flag: "--output"),
                cachedInputPerMillionNusd: try cachedInput.map { try parseMoney($0, flag: "--cached-input") })
            try await global.withSession { s in
                let path = "\(try await s.orgPath())/prices/\(segment(model))"
                try await s.show(.PUT, path, body: body, as: PriceBody.self) { PriceCommand.render([$0]) }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the prices you can see.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                try await s.show(.GET, "\(try await s.orgPath())/prices", as: PriceListResponse.self) { PriceCommand.render($0.prices) }
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a model's price (Owners only); under a budget, requests for it priced from the table are then refused.")

        @Argument(help: ArgumentHelp("The model.", valueName: "model"))
        var model: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                try await s.perform(.DELETE, "\(try await s.orgPath())/prices/\(segment(model))", done: "Removed the price of \(model).")
            }
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import prices from LiteLLM's model price file (model_prices_and_context_window.json; Owners only).")

        @Argument(help: ArgumentHelp("The file, or - for standard input.", valueName: "file"))
        var file: String

        @Option(name: .long, help: ArgumentHelp("Import only these models.", valueName: "a,b"))
        var models: String?

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let text = try readText(path: file, flag: "file")
            let only = parseModels(models)
            if models != nil, only?.isEmpty != false { throw Failure.invalid("--models: name at least one model") }
            try await global.withSession { s in
                var path = "\(try await s.orgPath())/prices/import"
                if let only { path += "?models=" + only.map(segment).joined(separator: ",") }
                try await s.show(.POST, path, raw: Data(text.utf8), as: PriceImportResponse.self) { r in
                    print("Imported \(r.imported) price\(r.imported == 1 ? "" : "s"); skipped \(r.skipped.count).")
                    for skipped in r.skipped.prefix(20) { print("  skipped \(skipped.model): \(skipped.reason)") }
                    if r.skipped.count > 20 { print("  … and \(r.skipped.count - 20) more (--json lists them all)") }
                }
            }
        }
    }
}
