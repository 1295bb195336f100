import BursarRedis
import Foundation

/// A signed-in web console session: whose it is and the token its forms must carry.
public struct ConsoleSession: Sendable, Hashable {
    /// The signed-in user.
    public var user: UInt64
    /// The anti-forgery token every form of this session carries (`_csrf`).
    public var csrf: String
}

extension MetadataStore {
    // MARK: Web console sessions and one-time links

    // Both live in Redis under the SHA-256 of the value the browser or the link holds, so every
    // bursard on the store shares them, a dump of Redis holds no usable cookie, and Redis's own
    // expiry ends them.

    /// Starts a session for `user` lasting `ttlSeconds`; returns the cookie value and the session.
    public func createConsoleSession(user: UInt64, ttlSeconds: Int) async throws -> (cookie: String, session: ConsoleSession) {
        let cookie = Self.newSecret(prefix: "cs-")
        let session = ConsoleSession(user: user, csrf: Self.newSecret(prefix: ""))
        // Bound to the user's token of the moment: rotating or revoking it ends the session.
        let bound = try await currentTokenDigest(user: user)
        guard !bound.isEmpty else { throw StoreError.conflict("user \(user) has no token: their access was revoked") }
        try await redis.send(
            RedisCommand("SET", Keyspace.consoleSession(Self.tokenDigest(cookie)), "\(user) \(session.csrf) \(bound)", "EX", String(ttlSeconds)))
        return (cookie, session)
    }

    /// The live session behind a cookie value, or nil (unknown, expired or signed out).
    public func consoleSession(cookie: String) async throws -> ConsoleSession? {
        guard !cookie.isEmpty, cookie.utf8.count <= 128 else { return nil }
        guard let v = try await redis.send(RedisCommand("GET", Keyspace.consoleSession(Self.tokenDigest(cookie)))).string else { return nil }
        let parts = v.split(separator: " ")
        guard parts.count == 3, let user = UInt64(parts[0]) else { return nil }
        // The token it was signed in with was rotated or revoked since: the session is over.
        guard try await currentTokenDigest(user: user) == parts[2] else { return nil }
        return ConsoleSession(user: user, csrf: String(parts[1]))
    }

    /// Ends a session (sign-out).
    public func deleteConsoleSession(cookie: String) async throws {
        guard !cookie.isEmpty, cookie.utf8.count <= 128 else { return }
        try await redis.send(RedisCommand("DEL", Keyspace.consoleSession(Self.tokenDigest(cookie))))
    }

    /// A single-use sign-in code for `user`, valid `ttlSeconds`.
    public func createConsoleLink(user: UInt64, ttlSeconds: Int) async throws -> String {
        let code = Self.newSecret(prefix: "")
        try await redis.send(RedisCommand("SET", Keyspace.consoleLink(Self.tokenDigest(code)), String(user), "EX", String(ttlSeconds)))
        return code
    }

    /// Whether a link code is live, without using it.
    public func consoleLinkUser(code: String) async throws -> UInt64? {
        guard !code.isEmpty, code.utf8.count <= 128 else { return nil }
        return try await redis.send(RedisCommand("GET", Keyspace.consoleLink(Self.tokenDigest(code)))).string.flatMap { UInt64($0) }
    }

    /// Uses a link code: returns its user once (GETDEL, atomic), nil for an unknown, used or
    /// expired code.
    public func consumeConsoleLink(code: String) async throws -> UInt64? {
        guard !code.isEmpty, code.utf8.count <= 128 else { return nil }
        return try await redis.send(RedisCommand("GETDEL", Keyspace.consoleLink(Self.tokenDigest(code)))).string.flatMap { UInt64($0) }
    }
}
