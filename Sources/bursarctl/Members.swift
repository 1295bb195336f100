import ArgumentParser
import BursarAPI

/// `bursarctl member …`: the organization's members (Owners only).
struct MemberCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "member",
        abstract: "Organization members: invite, list, change role, remove (Owners only).",
        discussion: "USER is a user id or a member's e-mail.",
        subcommands: [Invite.self, List.self, Role.self, Remove.self])

    struct Invite: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Invite someone by e-mail.",
            discussion: "When this creates the user, their personal access token is printed once: hand it to them.")

        @Argument(help: ArgumentHelp("Their e-mail.", valueName: "email"))
        var email: String

        @Option(name: .long, help: ArgumentHelp("Display name of a new user (default: the e-mail).", valueName: "name"))
        var name: String?

        @Option(name: .long, help: ArgumentHelp("Organization role (default: member).", valueName: "role"))
        var role: OrgRole?

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                let org = try await s.orgPath()
                let request = InviteRequest(email: email, name: name, role: role?.rawValue)
                try await s.show(.POST, "\(org)/members", body: request, as: InviteResponse.self) { r in
                    printBlock(memberFields(r.member) + [("token", r.token)])
                    if r.token != nil {
                        printError("bursarctl: warning: the new user's token is shown only this once; hand it over now.")
                    }
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the organization's members.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                let org = try await s.orgPath()
                try await s.show(.GET, "\(org)/members", as: MemberListResponse.self) { r in
                    var table = Table("USER", "EMAIL", "NAME", "ROLE")
                    for m in r.members { table.add("\(m.userId)", m.email, m.name, m.role) }
                    table.print(empty: "No members.")
                }
            }
        }
    }

    struct Role: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a member's organization role.",
            discussion: "Demoting or removing the last Owner is refused (last_owner, exit 5).")

        @Argument(help: ArgumentHelp("User id or e-mail.", valueName: "user"))
        var user: String

        @Argument(help: ArgumentHelp("The new role.", valueName: "role"))
        var role: OrgRole

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                let org = try await s.orgPath()
                let id = try await s.memberID(user, orgPath: org)
                try await s.show(
                    .PATCH, "\(org)/members/\(id)", body: MemberRoleRequest(role: role.rawValue), as: MemberBody.self
                ) { printMember($0) }
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a member from the organization.",
            discussion: "Removing the last Owner is refused (last_owner, exit 5).")

        @Argument(help: ArgumentHelp("User id or e-mail.", valueName: "user"))
        var user: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                let org = try await s.orgPath()
                let id = try await s.memberID(user, orgPath: org)
                try await s.perform(.DELETE, "\(org)/members/\(id)", done: "Removed user \(id) from the organization.")
            }
        }
    }
}

func printMember(_ m: MemberBody) { printBlock(memberFields(m)) }

private func memberFields(_ m: MemberBody) -> [(String, String?)] {
    [("user", "\(m.userId)"), ("email", m.email), ("name", m.name), ("role", m.role)]
}
