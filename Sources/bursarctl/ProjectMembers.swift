import ArgumentParser
import BursarAPI

/// `bursarctl project member …`: who has a role in a project, and their grant.
struct ProjectMemberCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "member",
        abstract: "Project members: add, list, change role or grant, remove (Owners and Project Admins).",
        discussion: """
            A grant narrows what a member's keys may have: models, the largest spend cap of one key, \
            TPM and RPM. A grant flag left out does not narrow. Organization Owners are Project Admins \
            of every project and are listed with ORG OWNER = yes.
            """,
        subcommands: [Add.self, List.self, Role.self, Remove.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add an organization member to a project.")

        @Argument(help: ArgumentHelp("Project id or name.", valueName: "p"))
        var project: String

        @Argument(help: ArgumentHelp("The member's user id or e-mail.", valueName: "user"))
        var user: String

        @Option(name: .long, help: ArgumentHelp("Project role (default: member).", valueName: "role"))
        var role: ProjectRole?

        @OptionGroup(title: "Grant") var grant: GrantOptions

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let grantBody = try grant.body()
            var request = AddProjectMemberRequest(role: role?.rawValue, grant: grantBody)
            if let id = UInt64(user) {
                request.userId = id
            } else if user.contains("@") {
                request.email = user
            } else {
                throw Failure.invalid("USER '\(user)' is neither a user id nor an e-mail")
            }
            try await global.withSession { s in
                let org = try await s.orgPath()
                let id = try await s.projectID(project, orgPath: org)
                try await s.show(
                    .POST, "\(org)/projects/\(id)/members", body: request, as: ProjectMemberBody.self
                ) { printProjectMember($0) }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a project's members and their grants.")

        @Argument(help: ArgumentHelp("Project id or name.", valueName: "p"))
        var project: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                let org = try await s.orgPath()
                let id = try await s.projectID(project, orgPath: org)
                try await s.show(.GET, "\(org)/projects/\(id)/members", as: ProjectMemberListResponse.self) { r in
                    var table = Table("USER", "EMAIL", "NAME", "ROLE", "ORG OWNER", "MODELS", "MAX KEY SPEND", "TPM", "RPM")
                    for m in r.members {
                        table.add(
                            "\(m.userId)", m.email, m.name, m.role, m.orgOwner ? "yes" : "no",
                            models(m.grant.models, empty: "project's"), dollars(m.grant.maxKeySpendNusd, none: "-"),
                            limit(m.grant.tpm, none: "-"), limit(m.grant.rpm, none: "-"))
                    }
                    table.print(empty: "No members.")
                }
            }
        }
    }

    struct Role: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a project member's role and/or replace their grant.",
            discussion: """
                Any grant flag replaces the whole grant (flags left out then do not narrow); \
                --clear-grant removes every narrowing. Without grant flags the grant stays.
                """,
            aliases: ["update"])

        @Argument(help: ArgumentHelp("Project id or name.", valueName: "p"))
        var project: String

        @Argument(help: ArgumentHelp("User id or e-mail.", valueName: "user"))
        var user: String

        @Argument(help: ArgumentHelp("The new project role (optional when changing only the grant).", valueName: "role"))
        var role: ProjectRole?

        @OptionGroup(title: "Grant") var grant: GrantOptions

        @Flag(name: .long, help: "Replace the grant with an empty one (no narrowing).")
        var clearGrant = false

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            var grantBody = try grant.body()
            if clearGrant {
                guard grantBody == nil else { throw Failure.invalid("--clear-grant cannot be combined with grant flags") }
                grantBody = GrantBody()
            }
            guard role != nil || grantBody != nil else {
                throw Failure.invalid("nothing to change: give a ROLE, grant flags or --clear-grant")
            }
            let request = UpdateProjectMemberRequest(role: role?.rawValue, grant: grantBody)
            try await global.withSession { s in
                let org = try await s.orgPath()
                let projectPath = "\(org)/projects/\(try await s.projectID(project, orgPath: org))"
                let id = try await s.projectMemberID(user, projectPath: projectPath)
                try await s.show(
                    .PATCH, "\(projectPath)/members/\(id)", body: request, as: ProjectMemberBody.self
                ) { printProjectMember($0) }
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a member from a project.")

        @Argument(help: ArgumentHelp("Project id or name.", valueName: "p"))
        var project: String

        @Argument(help: ArgumentHelp("User id or e-mail.", valueName: "user"))
        var user: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                let org = try await s.orgPath()
                let projectID = try await s.projectID(project, orgPath: org)
                let projectPath = "\(org)/projects/\(projectID)"
                let id = try await s.projectMemberID(user, projectPath: projectPath)
                try await s.perform(.DELETE, "\(projectPath)/members/\(id)", done: "Removed user \(id) from project \(projectID).")
            }
        }
    }
}

/// The flags of a grant.
struct GrantOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Models their keys may use (default or `all`: the project's).", valueName: "a,b,c"))
    var models: String?

    @Option(name: .long, help: ArgumentHelp("Largest spend cap of one of their keys, in dollars.", valueName: "money"))
    var maxKeySpend: String?

    @Option(name: .long, help: ArgumentHelp("Largest TPM of one of their keys.", valueName: "n"))
    var tpm: String?

    @Option(name: .long, help: ArgumentHelp("Largest RPM of one of their keys.", valueName: "n"))
    var rpm: String?

    /// The grant, or nil when no grant flag was given.
    func body() throws -> GrantBody? {
        guard models != nil || maxKeySpend != nil || tpm != nil || rpm != nil else { return nil }
        // An empty grant list would read as "no models"; `all` here means "do not narrow".
        let list = parseModels(models)
        return GrantBody(
            models: list?.isEmpty == true ? nil : list,
            maxKeySpendNusd: try maxKeySpend.map { try parseMoney($0, flag: "--max-key-spend") },
            rpm: try rpm.map { try parseLimit($0, flag: "--rpm") },
            tpm: try tpm.map { try parseLimit($0, flag: "--tpm") })
    }
}

func printProjectMember(_ m: ProjectMemberBody) {
    printBlock([
        ("user", "\(m.userId)"), ("email", m.email), ("name", m.name), ("role", m.role),
        ("org owner", m.orgOwner ? "yes" : "no"),
        ("grant models", models(m.grant.models, empty: "the project's")),
        ("grant max key spend", dollars(m.grant.maxKeySpendNusd)),
        ("grant tpm", limit(m.grant.tpm)), ("grant rpm", limit(m.grant.rpm)),
    ])
}
