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
            abstract: "Invite someone by e-mail; they join when they accept.",
            discussion: """
                Prints the invitation and its one-time acceptance token (shown once; valid 7 days): hand the \
                token to them. They accept with 'bursarctl invitation accept TOKEN' — signed in with their \
                own token if they already use bursar, with no token if they are new (bursar then prints \
                their personal access token). The answer is the same whether or not the address is known.
                """)

        @Argument(help: ArgumentHelp("Their e-mail.", valueName: "email"))
        var email: String

        @Option(name: .long, help: ArgumentHelp("What this organization calls them (default: their own name).", valueName: "name"))
        var name: String?

        @Option(name: .long, help: ArgumentHelp("Organization role (default: member).", valueName: "role"))
        var role: OrgRole?

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                let org = try await s.orgPath()
                let request = InviteRequest(email: email, name: name, role: role?.rawValue)
                try await s.show(.POST, "\(org)/members", body: request, as: InviteResponse.self) { r in
                    printInvitation(r.invitation)
                    printBlock([("accept token", r.acceptToken)])
                    printError("bursarctl: the acceptance token is shown only this once; hand it to \(r.invitation.email).")
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

/// `bursarctl invitation …`: pending invitations (Owners) and accepting one (the invited person).
struct InvitationCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invitation",
        abstract: "Invitations: list and revoke pending ones (Owners), accept one (the invited person).",
        subcommands: [List.self, Revoke.self, Accept.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the organization's pending invitations.")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                let org = try await s.orgPath()
                try await s.show(.GET, "\(org)/invitations", as: InvitationListResponse.self) { r in
                    var table = Table("ID", "EMAIL", "ROLE", "EXPIRES")
                    for i in r.invitations { table.add("\(i.id)", i.email, i.role, isoTime(i.expiresAtMs)) }
                    table.print(empty: "No pending invitations.")
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Withdraw a pending invitation: its token stops working.")

        @Argument(help: ArgumentHelp("Its id (see invitation list).", valueName: "id"))
        var id: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let id = try parseID(id, what: "ID")
            try await global.withSession { s in
                try await s.perform(.DELETE, "\(try await s.orgPath())/invitations/\(id)", done: "Invitation \(id) revoked.")
            }
        }
    }

    struct Accept: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Accept an invitation with its token.",
            discussion: """
                With your token (--token or BURSAR_TOKEN) if you already use bursar: you join with it. \
                With none if you are new: bursar makes your account and prints your personal access token once.
                """)

        @Argument(help: ArgumentHelp("The acceptance token (inv-br-…), '-' to read it from stdin.", valueName: "token"))
        var acceptToken: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let text = acceptToken == "-" ? (readLine(strippingNewline: true) ?? "") : acceptToken
            guard !text.isEmpty else { throw Failure.invalid("the acceptance token is empty") }
            try await global.withSession { s in
                try await s.show(
                    .POST, "/v1/invitations/accept", body: AcceptInvitationRequest(token: text), as: AcceptInvitationResponse.self,
                    authenticated: s.token != nil
                ) { r in
                    printBlock([("organization", "\(r.organization.id) \(r.organization.name)"), ("role", r.member.role), ("user", "\(r.member.userId)")])
                    if let token = r.token {
                        print(token)
                        printError("bursarctl: this is your personal access token, shown once: store it now (BURSAR_TOKEN).")
                    }
                }
            }
        }
    }
}

func printInvitation(_ i: InvitationBody) {
    printBlock([
        ("invitation", "\(i.id)"), ("email", i.email), ("name", i.name), ("role", i.role), ("expires", isoTime(i.expiresAtMs)),
    ])
}
