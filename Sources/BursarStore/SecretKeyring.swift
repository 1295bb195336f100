import Crypto
import Foundation

/// The key-encryption keys secrets are sealed with before they reach Redis (BYOK provider
/// secrets: the only secrets bursar must be able to read back; API keys and tokens are kept as
/// digests). AES-256-GCM; each sealed value names the key that sealed it, so a keyring can hold
/// the current key and older ones during a rotation.
///
/// Text form (a file, or an environment variable): one key per line, `id:base64`, the id 1…32
/// characters of `A-Z a-z 0-9 _ -`, the key 32 random bytes in standard base64; blank lines and
/// `#` comments are ignored. The **first** key seals; every key opens. Make one with
/// `printf 'k1:%s\n' "$(head -c 32 /dev/urandom | base64)"`.
///
/// A sealed value is `enc:v1:<id>:<base64(nonce ‖ ciphertext ‖ tag)>`, sealed with the place it
/// is stored as associated data (`context`), so a value copied to another record (another
/// organization's) does not open there.
public struct SecretKeyring: Sendable {
    /// The key that seals.
    public let currentID: String
    /// Key bytes by id (`SymmetricKey` is made for each use: it is not `Sendable`).
    private let keys: [String: Data]
    /// Every key id, the current one first.
    public let ids: [String]

    static let prefix = "enc:v1:"

    /// Parses the text form; `source` names where it came from in errors (a flag and path, or a
    /// variable). Never puts key material in an error.
    public init(parsing text: String, source: String) throws(SecretKeyringError) {
        var keys: [String: Data] = [:]
        var ids: [String] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let where_ = "\(source) line \(index + 1)"
            guard let colon = line.firstIndex(of: ":") else {
                throw SecretKeyringError("\(where_): expected 'id:base64-key'")
            }
            let id = String(line[..<colon])
            guard Self.isValidID(id) else {
                throw SecretKeyringError("\(where_): key id '\(id)' must be 1…32 characters of A-Z a-z 0-9 _ -")
            }
            guard let bytes = Data(base64Encoded: String(line[line.index(after: colon)...])), bytes.count == 32 else {
                throw SecretKeyringError("\(where_): key '\(id)' is not 32 bytes in base64 (AES-256)")
            }
            guard keys[id] == nil else { throw SecretKeyringError("\(where_): key id '\(id)' appears twice") }
            keys[id] = bytes
            ids.append(id)
        }
        guard let first = ids.first else { throw SecretKeyringError("\(source): no key (expected lines 'id:base64-key')") }
        self.currentID = first
        self.keys = keys
        self.ids = ids
    }

    /// A new random key (256 bits, from the system's generator) in the text form's base64: the
    /// value of an `id:base64` line.
    public static func newKey() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.base64EncodedString()
    }

    static func isValidID(_ id: String) -> Bool {
        (1...32).contains(id.utf8.count) && id.utf8.allSatisfy { c in
            (0x30...0x39).contains(c) || (0x41...0x5A).contains(c) || (0x61...0x7A).contains(c) || c == 0x5F || c == 0x2D
        }
    }

    /// `plaintext` sealed under the current key, bound to `context`.
    public func seal(_ plaintext: String, context: String) throws -> String {
        let box = try AES.GCM.seal(Data(plaintext.utf8), using: SymmetricKey(data: keys[currentID]!), authenticating: Data(context.utf8))
        return Self.prefix + currentID + ":" + box.combined!.base64EncodedString()
    }

    /// The plaintext of a sealed value stored at `context`. Throws naming the key id when the
    /// keyring does not hold it, or when the value does not open (another key under the same id,
    /// another place, or altered).
    public func open(_ sealed: String, context: String) throws(SecretKeyringError) -> String {
        guard let (id, payload) = Self.parts(sealed) else { throw SecretKeyringError("not a sealed value") }
        guard let key = keys[id] else { throw SecretKeyringError("sealed under key '\(id)', which the keyring does not hold") }
        do {
            let box = try AES.GCM.SealedBox(combined: payload)
            return String(decoding: try AES.GCM.open(box, using: SymmetricKey(data: key), authenticating: Data(context.utf8)), as: UTF8.self)
        } catch {
            throw SecretKeyringError("does not open under key '\(id)' (another key with that id, another record, or altered)")
        }
    }

    /// Whether the keyring holds the key `id`.
    public func holds(_ id: String) -> Bool { keys[id] != nil }

    /// A stored value is sealed (else it is plaintext written before secrets were sealed).
    public static func isSealed(_ stored: String) -> Bool { stored.hasPrefix(prefix) }

    /// The key id a sealed value names; nil for plaintext.
    public static func keyID(of stored: String) -> String? { parts(stored)?.0 }

    private static func parts(_ stored: String) -> (String, Data)? {
        guard stored.hasPrefix(prefix) else { return nil }
        let rest = stored.dropFirst(prefix.count)
        guard let colon = rest.firstIndex(of: ":"), let payload = Data(base64Encoded: String(rest[rest.index(after: colon)...])) else { return nil }
        return (String(rest[..<colon]), payload)
    }
}

/// A keyring that cannot be read, or a value it cannot open. Never carries key material.
public struct SecretKeyringError: Error, Sendable, Hashable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
