import ArgumentParser
import BursarAPI

/// `bursarctl gateway-credential …`: credentials gateways present on the data plane (AUTH),
/// each serving chosen organizations (the operator only).
struct GatewayCredentialCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway-credential",
        abstract: "Gateway credentials for the data plane: create, list, revoke (the operator only).",
        discussion: """
            A gateway that presents a credential (AUTH, SPEC §6.5) serves only the credential's \
            organizations on that connection: keys of others are unknown to it, their reservations too. \
            Start bursard with --data-plane-auth required to refuse connections without one.
            """,
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a credential; its secret (bgw_…) is printed once.",
            discussion: "Give it to the gateway (the Python client's credential=, LiteLLM's BURSAR_GATEWAY_CREDENTIAL).")

        @Option(name: .long, help: ArgumentHelp("Which gateway or fleet holds it.", valueName: "name"))
        var name: String

        @Option(name: .customLong("serve-org"), help: ArgumentHelp("An organization id it serves (repeat for more).", valueName: "id"))
        var organizations: [String] = []

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            guard !organizations.isEmpty else { throw Failure.invalid("give at least one --serve-org") }
            let ids = try organizations.map { try parseID($0, what: "--serve-org") }
            try await global.withSession { s in
                let request = CreateGatewayCredentialRequest(name: name, organizations: ids)
                try await s.show(.POST, "/v1/gateway-credentials", body: request, as: GatewayCredentialBody.self) { c in
                    printBlock([("id", c.id), ("name", c.name), ("organizations", c.organizations.map(String.init).joined(separator: ", "))])
                    print(c.secret ?? "")
                    printError("bursarctl: the secret is shown once; bursar keeps only its SHA-256.")
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the credentials (never their secrets).")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withSession { s in
                try await s.show(.GET, "/v1/gateway-credentials", as: GatewayCredentialList.self) { r in
                    var table = Table("ID", "NAME", "ORGANIZATIONS", "CREATED")
                    for c in r.credentials {
                        table.add(c.id, c.name, c.organizations.map(String.init).joined(separator: ","), isoTime(c.createdAtMs))
                    }
                    table.print(empty: "No gateway credentials.")
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a credential: the connections that presented it are closed at their next request.")

        @Argument(help: ArgumentHelp("Its id (gw_…, see gateway-credential list).", valueName: "id"))
        var id: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            guard GatewayCredentialBody.isValidID(id) else {
                throw Failure.invalid("'\(id)' is not a gateway credential id (gw_ and 16 lowercase hex digits)")
            }
            try await global.withSession { s in
                try await s.perform(.DELETE, "/v1/gateway-credentials/\(id)", done: "Gateway credential \(id) revoked.")
            }
        }
    }
}
