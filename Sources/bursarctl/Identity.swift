import ArgumentParser
import BursarAPI

/// `bursarctl bootstrap`: the first organization, its Owner, and the operator token.
struct Bootstrap: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Set up an empty bursar: the first organization, its Owner, and the operator token.",
        discussion: """
            Needs no token. Works once, on an empty store (afterwards: conflict, exit 5). Prints the \
            operator's token (creates and suspends organizations) and the Owner's token. Neither is \
            shown again: store them now.
            """)

    // Not the GlobalOptions group: no token is needed, and --org here names the new organization.
    @Option(name: .long, help: ArgumentHelp("Admin API URL (default: $BURSAR_SERVER, else \(GlobalOptions.defaultServer)).", valueName: "url"))
    var server: String?

    @Flag(name: .long, help: "Print the server's JSON answer, pretty-printed (for scripts).")
    var json = false

    @Option(name: .long, help: ArgumentHelp("Name of the first organization.", valueName: "name"))
    var org: String

    @Option(name: .long, help: ArgumentHelp("E-mail of its first Owner.", valueName: "email"))
    var owner: String

    @Option(name: .long, help: ArgumentHelp("Display name of the Owner (default: the e-mail).", valueName: "name"))
    var ownerName: String?

    func run() async throws {
        try await GlobalOptions.withSession(server: server, token: nil, org: nil, json: json) { s in
            let request = BootstrapRequest(org: org, ownerEmail: owner, ownerName: ownerName)
            try await s.show(.POST, "/v1/bootstrap", body: request, as: BootstrapResponse.self, authenticated: false) {
                r in
                printBlock([
                    ("organization", "\(r.organization.name) (id \(r.organization.id))"),
                    ("owner", "\(r.owner.name) <\(r.owner.email)> (user \(r.owner.userId))"),
                    ("operator token", r.operatorToken),
                    ("owner token", r.ownerToken),
                ])
                printError("bursarctl: warning: these tokens are shown only this once; store them now.")
            }
        }
    }
}

/// `bursarctl me`: who the token is.
struct Me: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show who the token belongs to and their organizations.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await global.withSession { s in
            try await s.show(.GET, "/v1/me", as: MeResponse.self) { r in
                if let user = r.user {
                    printBlock([("kind", r.kind), ("user", "\(user.id)"), ("email", user.email), ("name", user.name)])
                } else {
                    printBlock([("kind", r.kind)])
                }
                print("")
                printOrgs(r.organizations)
            }
        }
    }
}

/// `bursarctl console-link`: a single-use sign-in link to the web console.
struct ConsoleLink: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console-link",
        abstract: "Print a single-use link that signs the token's user in to the web console.",
        discussion: """
            The link opens the console on the ops port (the --server URL) as the token's user, \
            without typing the token into a browser. It works once, for 10 minutes. The operator \
            token has no console.
            """)

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await global.withSession { s in
            try await s.show(.POST, "/v1/console-links", as: ConsoleLinkResponse.self) { r in
                print(s.base + r.path)
                printError("bursarctl: this link signs you in once, within \(r.expiresInSeconds / 60) minutes; do not share it.")
            }
        }
    }
}
