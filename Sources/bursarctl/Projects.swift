import ArgumentParser
import BursarAPI

/// `bursarctl project …`: projects and their guardrails.
struct ProjectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "project",
        abstract: "Projects and their guardrails: models, TPM, RPM, monthly budget.",
        discussion: """
            P is a project id or name. Only Owners create and delete projects; Project Admins edit \
            their settings. Keys' limits must stay within the project's caps.
            """,
        subcommands: [Create.self, List.self, Show.self, Update.self, Delete.self, ProjectMemberCommand.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a project (Owners only).")

        @Argument(help: ArgumentHelp("The project's name.", valueName: "name"))
        var name: String

        @Option(name: .long, help: ArgumentHelp("Accessible models, real or virtual (default: all).", valueName: "a,b,c"))
        var models: String?

        @Option(name: .long, help: ArgumentHelp("Tokens per minute, e.g. 120000 or 120k (default: no cap).", valueName: "n"))
        var tpm: String?

        @Option(name: .long, help: ArgumentHelp("Requests per minute (default: no cap).", valueName: "n"))
        var rpm: String?

        @Option(name: .long, help: ArgumentHelp("Monthly budget in dollars, e.g. 2000 (default: no cap).", valueName: "money"))
        var budget: String?

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let request = CreateProjectRequest(
                name: name, models: parseModels(models),
                rpm: try rpm.map { try parseLimit($0, flag: "--rpm") },
                tpm: try tpm.map { try parseLimit($0, flag: "--tpm") },
                monthlyBudgetNusd: try budget.map { try parseMoney($0, flag: "--budget") })
            try await global.withSession { s in
                let org = try await s.orgPath()
                try await s.show(.POST, "\(org)/projects", body: request, as: ProjectBody.self) { printProject($0) }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the projects you can see.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                let org = try await s.orgPath()
                try await s.show(.GET, "\(org)/projects", as: ProjectListResponse.self) { r in
                    var table = Table("ID", "NAME", "STATUS", "ROLE", "TPM", "RPM", "BUDGET/MO", "MODELS")
                    for p in r.projects {
                        table.add(
                            "\(p.id)", p.name, p.status, p.role ?? "-", limit(p.tpm), limit(p.rpm),
                            dollars(p.monthlyBudgetNusd), models(p.models))
                    }
                    table.print(empty: "No projects.")
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a project.")

        @Argument(help: ArgumentHelp("Project id or name.", valueName: "p"))
        var project: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                let org = try await s.orgPath()
                let id = try await s.projectID(project, orgPath: org)
                try await s.show(.GET, "\(org)/projects/\(id)", as: ProjectBody.self) { printProject($0) }
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a project's name, status or guardrails.",
            discussion: "Flags left out stay as they are; `none` removes a cap; `--models all` allows every model.")

        @Argument(help: ArgumentHelp("Project id or name.", valueName: "p"))
        var project: String

        @Option(name: .long, help: ArgumentHelp("A new name.", valueName: "name"))
        var name: String?

        @Option(name: .long, help: ArgumentHelp("The project's status.", valueName: "status"))
        var status: ProjectStatus?

        @Option(name: .long, help: ArgumentHelp("Accessible models (replaces the list; `all` for every model).", valueName: "a,b,c"))
        var models: String?

        @Option(name: .long, help: ArgumentHelp("Tokens per minute, or none.", valueName: "n|none"))
        var tpm: String?

        @Option(name: .long, help: ArgumentHelp("Requests per minute, or none.", valueName: "n|none"))
        var rpm: String?

        @Option(name: .long, help: ArgumentHelp("Monthly budget in dollars, or none.", valueName: "money|none"))
        var budget: String?

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let request = UpdateProjectRequest(
                name: name, status: status?.rawValue, models: parseModels(models),
                rpm: try parseLimitPatch(rpm, flag: "--rpm"), tpm: try parseLimitPatch(tpm, flag: "--tpm"),
                monthlyBudgetNusd: try parseMoneyPatch(budget, flag: "--budget"))
            guard request != UpdateProjectRequest() else {
                throw Failure.invalid("nothing to change: give at least one of --name, --status, --models, --tpm, --rpm, --budget")
            }
            try await global.withSession { s in
                let org = try await s.orgPath()
                let id = try await s.projectID(project, orgPath: org)
                try await s.show(.PATCH, "\(org)/projects/\(id)", body: request, as: ProjectBody.self) { printProject($0) }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a project (Owners only).")

        @Argument(help: ArgumentHelp("Project id or name.", valueName: "p"))
        var project: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                let org = try await s.orgPath()
                let id = try await s.projectID(project, orgPath: org)
                try await s.perform(.DELETE, "\(org)/projects/\(id)", done: "Deleted project \(id).")
            }
        }
    }
}

func printProject(_ p: ProjectBody) {
    printBlock([
        ("id", "\(p.id)"), ("name", p.name), ("status", p.status), ("your role", p.role),
        ("models", models(p.models)), ("tpm", limit(p.tpm)), ("rpm", limit(p.rpm)),
        ("monthly budget", dollars(p.monthlyBudgetNusd)),
    ])
}
