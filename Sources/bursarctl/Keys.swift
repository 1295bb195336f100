import ArgumentParser
import BursarAPI

/// `bursarctl key …`: API keys. Each belongs to a user and a project.
struct KeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "API keys: create, list, show, update, revoke, rotate.",
        discussion: """
            K is a key id. Every key belongs to a user and a project and inherits their permissions; \
            its limits must stay within the project's caps and the user's grant (else exceeds_cap, \
            exit 2). Members manage their own keys; Project Admins every key of their projects.
            """,
        subcommands: [Create.self, List.self, Show.self, Update.self, Revoke.self, Rotate.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a key; its secret is printed once.",
            discussion: """
                --expires 2026-12-31 means 00:00 UTC at the start of that date: the key no longer works \
                on that day. --expires-in 30d (or 30) counts whole days on the server's clock; 12h is \
                turned into an instant with this machine's clock.
                """)

        @Option(name: .long, help: ArgumentHelp("Project id or name.", valueName: "p"))
        var project: String

        @Option(name: .long, help: ArgumentHelp("The key's name.", valueName: "name"))
        var name: String

        @Option(name: .long, help: ArgumentHelp("Whose key: user id or e-mail (default: yours; someone else's needs Project Admin).", valueName: "user"))
        var user: String?

        @OptionGroup(title: "Limits") var limits: KeyLimitOptions

        @Flag(name: .long, help: "Do not log request and response content for this key.")
        var noContentLogging = false

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let expiry = try parseExpiry(expires: limits.expires, expiresIn: limits.expiresIn)
            var request = CreateKeyRequest(
                name: name,
                maxSpendNusd: try limits.budget.map { try parseMoney($0, flag: "--budget") },
                period: limits.period?.rawValue,
                rpm: try limits.rpm.map { try parseLimit($0, flag: "--rpm") },
                tpm: try limits.tpm.map { try parseLimit($0, flag: "--tpm") },
                models: parseModels(limits.models),
                contentLoggingDisabled: noContentLogging ? true : nil)
            switch expiry {
            case .at(let ms): request.expiresAtMs = ms
            case .inDays(let days): request.expiresInDays = days
            case nil: break
            }
            try await global.withSession { s in
                let org = try await s.orgPath()
                let projectPath = "\(org)/projects/\(try await s.projectID(project, orgPath: org))"
                if let user { request.userId = try await s.projectMemberID(user, projectPath: projectPath) }
                try await s.show(.POST, "\(projectPath)/keys", body: request, as: KeySecretResponse.self) {
                    printSecret($0)
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List keys.",
            discussion: """
                With --project: the project's keys you may manage (your own, or all of them as Project \
                Admin). Without: every key of the organization (Owners only).
                """)

        @Option(name: .long, help: ArgumentHelp("Project id or name.", valueName: "p"))
        var project: String?

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                let org = try await s.orgPath()
                var path = "\(org)/keys"
                if let project { path = "\(org)/projects/\(try await s.projectID(project, orgPath: org))/keys" }
                try await s.show(.GET, path, as: KeyListResponse.self) { r in
                    var table = Table(
                        "ID", "NAME", "PROJECT", "USER", "KEY", "STATUS", "MAX SPEND", "PERIOD", "TPM", "RPM", "EXPIRES")
                    for k in r.keys {
                        table.add(
                            "\(k.id)", k.name, "\(k.projectId)", "\(k.userId)", k.display, k.status,
                            dollars(k.maxSpendNusd), k.period, limit(k.tpm), limit(k.rpm), isoTime(k.expiresAtMs))
                    }
                    table.print(empty: "No keys.")
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a key (never its secret).")

        @Argument(help: ArgumentHelp("Key id.", valueName: "k"))
        var key: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let id = try parseID(key, what: "K")
            try await global.withSession { s in
                try await s.show(.GET, "\(try await s.orgPath())/keys/\(id)", as: KeyBody.self) { printKey($0) }
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a key's name or limits.",
            discussion: """
                Flags left out stay as they are; `none` removes a limit (--budget, --tpm, --rpm, \
                --expires); `--models all` allows every model the key's project and grant allow.
                """)

        @Argument(help: ArgumentHelp("Key id.", valueName: "k"))
        var key: String

        @Option(name: .long, help: ArgumentHelp("A new name.", valueName: "name"))
        var name: String?

        @OptionGroup(title: "Limits") var limits: KeyLimitUpdateOptions

        @Flag(inversion: .prefixedNo, help: "Log (or do not log) request and response content for this key.")
        var contentLogging: Bool?

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let id = try parseID(key, what: "K")
            var request = UpdateKeyRequest(
                name: name,
                maxSpendNusd: try parseMoneyPatch(limits.budget, flag: "--budget"),
                period: limits.period?.rawValue,
                rpm: try parseLimitPatch(limits.rpm, flag: "--rpm"),
                tpm: try parseLimitPatch(limits.tpm, flag: "--tpm"),
                models: parseModels(limits.models),
                contentLoggingDisabled: contentLogging.map { !$0 })
            if let expires = limits.expires, isNone(expires) {
                guard limits.expiresIn == nil else {
                    throw Failure.invalid("--expires and --expires-in cannot be used together")
                }
                request.expiresAtMs = .clear
            } else {
                switch try parseExpiry(expires: limits.expires, expiresIn: limits.expiresIn) {
                case .at(let ms): request.expiresAtMs = .set(ms)
                case .inDays(let days): request.expiresInDays = days
                case nil: break
                }
            }
            guard request != UpdateKeyRequest() else {
                throw Failure.invalid("nothing to change: give at least one flag (see --help)")
            }
            try await global.withSession { s in
                try await s.show(.PATCH, "\(try await s.orgPath())/keys/\(id)", body: request, as: KeyBody.self) {
                    printKey($0)
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key: it stops working at once, for good.")

        @Argument(help: ArgumentHelp("Key id.", valueName: "k"))
        var key: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let id = try parseID(key, what: "K")
            try await global.withSession { s in
                try await s.show(.POST, "\(try await s.orgPath())/keys/\(id)/revoke", as: KeyBody.self) { printKey($0) }
            }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give a key a new secret (printed once); the old secret stops working.")

        @Argument(help: ArgumentHelp("Key id.", valueName: "k"))
        var key: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let id = try parseID(key, what: "K")
            try await global.withSession { s in
                try await s.show(.POST, "\(try await s.orgPath())/keys/\(id)/rotate", as: KeySecretResponse.self) {
                    printSecret($0)
                }
            }
        }
    }
}

/// The limit flags of `key create`.
struct KeyLimitOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Spend cap per period, in dollars (default: none).", valueName: "money"))
    var budget: String?

    @Option(name: .long, help: ArgumentHelp("When the spend cap resets (default: monthly).", valueName: "period"))
    var period: Period?

    @Option(name: .long, help: ArgumentHelp("Tokens per minute, e.g. 20k (default: none).", valueName: "n"))
    var tpm: String?

    @Option(name: .long, help: ArgumentHelp("Requests per minute (default: none).", valueName: "n"))
    var rpm: String?

    @Option(name: .long, help: ArgumentHelp("Models the key may use (default: all its project and grant allow).", valueName: "a,b,c"))
    var models: String?

    @Option(name: .long, help: ArgumentHelp("Expires at 00:00 UTC of this date (or at YYYY-MM-DDTHH:MM:SSZ).", valueName: "yyyy-mm-dd"))
    var expires: String?

    @Option(name: .long, help: ArgumentHelp("Expires this long from now: 30d, 30 (days), 2w or 12h.", valueName: "duration"))
    var expiresIn: String?
}

