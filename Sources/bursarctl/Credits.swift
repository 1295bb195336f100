import ArgumentParser
import BursarAPI

/// `bursarctl credits …`: the organization's balance and spend (Owners only).
struct CreditsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "credits",
        abstract: "Billing: the credit balance, metering, and this period's spend (Owners only).",
        subcommands: [Show.self, Add.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the balance, whether metering is on, and spend by project (this month) and key (its window).")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                try await s.show(.GET, "\(try await s.orgPath())/billing", as: BillingResponse.self) { r in
                    printBlock([
                        ("credits", dollars(r.creditsNusd)), ("metered", r.metered ? "yes" : "no"),
                        ("month from", isoTime(r.monthStartMs)),
                    ])
                    print("")
                    var projects = Table("PROJECT", "NAME", "SPEND", "BUDGET/MO")
                    for p in r.projects {
                        projects.add("\(p.projectId)", p.name, dollars(p.spendNusd), dollars(p.monthlyBudgetNusd))
                    }
                    projects.print(empty: "No project spend.")
                    print("")
                    var keys = Table("KEY", "NAME", "PROJECT", "PERIOD", "SPEND", "MAX SPEND")
                    for k in r.keys {
                        keys.add("\(k.keyId)", k.name, "\(k.projectId)", k.period, dollars(k.spendNusd), dollars(k.maxSpendNusd))
                    }
                    keys.print(empty: "No key spend.")
                }
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add credits (a negative amount corrects the balance down); optionally switch metering.",
            discussion: "A negative amount must follow `--`: bursarctl credits add -- -50")

        @Argument(help: ArgumentHelp("Dollars, e.g. 500 or $12.50.", valueName: "money"))
        var amount: String

        @Option(name: .long, help: ArgumentHelp("Whether checks draw on the balance: true or false.", valueName: "bool"))
        var metered: Bool?

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let request = AddCreditsRequest(
                amountNusd: try parseMoney(amount, flag: "amount", allowNegative: true), metered: metered)
            try await global.withSession { s in
                try await s.show(.POST, "\(try await s.orgPath())/credits", body: request, as: CreditsResponse.self) { r in
                    printBlock([("credits", dollars(r.creditsNusd)), ("metered", r.metered ? "yes" : "no")])
                }
            }
        }
    }
}
