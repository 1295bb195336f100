import Foundation
import Hummingbird

/// A submitted HTML form (`application/x-www-form-urlencoded`): every value of every field, in
/// order, so repeated fields (`models`, one per ticked box) keep all their values.
struct Form: Sendable {
    /// The largest form the console reads.
    static let maxBytes = 64 * 1024

    private(set) var fields: [(name: String, value: String)] = []

    /// The first value of `name`.
    subscript(_ name: String) -> String? { fields.first { $0.name == name }?.value }

    /// Every value of `name`.
    func all(_ name: String) -> [String] { fields.filter { $0.name == name }.map(\.value) }

    /// The trimmed value of `name`, nil when absent or blank.
    func text(_ name: String) -> String? {
        guard let v = self[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !v.isEmpty else { return nil }
        return v
    }

    /// Whether a checkbox is ticked.
    func checked(_ name: String) -> Bool { self[name] != nil }

    /// Parses an urlencoded body: `+` is a space, `%XX` a byte (Foundation decodes the
    /// percent-encoding); a field that does not decode is refused rather than guessed.
    init(urlencoded body: String) throws(FormError) {
        for pair in body.split(separator: "&", omittingEmptySubsequences: true) {
            let halves = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) throws(FormError) -> String {
                guard let v = s.replacingOccurrences(of: "+", with: " ").removingPercentEncoding else {
                    throw FormError("the form is not correctly encoded")
                }
                return v
            }
            fields.append((try decode(halves[0]), halves.count > 1 ? try decode(halves[1]) : ""))
        }
    }

    /// The request's form body.
    static func read(_ req: Request) async throws -> Form {
        var req = req
        let buffer: ByteBuffer
        do {
            buffer = try await req.collectBody(upTo: maxBytes)
        } catch {
            throw FormError("the form is larger than \(maxBytes / 1024) KiB")
        }
        let type = req.headers[.contentType] ?? ""
        guard buffer.readableBytes == 0 || type.lowercased().hasPrefix("application/x-www-form-urlencoded") else {
            throw FormError("forms are sent as application/x-www-form-urlencoded")
        }
        return try Form(urlencoded: String(decoding: buffer.readableBytesView, as: UTF8.self))
    }
}

/// A form that cannot be read or holds a value that is not what its field takes; `field` names it.
struct FormError: Error, Sendable {
    var message: String
    var field: String?
    init(_ message: String, field: String? = nil) {
        self.message = message
        self.field = field
    }
}
