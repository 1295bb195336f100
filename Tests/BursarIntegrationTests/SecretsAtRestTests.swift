import BursarRedis
import BursarStore
import Foundation
import Testing

/// Provider (BYOK) secrets at rest: sealed with AES-256-GCM under a key-encryption key before
/// they reach Redis (`SecretKeyring`), checked by bursard at start, rotated by restarting with
/// the new key first.
@Suite("secrets at rest")
struct SecretsAtRestTests {
    static func key() -> String { SecretKeyring.newKey() }

    static func keyring(_ lines: String) throws -> SecretKeyring { try SecretKeyring(parsing: lines, source: "test") }

    func refusal(_ text: String) -> String {
        do {
            _ = try SecretKeyring(parsing: text, source: "keys.txt")
            return "accepted"
        } catch {
            return error.description
        }
    }

    @Test("the keyring's text form: errors name the line and never the key; the first key seals, every key opens, a value opens only where it was stored")
    func keyring() throws {
        let a = Self.key(), b = Self.key()
        #expect(refusal("") == "keys.txt: no key (expected lines 'id:base64-key')")
        #expect(refusal("# only a comment\n\n") == "keys.txt: no key (expected lines 'id:base64-key')")
        #expect(refusal("\(a)") == "keys.txt line 1: expected 'id:base64-key'")
        #expect(refusal("# c\nbad id:\(a)") == "keys.txt line 2: key id 'bad id' must be 1…32 characters of A-Z a-z 0-9 _ -")
        let short = Data(repeating: 7, count: 16).base64EncodedString()
        let message = refusal("k1:\(short)")
        #expect(message == "keys.txt line 1: key 'k1' is not 32 bytes in base64 (AES-256)")
        #expect(!message.contains(short))
        #expect(refusal("k1:\(a)\nk1:\(b)") == "keys.txt line 2: key id 'k1' appears twice")

        let old = try Self.keyring("k1:\(a)")
        let sealed = try old.seal("sk-proj-SECRET", context: "bursar byok 1 1")
        #expect(sealed.hasPrefix("enc:v1:k1:") && !sealed.contains("SECRET"))
        #expect(SecretKeyring.isSealed(sealed) && SecretKeyring.keyID(of: sealed) == "k1")
        #expect(try old.open(sealed, context: "bursar byok 1 1") == "sk-proj-SECRET")
        // Two seals of one secret differ (a fresh nonce each).
        #expect(try old.seal("sk-proj-SECRET", context: "bursar byok 1 1") != sealed)
        // Another record (another organization's), another key under the same id, an altered value: no.
        #expect(throws: SecretKeyringError.self) { try old.open(sealed, context: "bursar byok 2 1") }
        #expect(throws: SecretKeyringError.self) { try Self.keyring("k1:\(b)").open(sealed, context: "bursar byok 1 1") }
        var bytes = Array(sealed.utf8)
        bytes[bytes.count - 3] = bytes[bytes.count - 3] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(throws: SecretKeyringError.self) { try old.open(String(decoding: bytes, as: UTF8.self), context: "bursar byok 1 1") }

        // Rotation: the new key first seals, the old one still opens.
        let rotated = try Self.keyring("# rotated\nk2:\(b)\nk1:\(a)\n")
        #expect(rotated.currentID == "k2" && rotated.ids == ["k2", "k1"])
        #expect(try rotated.open(sealed, context: "bursar byok 1 1") == "sk-proj-SECRET")
        #expect(SecretKeyring.keyID(of: try rotated.seal("x", context: "c")) == "k2")
        let newOnly = try Self.keyring("k2:\(b)")
        do {
            _ = try newOnly.open(sealed, context: "bursar byok 1 1")
            Issue.record("opened without its key")
        } catch {
            #expect(error.description == "sealed under key 'k1', which the keyring does not hold")
        }
    }

    static func render(_ value: RedisValue) -> String {
        if let array = value.array { return array.map(render).joined(separator: " ") }
        return value.string ?? "\(value)"
    }

    /// Every value in Redis, as text: what an AOF copy or a reader of Redis would see.
    static func everything(_ redis: RedisClient) async throws -> String {
        var text = ""
        for key in try await redis.send(RedisCommand("KEYS", "*")).array?.compactMap(\.string) ?? [] {
            let type = try await redis.send(RedisCommand("TYPE", key)).string ?? ""
            let value: RedisValue = switch type {
            case "string": try await redis.send(RedisCommand("GET", key))
            case "hash": try await redis.send(RedisCommand("HGETALL", key))
            case "set": try await redis.send(RedisCommand("SMEMBERS", key))
            case "zset": try await redis.send(RedisCommand("ZRANGE", key, "0", "-1", "WITHSCORES"))
            case "list": try await redis.send(RedisCommand("LRANGE", key, "0", "-1"))
            default: .null
            }
            text += "\(key) \(Self.render(value))\n"
        }
        return text
    }

