import ArgumentParser
import BursarAPI

/// `bursarctl org …`: organizations (creating, suspending and activating them is the operator's).
struct OrgCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "org",
        abstract: "Organizations: create, list, show, suspend, activate.",
        discussion: "Creating, suspending and activating organizations needs the operator's token (op-br-…).",
        subcommands: [Create.self, List.self, Show.self, Suspend.self, Activate.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an organization and its first Owner (operator only).",
            discussion: "When this creates the Owner's user, their token is printed once.")

        @Option(name: .long, help: ArgumentHelp("The organization's name.", valueName: "name"))
        var name: String

        @Option(name: .long, help: ArgumentHelp("E-mail of its first Owner (an existing user or a new one).", valueName: "email"))
        var owner: String

        @Option(name: .long, help: ArgumentHelp("Display name of a new Owner (default: the e-mail).", valueName: "name"))
        var ownerName: String?

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                let request = CreateOrgRequest(name: name, ownerEmail: owner, ownerName: ownerName)
                try await s.show(.POST, "/v1/orgs", body: request, as: CreateOrgResponse.self) { r in
                    printBlock(
                        orgFields(r.organization) + [
                            ("owner", "\(r.owner.name) <\(r.owner.email)> (user \(r.owner.userId))"),
                            ("owner token", r.ownerToken),
                        ])
                    if r.ownerToken != nil {
                        printError("bursarctl: warning: the owner token is shown only this once; store it now.")
                    }
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List organizations (the operator sees all; a user sees theirs, with their role).")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                try await s.show(.GET, "/v1/orgs", as: OrgListResponse.self) { printOrgs($0.organizations) }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one organization.")

        @Argument(help: ArgumentHelp("Organization id or name.", valueName: "org"))
        var org: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                let id = try await orgID(org, session: s)
                try await s.show(.GET, "/v1/orgs/\(id)", as: OrgBody.self) { printOrg($0) }
            }
        }
    }

    struct Suspend: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Suspend an organization: its keys stop working (operator only).")

        @Argument(help: ArgumentHelp("Organization id or name.", valueName: "org"))
        var org: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                let id = try await orgID(org, session: s)
                try await s.show(.POST, "/v1/orgs/\(id)/suspend", as: OrgBody.self) { printOrg($0) }
            }
        }
    }

    struct Activate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Activate a suspended organization again (operator only).")

        @Argument(help: ArgumentHelp("Organization id or name.", valueName: "org"))
        var org: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                let id = try await orgID(org, session: s)
                try await s.show(.POST, "/v1/orgs/\(id)/activate", as: OrgBody.self) { printOrg($0) }
            }
        }
    }
}

/// An organization id, or a name looked up in `GET /v1/orgs`.
private func orgID(_ text: String, session: Session) async throws -> UInt64 {
    if let id = UInt64(text) { return id }
    let list = try await session.call(.GET, "/v1/orgs", as: OrgListResponse.self)
    let matches = list.organizations.filter { $0.name == text }
    guard let match = matches.first else { throw Failure.notFound("no organization named '\(text)'") }
    guard matches.count == 1 else {
        throw Failure.invalid("several organizations are named '\(text)': use an id (\(matches.map { "\($0.id)" }.joined(separator: ", ")))")
    }
    return match.id
}

func printOrg(_ org: OrgBody) { printBlock(orgFields(org)) }

private func orgFields(_ org: OrgBody) -> [(String, String?)] {
    [("id", "\(org.id)"), ("name", org.name), ("status", org.status), ("role", org.role)]
}

func printOrgs(_ orgs: [OrgBody]) {
    var table = Table("ID", "NAME", "STATUS", "ROLE")
    for o in orgs { table.add("\(o.id)", o.name, o.status, o.role ?? "-") }
    table.print(empty: "No organizations.")
}
