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

/// `bursarctl token show|rotate|revoke`: the caller's own token.
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Show, rotate or revoke the token bursarctl is using (--token / BURSAR_TOKEN).",
        subcommands: [Show.self, Rotate.self, Revoke.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "When the token was made, when it expires and when it was last used.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                try await s.show(.GET, "/v1/me/token", as: TokenInfoResponse.self) { r in
                    printBlock([
                        ("kind", r.kind), ("created", r.createdMs.map { isoTime($0) } ?? "-"), ("expires", isoTime(r.expiresMs)),
                        ("last used", r.lastUsedMs.map { isoTime($0) } ?? "-"),
                    ])
                }
            }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replace the token with a new one, printed once; the old one stops working at once.",
            discussion: "A user's console sessions signed in with the old token end too. Store the new token before you lose this output.")
        @OptionGroup var global: GlobalOptions
        @Option(name: .long, help: ArgumentHelp("The new token stops working after this many days (1…3650; users only).", valueName: "days"))
        var expiresInDays: Int64?

        func run() async throws {
            if let days = expiresInDays, !(1...3650).contains(days) {
                throw Failure.invalid("--expires-in-days must be 1…3650, got \(days)")
            }
            try await global.withSession { s in
                try await s.show(.POST, "/v1/me/token/rotate", body: RotateTokenRequest(expiresInDays: expiresInDays), as: RotatedTokenResponse.self) { r in
                    print(r.token)
                    printError("bursarctl: the old token no longer works; this one is shown once\(r.expiresMs.map { ", and expires \(isoTime($0))" } ?? "").")
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke the token: it, and the console sessions signed in with it, stop working at once.",
            discussion: "An Owner can invite you again for a new one. The operator's token can only be rotated.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                try await s.perform(.DELETE, "/v1/me/token", done: "Token revoked.")
            }
        }
    }
}
