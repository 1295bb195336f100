import ArgumentParser
import BursarClient
import BursarWire
import Foundation

/// `bursarctl check`: one CHECK over the binary data-plane protocol, as a gateway would send it.
struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask bursard's data plane whether a key may make a request now (a CHECK frame).",
        discussion: """
            Speaks the binary wire protocol (proto/SPEC.md) to the data-plane port, not the admin API: \
            the secret is hashed here (SHA-256) and only its digest is sent. By default the \
            reservation is released at once, so a probe holds no tokens or spend; --keep leaves it \
            to be settled or to expire. Exit status: 0 allowed, 7 denied, 6 unreachable, 2 invalid input.
            """)

    @Option(name: .long, help: ArgumentHelp("bursard's data plane (default: $BURSAR_DATA_PLANE, else 127.0.0.1:7420).", valueName: "host:port"))
    var dataPlane: String?

    @Option(name: .customLong("tls-ca"), help: ArgumentHelp("Mutual TLS (a data plane started with --listen-tls-*): the CA certificates bursard's certificate must chain to (default: $BURSAR_TLS_CA).", valueName: "path"))
    var tlsCA: String?

    @Option(name: .customLong("tls-cert"), help: ArgumentHelp("Mutual TLS: this client's certificate (default: $BURSAR_TLS_CERT).", valueName: "path"))
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: ArgumentHelp("Mutual TLS: this client's private key (default: $BURSAR_TLS_KEY).", valueName: "path"))
    var tlsKey: String?

    @Option(name: .customLong("gateway-credential-file"), help: ArgumentHelp("Present the gateway credential (bgw_…) in this file first (AUTH): the connection then serves only its organizations (default: the secret in $BURSAR_GATEWAY_CREDENTIAL).", valueName: "path"))
    var gatewayCredentialFile: String?

    @Option(name: .long, help: ArgumentHelp("The key's secret (sk-br-…), '-' to read it from stdin.", valueName: "secret"))
    var secret: String?

    @Option(name: .long, help: ArgumentHelp("Read the secret from this file.", valueName: "path"))
    var secretFile: String?

    @Option(name: .long, help: ArgumentHelp("The model the request is for.", valueName: "model"))
    var model: String

    @Option(name: .long, help: ArgumentHelp("Estimated tokens of the request (input + maximum output).", valueName: "n"))
    var tokens: UInt32 = 1

    @Option(name: .long, help: ArgumentHelp("Estimated cost, e.g. 0.002 or $0.002.", valueName: "money"))
    var cost: String = "0"

    @Flag(name: .long, help: "Keep the reservation instead of releasing it.")
    var keep = false

    @Flag(name: .long, help: "Print the decision as JSON.")
    var json = false

    func run() async throws {
        let address = dataPlane ?? ProcessInfo.processInfo.environment["BURSAR_DATA_PLANE"] ?? "127.0.0.1:7420"
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]), (1...65535).contains(port) else {
            throw Failure.invalid("--data-plane '\(address)' is not host:port")
        }
        let host = String(address[..<colon])
        let secretText: String
        switch (secret, secretFile) {
        case (nil, nil): throw Failure.invalid("give --secret or --secret-file")
        case (_?, _?): throw Failure.invalid("give --secret or --secret-file, not both")
        case ("-"?, nil): secretText = readLine(strippingNewline: true) ?? ""
        case (let s?, nil): secretText = s
        case (nil, let path?): secretText = try readText(path: path, flag: "--secret-file").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard !secretText.isEmpty else { throw Failure.invalid("the secret is empty") }
        let modelName: ModelName
        do { modelName = try ModelName(model) } catch { throw Failure.invalid("--model: \(error.message)") }
        let request = CheckRequest(
            digest: KeyDigest(secret: secretText), model: modelName, inputTokens: tokens, maxOutputTokens: 0,
            estimatedCost: try parseMoney(cost, flag: "--cost"))

        let environment = ProcessInfo.processInfo.environment
        let files = [tlsCA ?? environment["BURSAR_TLS_CA"], tlsCert ?? environment["BURSAR_TLS_CERT"], tlsKey ?? environment["BURSAR_TLS_KEY"]]
        let tls: BursarClientTLS?
        switch files.compactMap({ $0 }).count {
        case 0: tls = nil
        case 3: tls = BursarClientTLS(caPath: files[0]!, certificatePath: files[1]!, keyPath: files[2]!)
        default: throw Failure.invalid("--tls-ca, --tls-cert and --tls-key go together (mutual TLS): give all three or none")
        }
        let connection: BursarConnection
        do {
            connection = try await BursarConnection.connect(host: host, port: port, tls: tls)
        } catch {
            throw Failure(code: "unreachable", message: "cannot reach the data plane at \(address): \(error)", exitStatus: ExitStatus.unreachable)
        }
        let credential = try gatewayCredentialFile.map { try readText(path: $0, flag: "--gateway-credential-file").trimmingCharacters(in: .whitespacesAndNewlines) }
            ?? environment["BURSAR_GATEWAY_CREDENTIAL"]
        if let credential {
            do {
                try await connection.authenticate(credential: credential)
            } catch {
                await connection.close()
                throw Failure(code: "unauthorized", message: "the data plane refused the gateway credential: \(error)", exitStatus: ExitStatus.refused)
            }
        }
        let result: CheckResult
        do {
            result = try await connection.check(request)
            if result.allowed && !keep { _ = try await connection.release(result.reservation) }
        } catch {
            await connection.close()
            throw Failure(code: "transport", message: "the data plane did not answer: \(error)", exitStatus: ExitStatus.unreachable)
        }
        await connection.close()

        let fields: [(String, String?)] = [
            ("decision", result.allowed ? "allowed" : "denied"),
            ("reason", result.reason.description),
            ("org", "\(result.orgID)"), ("project", "\(result.projectID)"), ("key", "\(result.keyID)"),
            ("reservation", result.allowed ? result.reservation.hex + (keep ? "" : " (released)") : nil),
            ("retry after", result.retryAfterMs > 0 ? "\(result.retryAfterMs) ms" : nil),
            ("requests left", result.requestsLimit > 0 ? "\(result.requestsRemaining)/\(result.requestsLimit) per minute" : nil),
            ("tokens left", result.tokensLimit > 0 ? "\(result.tokensRemaining)/\(result.tokensLimit) per minute" : nil),
            ("content logging", result.contentLoggingDisabled ? "off" : "on"),
        ]
        if json {
            var object: [String: Any] = ["allowed": result.allowed, "reason": result.reason.description, "org_id": result.orgID,
                                         "project_id": result.projectID, "key_id": result.keyID,
                                         "content_logging_disabled": result.contentLoggingDisabled, "retry_after_ms": result.retryAfterMs]
            if result.allowed { object["reservation"] = result.reservation.hex }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            printBlock(fields)
        }
        if !result.allowed { throw ExitCode(7) }
    }
}
