import BursarRedis
import BursarWire
import Foundation

/// A gateway credential (SPEC §6.5): what a gateway presents once per data-plane connection
/// (AUTH), naming the organizations that connection may serve. Issued and revoked by the
/// installation's operator; bursar keeps only the SHA-256 of its secret.
public struct GatewayCredential: Codable, Sendable, Hashable {
    /// `gw_` and 16 hex digits, random (it tells nothing about how many there are).
    public var id: String
    /// The operator's name for it (which gateway or fleet holds it).
    public var name: String
    /// The organizations its connections serve; never empty.
    public var organizations: [UInt64]
    /// When it was issued, Unix ms.
    public var createdAtMs: Int64
    /// SHA-256 of the secret, lowercase hex (the Redis field it is stored under).
    public var digest: String

    enum CodingKeys: String, CodingKey {
        case id, name, organizations, digest
        case createdAtMs = "created_at_ms"
    }

    /// The most organizations one credential names.
    public static let maxOrganizations = 1_000
    /// What every secret starts with.
    public static let secretPrefix = "bgw_"

    /// Reads the stored form; nil if it is not one.
    public init?(stored: [UInt8]) {
        guard let c = try? JSONDecoder().decode(GatewayCredential.self, from: Data(stored)), !c.organizations.isEmpty else { return nil }
        self = c
    }

    init(id: String, name: String, organizations: [UInt64], createdAtMs: Int64, digest: String) {
        self.id = id
        self.name = name
        self.organizations = organizations
        self.createdAtMs = createdAtMs
        self.digest = digest
    }
}

extension MetadataStore {
    // MARK: Gateway credentials

    /// Issues a credential for `organizations` (each must exist); returns it and its secret,
    /// which is shown once and never stored.
    public func createGatewayCredential(name: String, organizations: [UInt64]) async throws -> (GatewayCredential, secret: String) {
        try validName(name, "gateway credential name")
        let orgs = Array(Set(organizations)).sorted()
        guard !orgs.isEmpty else { throw StoreError.invalid("organizations: a gateway credential serves at least one organization") }
        guard orgs.count <= GatewayCredential.maxOrganizations else {
            throw StoreError.invalid("organizations: at most \(GatewayCredential.maxOrganizations) per credential")
        }
        for org in orgs where try await organization(org) == nil { throw StoreError.notFound("organization \(org)") }
        let secret = Self.newSecret(prefix: GatewayCredential.secretPrefix)
        var rng = SystemRandomNumberGenerator()
        let id = "gw_" + hexString((0..<8).map { _ in UInt8.random(in: 0...255, using: &rng) })
        // What a client sends in AUTH: SHA-256 of the secret, as for an API key's.
        let digest = Self.digest(ofSecret: secret).hex
        let credential = GatewayCredential(
            id: id, name: name, organizations: orgs, createdAtMs: Int64(Date().timeIntervalSince1970 * 1000), digest: digest)
        let json = String(decoding: try JSONEncoder().encode(credential), as: UTF8.self)
        try await redis.send(RedisCommand("HSET", Keyspace.gatewayCredentials, digest, json))
        return (credential, secret)
    }

    /// Every credential, oldest first.
    public func gatewayCredentials() async throws -> [GatewayCredential] {
        let reply = try await redis.send(RedisCommand("HVALS", Keyspace.gatewayCredentials))
        return (reply.array ?? []).compactMap { value -> GatewayCredential? in
            guard case .bulk(let bytes) = value else { return nil }
            return GatewayCredential(stored: bytes)
        }.sorted { ($0.createdAtMs, $0.id) < ($1.createdAtMs, $1.id) }
    }

    /// Revokes a credential; returns it (its digest ends the connections that used it).
    public func revokeGatewayCredential(id: String) async throws -> GatewayCredential {
        guard let credential = try await gatewayCredentials().first(where: { $0.id == id }) else {
            throw StoreError.notFound("gateway credential \(id)")
        }
        try await redis.send(RedisCommand("HDEL", Keyspace.gatewayCredentials, credential.digest))
        return credential
    }
}
