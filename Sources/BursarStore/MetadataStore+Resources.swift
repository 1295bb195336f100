import BursarRedis
import Foundation

/// An external provider key (BYOK). The secret is write-only: nothing returns it.
public struct ProviderKey: Sendable, Hashable {
    public var id: UInt64
    public var provider: String
    public var name: String
    /// `…` and the secret's last four characters.
    public var display: String
    public var createdAtMs: Int64
}

/// What `reviewSecrets` found among the stored provider secrets.
public struct SecretsReview: Sendable, Hashable {
    /// Stored as given, from before secrets were sealed (none after a rewrap).
    public var plaintext = 0
    /// Sealed ones, by the key id that sealed them (as found, before any rewrap).
    public var sealed: [String: Int] = [:]
    /// Sealed again under the current key (plaintext or an older key's).
    public var rewrapped = 0
    /// Sealed under a key id the keyring holds, but they do not open.
    public var unopenable: [String] = []
    public init() {}
}

/// A registered MCP server.
public struct MCPServer: Sendable, Hashable {
    public var id: UInt64
    public var name: String
    public var url: String
}

/// One version of a named prompt.
public struct PromptVersion: Sendable, Hashable {
    public var version: Int64
    public var text: String
    public var createdAtMs: Int64
    public var createdBy: UInt64
}

extension MetadataStore {
    // MARK: Virtual models

    /// The organization's virtual models: alias → real models.
    public func virtualModels(org: UInt64) async throws -> [String: [String]] {
        let flat = (try await redis.send(RedisCommand("HGETALL", Keyspace.virtualModels(org))).array ?? []).map { $0.string ?? "" }
        var result: [String: [String]] = [:]
        var i = 0
        while i + 1 < flat.count {
            result[flat[i]] = Self.splitList(flat[i + 1])
            i += 2
        }
        return result
    }

    /// Creates or replaces a virtual model, then re-expands every model list of the organization
    /// so CHECK sees the new mapping.
    public func setVirtualModel(org: UInt64, name: String, targets: [String]) async throws {
        try validModels([name], "virtual model name")
        try validModels(targets, "virtual model targets")
        guard !targets.isEmpty else { throw StoreError.invalid("virtual model \(name) needs at least one target model") }
        // Schema-valid but refused by what is stored: `conflict`, not `invalid`.
        if targets.contains(name) { throw StoreError.conflict("virtual model \(name) cannot map to itself") }
        let existing = try await virtualModels(org: org)
        if let alias = targets.first(where: { existing[$0] != nil }) {
            throw StoreError.conflict("virtual model \(name) cannot map to virtual model \(alias): targets are real models")
        }
        if existing.values.contains(where: { $0.contains(name) }) {
            throw StoreError.conflict("\(name) is a target of another virtual model, so it cannot be an alias itself")
        }
        try await redis.send(RedisCommand("HSET", Keyspace.virtualModels(org), name, Self.joinList(Array(Set(targets)).sorted())))
        try await reexpandModelLists(org: org)
    }

    /// Removes a virtual model; lists naming it keep the name (which now matches only itself).
    public func deleteVirtualModel(org: UInt64, name: String) async throws {
        guard try await redis.send(RedisCommand("HDEL", Keyspace.virtualModels(org), name)).int == 1 else {
            throw StoreError.notFound("virtual model \(name)")
        }
        try await reexpandModelLists(org: org)
    }

    /// A declared model list as the limiter stores it: each name, plus the real models behind each
    /// virtual one.
    static func expand(_ models: [String], _ aliases: [String: [String]]) -> [String] {
        models.flatMap { [$0] + (aliases[$0] ?? []) }
    }

