import ArgumentParser
import Foundation

@main
struct Bursarctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bursarctl",
        abstract: "Administer bursar: organizations, members, projects, API keys, credits and audit; probe keys with CHECK.",
        discussion: """
            A thin client of bursard's admin API (default http://127.0.0.1:7421). Every command takes \
            --server, --token, --org and --json, which fall back to $BURSAR_SERVER, $BURSAR_TOKEN and \
            $BURSAR_ORG. Without --org, the token's only organization is used.

            Amounts are dollars, parsed exactly (200, $12.50, up to 9 decimals: 0.000000001); times are \
            shown in ISO-8601 UTC. Limits updated with `none` are removed. With --json, the server's \
            answer is printed as-is (pretty-printed) for scripts; commands that answer nothing print nothing.

            EXIT STATUS
              0  success
              1  any other failure: store_unavailable, internal, a malformed answer
              2  invalid input: usage, unparsable value, invalid (400), exceeds_cap (422)
              3  refused: unauthenticated (401) or forbidden (403)
              4  not found (404), which includes what you may not see
              5  conflict (409): exists, already bootstrapped, or last_owner
              6  server unreachable: connection refused, unresolvable, timed out
              7  `check` only: the data plane denied the request

            On an error, one line goes to standard error: `bursarctl: <code>: <message>`, followed by \
            `(cap: <cap>)` for exceeds_cap.
            """,
        subcommands: [
            Bootstrap.self, Me.self, TokenCommand.self, ConsoleLink.self, OrgCommand.self, MemberCommand.self, ProjectCommand.self, KeyCommand.self,
            CreditsCommand.self, PriceCommand.self, ByokCommand.self, VirtualModelCommand.self, McpCommand.self, PromptCommand.self,
            InvitationCommand.self, GatewayCredentialCommand.self, Audit.self, Check.self, UsageCommand.self, Top.self,
        ])

    /// Runs the command; our `Failure`s print one line and exit with their status, usage errors
    /// exit 2 like every other invalid input.
    static func main() async {
        do {
            var command = try await asyncParseAsRoot(nil)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let failure as Failure {
            printError(failure.description)
            Foundation.exit(failure.exitStatus)
        } catch {
            if exitCode(for: error) == .validationFailure {
                printError(fullMessage(for: error))
                Foundation.exit(ExitStatus.invalid)
            }
            exit(withError: error)
        }
    }
}
