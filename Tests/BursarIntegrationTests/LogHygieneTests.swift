import BursarClient
import BursarRedis
import BursarStore
import BursarWire
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import NIOCore
import NIOPosix
import Testing

/// No log line, at any level, carries a key secret, a key digest, a personal access token, the
/// operator token, their digests or a BYOK secret.
@Suite("log hygiene")
struct LogHygieneTests {
    /// A JSON call to the admin API; the decoded body and the status.
    func call(_ port: Int, _ method: String, _ path: String, token: String? = nil, _ body: [String: Any]? = nil, raw: String? = nil) async throws -> (status: Int, json: [String: Any]) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let body {
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = try JSONSerialization.data(withJSONObject: body)
        }
        if let raw {
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = Data(raw.utf8)
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        return (status, json)
    }

    /// Sends raw bytes on a new data-plane connection and waits until the server closes it.
    func sendRaw(_ bytes: [UInt8], port: Int) async throws {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
        let closed = channel.closeFuture
        let end = ContinuousClock.now + .seconds(5)
        while channel.isActive && ContinuousClock.now < end { try await Task.sleep(for: .milliseconds(10)) }
        try? await channel.close()
        _ = try? await closed.get()
    }

    @Test("at --log-level trace, no line names a secret, digest or token, through admin calls, CHECK/SETTLE/RELEASE, unknown keys and bad frames")
    func noSecretsInLogs() async throws {
        let redis = try RedisServerProcess.ephemeral()
        defer { redis.stop() }
        // The key-encryption key of the BYOK secret below, from the environment: it must not be logged either.
        let kek = SecretKeyring.newKey()
        let bursard = try await TestBursard.start(
            ["--redis", redis.endpoint.description, "--log-level", "trace", "--deadline-ms", "5000"], environment: ["BURSARD_SECRETS_KEYS": "hygiene:\(kek)"])
        defer { bursard.stop() }
        let ops = try await bursard.opsPort()

        // The admin API: bootstrap, a member, a project, keys created, rotated and revoked, BYOK.
        let boot = try await call(ops, "POST", "/v1/bootstrap", ["org": "Hygiene", "owner_email": "ada@hygiene.test"])
        try #require(boot.status == 201, "\(boot)")
        let operatorToken = try #require(boot.json["operator_token"] as? String)
        let owner = try #require(boot.json["owner_token"] as? String)
        let org = try #require((boot.json["organization"] as? [String: Any])?["id"] as? Int)
        let invited = try await call(ops, "POST", "/v1/orgs/\(org)/members", token: owner, ["email": "ben@hygiene.test", "name": "Ben"])
        let acceptToken = try #require(invited.json["accept_token"] as? String, "\(invited)")
        let accepted = try await call(ops, "POST", "/v1/invitations/accept", ["token": acceptToken])
        let ben = try #require(accepted.json["token"] as? String, "\(accepted)")
        let project = try #require(try await call(ops, "POST", "/v1/orgs/\(org)/projects", token: owner, ["name": "prod"]).json["id"] as? Int)
        var secrets: [String] = []
        var keyIDs: [Int] = []
        for name in ["one", "two"] {
            let created = try await call(ops, "POST", "/v1/orgs/\(org)/projects/\(project)/keys", token: owner, ["name": name])
            try #require(created.status == 201, "\(created)")
            secrets.append(try #require(created.json["secret"] as? String))
            keyIDs.append(try #require((created.json["key"] as? [String: Any])?["id"] as? Int))
        }
        let rotated = try await call(ops, "POST", "/v1/orgs/\(org)/keys/\(keyIDs[0])/rotate", token: owner)
        secrets.append(try #require(rotated.json["secret"] as? String, "\(rotated)"))
        #expect(try await call(ops, "POST", "/v1/orgs/\(org)/keys/\(keyIDs[1])/revoke", token: owner).status == 200)
        let byokSecret = "sk-proj-HYGIENE-\(UUID().uuidString)"
        #expect(try await call(ops, "POST", "/v1/orgs/\(org)/byok", token: owner, ["provider": "openai", "name": "main", "secret": byokSecret]).status == 201)
        // Refusals and errors: a wrong token, a member acting beyond their role, a bad body.
        let forged = "pat-br-" + String(repeating: "Z", count: 43)
        #expect(try await call(ops, "GET", "/v1/me", token: forged).status == 401)
        #expect(try await call(ops, "POST", "/v1/orgs/\(org)/keys/\(keyIDs[0])/revoke", token: ben).status == 404)
        #expect(try await call(ops, "POST", "/v1/orgs/\(org)/projects/\(project)/keys", token: owner, ["name": 5]).status == 400)
        let truncated = "sk-proj-TRUNCATED-\(UUID().uuidString)"
        #expect(try await call(ops, "POST", "/v1/orgs/\(org)/byok", token: owner, raw: "{\"provider\": \"openai\", \"name\": \"b\", \"secret\": \"\(truncated)").status == 400)
        #expect(try await call(ops, "POST", "/v1/orgs/\(org)/byok", token: owner, ["provider": 7, "name": "c", "secret": truncated]).status == 400)
        // A field the body does not have, holding the secret: the refusal names the field, not the value.
        #expect(try await call(ops, "POST", "/v1/orgs/\(org)/byok", token: owner, ["provider": "openai", "name": "d", "secret": truncated, "secret_copy": truncated]).status == 400)
        #expect(try await call(ops, "GET", "/v1/orgs", token: operatorToken).status == 200)

        // The data plane: the rotated key works; the replaced, revoked and never-issued ones do not.
        let c = try await BursarConnection.connect(host: "127.0.0.1", port: bursard.port)
        let allowed = try await c.check(.make(KeyDigest(secret: secrets[2]), cost: 1_000))
        #expect(allowed.allowed)
        #expect(try await c.settle(SettleRequest(reservation: allowed.reservation, inputTokens: 1, outputTokens: 1, cost: 500)).status == .applied)
        let second = try await c.check(.make(KeyDigest(secret: secrets[2]), cost: 1_000))
        #expect(try await c.release(second.reservation).status == .applied)
        #expect(try await c.check(.make(KeyDigest(secret: secrets[0]))).reason == .unknownKey)
        #expect(try await c.check(.make(KeyDigest(secret: secrets[1]))).reason == .keyRevoked)
        let stranger = "sk-br-" + String(repeating: "q", count: 43)
        #expect(try await c.check(.make(KeyDigest(secret: stranger))).reason == .unknownKey)
        await c.close()
        // Bad frames: a CHECK carrying a real digest with a wrong version byte, then garbage.
        var frame = ByteBuffer()
        try FrameEncoder().encode(data: Frame(requestID: 9, body: .check(.make(KeyDigest(secret: secrets[2])))), out: &frame)
        var bytes = Array(frame.readableBytesView)
        bytes[2] = 0x7f
        try await sendRaw(bytes, port: bursard.port)
        try await sendRaw(Array("GET / HTTP/1.1\r\n\r\n".utf8), port: bursard.port)

        bursard.child.signal(SIGTERM)
        #expect(await bursard.waitForExit(within: .seconds(15)))
        let log = bursard.log
        // The scan below means something only if request-level lines were written.
        #expect(log.contains(" trace ") && log.contains("type=check "), "requests are logged at trace")
        #expect(log.contains("decision=key_revoked"), "answers are logged at debug")
        #expect(log.contains("protocol error"), "bad frames are logged at debug")

        let tokens = [operatorToken, owner, ben, forged, acceptToken]
        var forbidden: [(what: String, text: String)] = []
        for secret in secrets + [stranger] {
            let digest = KeyDigest(secret: secret).hex
            forbidden += [("secret", secret), ("secret body", String(secret.dropFirst(6).prefix(16))),
                          ("digest", digest), ("DIGEST", digest.uppercased()), ("digest prefix", String(digest.prefix(16)))]
        }
        for token in tokens {
            let digest = KeyDigest(secret: token).hex
            forbidden += [("token", token), ("token body", String(token[token.range(of: "-br-")!.upperBound...].prefix(16))),
                          ("token digest", digest), ("token digest prefix", String(digest.prefix(16)))]
        }
        forbidden += [("BYOK secret", byokSecret), ("BYOK secret in a bad body", truncated), ("key-encryption key", kek),
                      ("key-encryption key prefix", String(kek.prefix(16)))]
        for (what, text) in forbidden {
            #expect(text.count >= 12, "a \(what) probe too short to mean anything")
            let lines = log.split(separator: "\n").filter { $0.contains(text) }
            #expect(lines.isEmpty, "a log line carries a \(what): \(lines.first ?? "")")
        }
    }
}