    /// Rewrites every project, grant and key model set of the organization from its declared list.
    private func reexpandModelLists(org: UInt64) async throws {
        let aliases = try await virtualModels(org: org)
        for p in try await projects(org: org) {
            let hash = Keyspace.project(org, p.id)
            try await transaction(replaceSet(Keyspace.projectModels(org, p.id), Self.expand(p.models, aliases), countIn: hash))
            for m in try await memberships(org: org, project: p.id) {
                let mh = Keyspace.membership(org, p.id, m.userID)
                try await transaction(replaceSet(Keyspace.membershipModels(org, p.id, m.userID), Self.expand(m.grant.models ?? [], aliases), countIn: mh))
            }
            for k in try await keys(org: org, project: p.id) {
                // The key's list size is part of its compiled record: rewritten in the same step.
                try await transaction(
                    replaceSet(Keyspace.keyModels(org, k.id), Self.expand(k.limits.models, aliases), countIn: Keyspace.key(org, k.id)),
                    org: org, recompile: .keys([k.id]))
            }
            // The project's and grants' list sizes are part of its keys' compiled records.
            try await transaction([Self.recompile(org: org, .project(p.id))])
        }
    }

    // MARK: BYOK

    /// Stores an external provider key. The secret is kept for the gateway's use and never returned.
    public func addProviderKey(org: UInt64, provider: String, name: String, secret: String) async throws -> ProviderKey {
        try validName(provider, "provider")
        try validName(name, "provider key name")
        guard (8...4096).contains(secret.unicodeScalars.count) else {
            throw StoreError.invalid("provider secret must be 8…4096 characters (Unicode code points)")
        }
        guard let secrets else {
            throw StoreError.conflict(
                "bursard holds no key-encryption key (--secrets-key-file, or BURSARD_SECRETS_KEYS): provider secrets are stored only encrypted")
        }
        let id = try await nextID("byok", org: org)
        let key = ProviderKey(id: id, provider: provider, name: name, display: "…" + String(secret.suffix(4)), createdAtMs: Self.nowMs())
        let sealed = try secrets.seal(secret, context: Self.secretContext(org, id))
        try await transaction([
            RedisCommand("HSET", Keyspace.byok(org, id), "provider", provider, "name", name, "secret", sealed, "display", key.display, "created", String(key.createdAtMs)),
            RedisCommand("SADD", Keyspace.byokSet(org), String(id)),
        ])
        return key
    }

    /// The organization's provider keys, without their secrets.
    public func providerKeys(org: UInt64) async throws -> [ProviderKey] {
        var result: [ProviderKey] = []
        for id in try await idSet(Keyspace.byokSet(org)) {
            let f = try await fields(Keyspace.byok(org, id), ["provider", "name", "display", "created"])
            guard let provider = f[0] else { continue }
            result.append(ProviderKey(id: id, provider: provider, name: f[1] ?? "", display: f[2] ?? "", createdAtMs: f[3].flatMap { Int64($0) } ?? 0))
        }
        return result
    }

    /// What a provider secret is sealed with as associated data: where it is stored, so that a
    /// sealed value copied to another record does not open there.
    static func secretContext(_ org: UInt64, _ id: UInt64) -> String { "bursar byok \(org) \(id)" }

    /// A provider key's secret, opened with the keyring (for the gateway's use; the admin API
    /// never returns it). Throws `not_found` for no such key, `conflict` when it cannot be opened.
    public func providerSecret(org: UInt64, _ id: UInt64) async throws -> String {
        guard let stored = try await fields(Keyspace.byok(org, id), ["secret"])[0] else { throw StoreError.notFound("provider key \(id)") }
        guard SecretKeyring.isSealed(stored) else { return stored }
        guard let secrets else { throw StoreError.conflict("provider key \(id) is encrypted and bursard holds no key-encryption key") }
        do { return try secrets.open(stored, context: Self.secretContext(org, id)) } catch {
            throw StoreError.conflict("provider key \(id): \(error)")
        }
    }