    @Test("a provider secret is in Redis only sealed (every key scanned), opens with the keyring, and cannot be stored without one; a rewrap seals plaintext and older keys' values under the current key")
    func store() async throws {
        let server = try RedisServerProcess.ephemeral()
        defer { server.stop() }
        let redis = RedisClient(configuration: RedisClientConfiguration(endpoint: server.endpoint), logger: Harness.logger)
        defer { redis.shutdown() }
        let a = Self.key(), b = Self.key()
        let store = MetadataStore(redis: redis, secrets: try Self.keyring("k1:\(a)"))
        let org = try await store.createOrganization(name: "acme")
        let secret = "sk-proj-AT-REST-\(UUID().uuidString)"
        let added = try await store.addProviderKey(org: org.id, provider: "openai", name: "main", secret: secret)
        let dump = try await Self.everything(redis)
        #expect(dump.contains("enc:v1:k1:"), "\(dump)")
        #expect(!dump.contains(secret) && !dump.contains(String(secret.dropFirst(8).prefix(12))), "\(dump)")
        #expect(try await store.providerSecret(org: org.id, added.id) == secret)

        // Without a keyring nothing is stored, and nothing sealed opens.
        let bare = MetadataStore(redis: redis)
        await #expect(throws: StoreError.self) { _ = try await bare.addProviderKey(org: org.id, provider: "openai", name: "x", secret: "sk-proj-12345678") }
        await #expect(throws: StoreError.self) { _ = try await bare.providerSecret(org: org.id, added.id) }
        #expect(try await bare.reviewSecrets(rewrap: false) == { var r = SecretsReview(); r.sealed = ["k1": 1]; return r }())

        // A secret written before secrets were sealed (plain text), as an older bursard left it.
        let legacy = try await store.addProviderKey(org: org.id, provider: "anthropic", name: "legacy", secret: "placeholder")
        try await redis.send(RedisCommand("HSET", Keyspace.byok(org.id, legacy.id), "secret", "sk-ant-LEGACY-0123456789"))
        // Rotation: k2 first; the review seals the plaintext and k1's value under k2.
        let rotated = MetadataStore(redis: redis, secrets: try Self.keyring("k2:\(b)\nk1:\(a)"))
        var expected = SecretsReview()
        expected.plaintext = 1
        expected.sealed = ["k1": 1]
        expected.rewrapped = 2
        #expect(try await rotated.reviewSecrets(rewrap: true) == expected)
        let after = try await Self.everything(redis)
        #expect(!after.contains("sk-ant-LEGACY") && !after.contains("enc:v1:k1:") && after.components(separatedBy: "enc:v1:k2:").count == 3, "\(after)")
        // The new key alone opens both now; a second review has nothing to do.
        let newOnly = MetadataStore(redis: redis, secrets: try Self.keyring("k2:\(b)"))
        #expect(try await newOnly.providerSecret(org: org.id, added.id) == secret)
        #expect(try await newOnly.providerSecret(org: org.id, legacy.id) == "sk-ant-LEGACY-0123456789")
        var clean = SecretsReview()
        clean.sealed = ["k2": 2]
        #expect(try await newOnly.reviewSecrets(rewrap: true) == clean)
        // A sealed value moved onto another record does not open there.
        let other = try await store.createOrganization(name: "other")
        let theirs = try await newOnly.addProviderKey(org: other.id, provider: "openai", name: "theirs", secret: "sk-proj-THEIRS-123")
        let mine = try await redis.send(RedisCommand("HGET", Keyspace.byok(org.id, added.id), "secret")).string!
        try await redis.send(RedisCommand("HSET", Keyspace.byok(other.id, theirs.id), "secret", mine))
        await #expect(throws: StoreError.self) { _ = try await newOnly.providerSecret(org: other.id, theirs.id) }
        #expect(try await newOnly.reviewSecrets(rewrap: false).unopenable.count == 1)
    }