/// The limit flags of `key update`: the same, with `none` to remove a limit.
struct KeyLimitUpdateOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Spend cap per period, in dollars, or none.", valueName: "money|none"))
    var budget: String?

    @Option(name: .long, help: ArgumentHelp("When the spend cap resets.", valueName: "period"))
    var period: Period?

    @Option(name: .long, help: ArgumentHelp("Tokens per minute, or none.", valueName: "n|none"))
    var tpm: String?

    @Option(name: .long, help: ArgumentHelp("Requests per minute, or none.", valueName: "n|none"))
    var rpm: String?

    @Option(name: .long, help: ArgumentHelp("Models the key may use (replaces the list; `all`: all its project and grant allow).", valueName: "a,b,c"))
    var models: String?

    @Option(name: .long, help: ArgumentHelp("Expires at 00:00 UTC of this date (or YYYY-MM-DDTHH:MM:SSZ), or none.", valueName: "date|none"))
    var expires: String?

    @Option(name: .long, help: ArgumentHelp("Expires this long from now: 30d, 30 (days), 2w or 12h.", valueName: "duration"))
    var expiresIn: String?
}

func printKey(_ k: KeyBody) { printBlock(keyFields(k)) }

private func keyFields(_ k: KeyBody) -> [(String, String?)] {
    [
        ("id", "\(k.id)"), ("name", k.name), ("key", k.display), ("status", k.status),
        ("project", "\(k.projectId)"), ("user", "\(k.userId)"), ("created by", "\(k.createdBy)"),
        ("created", isoTime(k.createdAtMs)),
        ("max spend", k.maxSpendNusd.map { "\(dollars($0)) \(k.period)" } ?? "none (\(k.period) window)"),
        ("tpm", limit(k.tpm)), ("rpm", limit(k.rpm)), ("models", models(k.models)),
        ("expires", isoTime(k.expiresAtMs)),
        ("content logging", k.contentLoggingDisabled ? "disabled" : "enabled"),
    ]
}

func printSecret(_ r: KeySecretResponse) {
    printBlock(keyFields(r.key) + [("secret", r.secret)])
    printError("bursarctl: warning: the secret is shown only this once; store it now.")
}