    /// Every stored provider secret, looked at (and with `rewrap`, sealed again under the
    /// keyring's current key where it is plaintext from before secrets were sealed, or sealed
    /// under an older key of the keyring). What bursard checks at start.
    public func reviewSecrets(rewrap: Bool) async throws -> SecretsReview {
        var review = SecretsReview()
        for org in try await idSet(Keyspace.orgs) {
            for id in try await idSet(Keyspace.byokSet(org)) {
                let hash = Keyspace.byok(org, id)
                guard let stored = try await fields(hash, ["secret"])[0] else { continue }
                let context = Self.secretContext(org, id)
                var plaintext: String?
                if let keyID = SecretKeyring.keyID(of: stored) {
                    review.sealed[keyID, default: 0] += 1
                    guard let secrets, secrets.holds(keyID) else { continue }
                    do {
                        let opened = try secrets.open(stored, context: context)
                        if keyID != secrets.currentID { plaintext = opened }
                    } catch {
                        review.unopenable.append("provider key \(id) of organization \(org): \(error)")
                    }
                } else {
                    review.plaintext += 1
                    plaintext = stored
                }
                guard rewrap, let secrets, let plaintext else { continue }
                // Only if the record is still there and unchanged (a delete or another instance's
                // rewrap in between wins).
                let replaced = try await redis.send(MetadataLua.rewrapSecret.evalCommand(
                    keys: [hash], args: [stored, try secrets.seal(plaintext, context: context)]))
                if replaced.int == 1 { review.rewrapped += 1 }
            }
        }
        return review
    }

    /// Deletes a provider key.
    public func deleteProviderKey(org: UInt64, _ id: UInt64) async throws {
        guard try await redis.send(RedisCommand("SREM", Keyspace.byokSet(org), String(id))).int == 1 else {
            throw StoreError.notFound("provider key \(id)")
        }
        try await redis.send(RedisCommand("DEL", Keyspace.byok(org, id)))
    }

    // MARK: MCP servers

    /// Registers an MCP server.
    public func addMCPServer(org: UInt64, name: String, url: String) async throws -> MCPServer {
        try validName(name, "MCP server name")
        try Self.validURL(url)
        let id = try await nextID("mcp", org: org)
        try await transaction([
            RedisCommand("HSET", Keyspace.mcp(org, id), "name", name, "url", url),
            RedisCommand("SADD", Keyspace.mcpSet(org), String(id)),
        ])
        return MCPServer(id: id, name: name, url: url)
    }

    /// An MCP server, or nil.
    public func mcpServer(org: UInt64, _ id: UInt64) async throws -> MCPServer? {
        guard try await redis.send(RedisCommand("SISMEMBER", Keyspace.mcpSet(org), String(id))).int == 1 else { return nil }
        let f = try await fields(Keyspace.mcp(org, id), ["name", "url"])
        guard let name = f[0], let url = f[1] else { return nil }
        return MCPServer(id: id, name: name, url: url)
    }

    /// The organization's MCP servers.
    public func mcpServers(org: UInt64) async throws -> [MCPServer] {
        var result: [MCPServer] = []
        for id in try await idSet(Keyspace.mcpSet(org)) {
            if let s = try await mcpServer(org: org, id) { result.append(s) }
        }
        return result
    }

    /// Renames an MCP server or changes its URL.
    public func updateMCPServer(org: UInt64, _ id: UInt64, name: String?, url: String?) async throws -> MCPServer {
        guard var server = try await mcpServer(org: org, id) else { throw StoreError.notFound("MCP server \(id)") }
        if let name { try validName(name, "MCP server name"); server.name = name }
        if let url { try Self.validURL(url); server.url = url }
        try await redis.send(RedisCommand("HSET", Keyspace.mcp(org, id), "name", server.name, "url", server.url))
        return server
    }

    /// Unregisters an MCP server.
    public func deleteMCPServer(org: UInt64, _ id: UInt64) async throws {
        guard try await redis.send(RedisCommand("SREM", Keyspace.mcpSet(org), String(id))).int == 1 else {
            throw StoreError.notFound("MCP server \(id)")
        }
        try await redis.send(RedisCommand("DEL", Keyspace.mcp(org, id)))
    }