    @Test("bursard at start: sealed secrets without their key stop it naming the key id; with the keys it starts and rewraps under the first; a file that cannot be used is named")
    func startUp() async throws {
        let server = try RedisServerProcess.ephemeral()
        defer { server.stop() }
        let redis = RedisClient(configuration: RedisClientConfiguration(endpoint: server.endpoint), logger: Harness.logger)
        defer { redis.shutdown() }
        let a = Self.key(), b = Self.key()
        let store = MetadataStore(redis: redis, secrets: try Self.keyring("k1:\(a)"))
        let org = try await store.createOrganization(name: "acme")
        let added = try await store.addProviderKey(org: org.id, provider: "openai", name: "main", secret: "sk-proj-START-UP-0001")
        let dir = NSTemporaryDirectory() + "bursar-keys-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let oldFile = dir + "/old.keys", rotatedFile = dir + "/rotated.keys", newFile = dir + "/new.keys"
        try "k1:\(a)\n".write(toFile: oldFile, atomically: true, encoding: .utf8)
        try "# k2 seals, k1 still opens\nk2:\(b)\nk1:\(a)\n".write(toFile: rotatedFile, atomically: true, encoding: .utf8)
        try "k2:\(b)\n".write(toFile: newFile, atomically: true, encoding: .utf8)
        let base = ["--redis", server.endpoint.description, "--ops", "127.0.0.1:0"]

        // No keys: refused, naming the key id and the flag; nothing of the key in the log.
        let none = try await TestBursard.runToExit(base + ["--listen", "127.0.0.1:0"])
        #expect(none.code == 1, "\(none.log)")
        #expect(none.log.contains("1 provider secrets in Redis are sealed under key ids k1, which bursard was not given"), "\(none.log)")
        #expect(none.log.contains("--secrets-key-file"))
        // The right key, from the file or the environment: it starts.
        let right = try await TestBursard.start(["--redis", server.endpoint.description, "--secrets-key-file", oldFile])
        right.stop()
        let fromEnvironment = try await TestBursard.start(["--redis", server.endpoint.description], environment: ["BURSARD_SECRETS_KEYS": "k1:\(a)"])
        #expect(!fromEnvironment.log.contains(a))
        fromEnvironment.stop()
        // Only the new key, before the rotation: refused, naming k1.
        let early = try await TestBursard.runToExit(base + ["--listen", "127.0.0.1:0", "--secrets-key-file", newFile])
        #expect(early.code == 1 && early.log.contains("sealed under key ids k1"), "\(early.log)")
        // Rotated: starts, and seals the secret again under k2.
        let rotated = try await TestBursard.start(["--redis", server.endpoint.description, "--secrets-key-file", rotatedFile])
        rotated.stop()
        let stored = try await redis.send(RedisCommand("HGET", Keyspace.byok(org.id, added.id), "secret")).string ?? ""
        #expect(stored.hasPrefix("enc:v1:k2:"), "\(stored)")
        #expect(try await MetadataStore(redis: redis, secrets: try Self.keyring("k2:\(b)")).providerSecret(org: org.id, added.id) == "sk-proj-START-UP-0001")
        // Now the old key can go: only k2 starts; only k1 does not.
        let done = try await TestBursard.start(["--redis", server.endpoint.description, "--secrets-key-file", newFile])
        done.stop()
        let stale = try await TestBursard.runToExit(base + ["--listen", "127.0.0.1:0", "--secrets-key-file", oldFile])
        #expect(stale.code == 1 && stale.log.contains("sealed under key ids k2"), "\(stale.log)")

        // Files and settings that cannot be used: named, without key material.
        let bad = dir + "/bad.keys"
        try "k1:not-base64!\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let unreadable = try await TestBursard.runToExit(base + ["--listen", "127.0.0.1:0", "--secrets-key-file", bad])
        #expect(unreadable.code == 1 && unreadable.log.contains("--secrets-key-file \(bad) line 1: key 'k1' is not 32 bytes in base64"), "\(unreadable.log)")
        let missing = try await TestBursard.runToExit(base + ["--listen", "127.0.0.1:0", "--secrets-key-file", dir + "/nope.keys"])
        #expect(missing.code == 1 && missing.log.contains("--secrets-key-file \(dir)/nope.keys: cannot read it"), "\(missing.log)")
        let both = try await TestBursard.runToExit(base + ["--listen", "127.0.0.1:0", "--secrets-key-file", newFile], environment: ["BURSARD_SECRETS_KEYS": "k2:\(b)"])
        #expect(both.code != 0 && both.log.contains("--secrets-key-file and --secrets-keys are two ways to give the same keys: give one"), "\(both.log)")
    }
}
