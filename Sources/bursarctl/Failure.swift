import AsyncHTTPClient
import BursarAPI
import Foundation
import NIOCore

/// Why a command failed: a stable code (the server's `APIErrorCode`, or one of ours), a message,
/// the cap for `exceeds_cap`, and the process exit status. Printed as `bursarctl: <code>: <message>`.
struct Failure: Error, CustomStringConvertible {
    /// The server's error code, or `invalid` / `unreachable` / `bad_response` / `transport`.
    var code: String
    /// What went wrong.
    var message: String
    /// For `exceeds_cap`: which cap, e.g. `project.tpm`.
    var cap: String?
    /// The exit status (see `ExitStatus`).
    var exitStatus: Int32

    var description: String {
        var line = "bursarctl: \(code): \(message)"
        if let cap { line += " (cap: \(cap))" }
        return line
    }

    /// Bad input caught before anything was sent: exit 2.
    static func invalid(_ message: String) -> Failure {
        Failure(code: "invalid", message: message, exitStatus: ExitStatus.invalid)
    }

    /// Something a lookup could not find (a project name, a member's e-mail): exit 4.
    static func notFound(_ message: String) -> Failure {
        Failure(code: "not_found", message: message, exitStatus: ExitStatus.notFound)
    }
}

/// The exit statuses, as documented in `bursarctl --help`.
enum ExitStatus {
    static let ok: Int32 = 0
    static let other: Int32 = 1
    static let invalid: Int32 = 2
    static let refused: Int32 = 3
    static let notFound: Int32 = 4
    static let conflict: Int32 = 5
    static let unreachable: Int32 = 6

    /// The status for an API error: by its code when we know it, else by the HTTP status.
    static func of(code: String, httpStatus: Int) -> Int32 {
        switch APIErrorCode(rawValue: code) {
        case .invalid, .exceedsCap, .methodNotAllowed: return invalid
        case .unauthenticated, .forbidden: return refused
        case .notFound: return notFound
        case .conflict, .lastOwner: return conflict
        case .storeUnavailable, .internal: return other
        case nil:
            switch httpStatus {
            case 400, 422: return invalid
            case 401, 403: return refused
            case 404: return notFound
            case 409: return conflict
            default: return other
            }
        }
    }
}

extension Failure {
    /// A non-2xx answer: the `ErrorBody` if the server sent one, else the status line and a bit of the body.
    static func fromResponse(status: Int, reason: String, body: ByteBuffer) -> Failure {
        if let decoded = try? APIJSON.decoder().decode(ErrorBody.self, from: body) {
            let e = decoded.error
            return Failure(
                code: e.code, message: e.message, cap: e.cap,
                exitStatus: ExitStatus.of(code: e.code, httpStatus: status))
        }
        var text = String(buffer: body).trimmingCharacters(in: .whitespacesAndNewlines)
        if text.count > 200 { text = String(text.prefix(200)) + "…" }
        let message = text.isEmpty ? "HTTP \(status) \(reason)" : "HTTP \(status): \(text)"
        return Failure(code: "http_\(status)", message: message, exitStatus: ExitStatus.of(code: "", httpStatus: status))
    }

    /// An error from the HTTP client: a malformed `--server` is invalid input (2); anything else
    /// means no answer came back (refused, unresolvable, timed out, reset): unreachable (6).
    static func fromTransport(_ error: any Error, server: String) -> Failure {
        if let e = error as? HTTPClientError, [.invalidURL, .emptyHost, .emptyScheme].contains(e) {
            return .invalid("--server '\(server)' is not a usable URL (\(e))")
        }
        return Failure(code: "unreachable", message: "cannot reach \(server): \(describe(error))", exitStatus: ExitStatus.unreachable)
    }

    /// A short reason: the errno text when a socket error is somewhere inside (NIO nests them in
    /// its connection errors), else the error's own description.
    private static func describe(_ error: any Error) -> String {
        if let e = error as? HTTPClientError {
            switch e {
            case .connectTimeout: return "connection timed out"
            case .readTimeout, .deadlineExceeded: return "no answer in time"
            case .remoteConnectionClosed: return "the server closed the connection"
            default: break
            }
        }
        if let e = error as? ChannelError, case .connectTimeout = e { return "connection timed out" }
        if let io = firstIOError(in: error, depth: 0) { return String(cString: strerror(io.errnoCode)).lowercased() }
        return "\(error)"
    }

    private static func firstIOError(in value: Any, depth: Int) -> IOError? {
        if let io = value as? IOError { return io }
        guard depth < 6 else { return nil }
        for child in Mirror(reflecting: value).children {
            if let found = firstIOError(in: child.value, depth: depth + 1) { return found }
        }
        return nil
    }
}