    /// An MCP server URL: `http`, `https`, `ws` or `wss` (any case), `://`, a host part that does
    /// not start with `/`, `?` or `#`, no control character (Cc) or space (Zs) anywhere, 1…2048
    /// code points. proto/openapi.json's pattern says the same.
    public static func validURL(_ url: String) throws {
        // Compared scalar by scalar, as the document's pattern is: by Characters, a scheme's last
        // "/" followed by a combining scalar (an emoji modifier, an accent) is one grapheme, and
        // "Http://🏻…" would not start with "http://".
        let scalars = url.unicodeScalars
        let rest = ["https://", "http://", "wss://", "ws://"].first { scheme in
            scalars.count >= scheme.unicodeScalars.count
                && zip(scalars, scheme.unicodeScalars).allSatisfy { String($0).lowercased() == String($1) }
        }.map { scalars.dropFirst($0.unicodeScalars.count) }
        guard url.unicodeScalars.count <= 2048, let rest, let first = rest.first, !"/?#".unicodeScalars.contains(first),
              !url.unicodeScalars.contains(where: { isControlOrSpace($0) })
        else { throw StoreError.invalid("'\(url)' is not an http(s) or ws(s) URL") }
    }

    // MARK: Prompts

    /// The longest prompt text in Unicode code points: at most 256 KiB of UTF-8, and a body that
    /// carries it fits the admin API's 1 MiB even with every character escaped as `\uXXXX` pairs.
    public static let maxPromptText = 65_536

    /// Adds a version of a prompt (version 1 creates it; `mustExist` refuses creating, `mustBeNew`
    /// refuses adding to an existing one). Returns the new version number.
    @discardableResult
    public func addPromptVersion(org: UInt64, name: String, text: String, by user: UInt64, create: Bool) async throws -> Int64 {
        try validName(name, "prompt name")
        guard (1...Self.maxPromptText).contains(text.unicodeScalars.count) else {
            throw StoreError.invalid("prompt text must be 1…\(Self.maxPromptText) characters (Unicode code points)")
        }
        let exists = try await redis.send(RedisCommand("SISMEMBER", Keyspace.promptSet(org), name)).int == 1
        if create && exists { throw StoreError.conflict("prompt \(name) exists; add a version instead") }
        if !create && !exists { throw StoreError.notFound("prompt \(name)") }
        let entry = Self.joinList([String(Self.nowMs()), String(user)]) + "\u{1F}" + text
        let replies = try await redis.send([
            RedisCommand("RPUSH", Keyspace.prompt(org, name), entry),
            RedisCommand("SADD", Keyspace.promptSet(org), name),
        ])
        return replies[0].int ?? 0
    }

    /// A prompt's versions, oldest first; nil when there is no such prompt.
    public func prompt(org: UInt64, name: String) async throws -> [PromptVersion]? {
        guard try await redis.send(RedisCommand("SISMEMBER", Keyspace.promptSet(org), name)).int == 1 else { return nil }
        let items = (try await redis.send(RedisCommand("LRANGE", Keyspace.prompt(org, name), "0", "-1")).array ?? []).map { $0.string ?? "" }
        return items.enumerated().map { i, item in
            let parts = item.split(separator: "\u{1F}", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            return PromptVersion(
                version: Int64(i + 1), text: parts.count > 2 ? parts[2] : "",
                createdAtMs: Int64(parts[0]) ?? 0, createdBy: parts.count > 1 ? UInt64(parts[1]) ?? 0 : 0)
        }
    }

    /// Prompt names and their latest version numbers.
    public func prompts(org: UInt64) async throws -> [(name: String, latest: Int64)] {
        let names = (try await redis.send(RedisCommand("SMEMBERS", Keyspace.promptSet(org))).array ?? []).compactMap(\.string).sorted()
        var result: [(String, Int64)] = []
        for n in names { result.append((n, try await redis.send(RedisCommand("LLEN", Keyspace.prompt(org, n))).int ?? 0)) }
        return result
    }

    /// Deletes a prompt and all its versions.
    public func deletePrompt(org: UInt64, name: String) async throws {
        guard try await redis.send(RedisCommand("SREM", Keyspace.promptSet(org), name)).int == 1 else {
            throw StoreError.notFound("prompt \(name)")
        }
        try await redis.send(RedisCommand("DEL", Keyspace.prompt(org, name)))
    }
}
