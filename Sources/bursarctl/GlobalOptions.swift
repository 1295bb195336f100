import ArgumentParser
import Foundation

/// The options every command takes. Each falls back to an environment variable.
struct GlobalOptions: ParsableArguments {
    static let defaultServer = "http://127.0.0.1:7421"

    @Option(name: .long, help: ArgumentHelp("Admin API URL (default: $BURSAR_SERVER, else \(defaultServer)).", valueName: "url"))
    var server: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "A pat-br-… or op-br-… token (default: $BURSAR_TOKEN, which stays out of shell history).",
            valueName: "token"))
    var token: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Organization id or name (default: $BURSAR_ORG, else your only one).", valueName: "org"))
    var org: String?

    @Flag(name: .long, help: "Print the server's JSON answer, pretty-printed (for scripts).")
    var json = false

    /// Opens a session with the server for the duration of `body`.
    func withSession<T>(_ body: (Session) async throws -> T) async throws -> T {
        try await Self.withSession(server: server, token: token, org: org, json: json, body)
    }

    /// The flag, else the environment variable; empty counts as absent.
    private static func pick(_ flag: String?, _ variable: String) -> String? {
        if let flag, !flag.isEmpty { return flag }
        if let env = ProcessInfo.processInfo.environment[variable], !env.isEmpty { return env }
        return nil
    }

    /// Opens a session with these option values (or their environment variables).
    static func withSession<T>(
        server: String?, token: String?, org: String?, json: Bool, _ body: (Session) async throws -> T
    ) async throws -> T {
        let raw = pick(server, "BURSAR_SERVER") ?? Self.defaultServer
        var base = raw.trimmingCharacters(in: .whitespaces)
        while base.hasSuffix("/") { base.removeLast() }
        let lower = base.lowercased()
        guard lower.hasPrefix("http://") || lower.hasPrefix("https://"), !base.contains("?"),
            base.split(separator: "/", omittingEmptySubsequences: true).count >= 2
        else {
            throw Failure.invalid("--server '\(raw)' is not an http:// or https:// URL")
        }
        let session = Session(
            base: base, token: pick(token, "BURSAR_TOKEN"), orgOption: pick(org, "BURSAR_ORG"), json: json)
        do {
            let result = try await body(session)
            try? await session.close()
            return result
        } catch {
            try? await session.close()
            throw error
        }
    }
}
