import AsyncHTTPClient
import BursarAdmin
import Foundation
import HummingbirdTLS
import NIOCore
import NIOPosix
import ServiceLifecycle
import Testing

/// The ops port over TLS (`--ops-tls-cert`/`--ops-tls-key`): a self-signed certificate made by
/// `openssl` at test time, trusted by an AsyncHTTPClient that then calls the admin API.
@Suite("ops port: TLS")
struct OpsTLSTests {
    /// A self-signed certificate for 127.0.0.1 and localhost and its key, as PEM files.
    static func selfSigned() throws -> (certificate: String, key: String) {
        let dir = NSTemporaryDirectory() + "bursar-tls-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let (certificate, key) = (dir + "/ops.pem", dir + "/ops.key")
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        openssl.arguments = [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", certificate, "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        try #require(openssl.terminationStatus == 0, "openssl req failed (is openssl installed? deploy/install-deps.sh)")
        return (certificate, key)
    }

    @Test("with a certificate and key the admin API answers over HTTPS to a client that trusts the certificate, and not over plain HTTP")
    func https() async throws {
        let (certificate, key) = try Self.selfSigned()
        try OpsServer.checkTLS(OpsTLS(certificatePath: certificate, keyPath: key))
        try await withAdmin { h in
            let token = try await h.world().owner.token
            let (ports, bound) = AsyncStream.makeStream(of: Int.self)
            let app = try OpsServer.application(
                configuration: OpsConfiguration(host: "127.0.0.1", port: 0, tls: OpsTLS(certificatePath: certificate, keyPath: key)),
                service: h.service, group: MultiThreadedEventLoopGroup.singleton, logger: AdminHarness.logger,
                onRunning: { port in bound.yield(port) })
            let group = ServiceGroup(services: [app], gracefulShutdownSignals: [], logger: AdminHarness.logger)
            let running = Task { try await group.run() }
            defer { running.cancel() }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())

            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(certificate))
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(tlsConfiguration: tls))
            var request = HTTPClientRequest(url: "https://127.0.0.1:\(port)/v1/me")
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
            let response = try await client.execute(request, timeout: .seconds(10))
            #expect(response.status.code == 200)
            let body = try await response.body.collect(upTo: 1 << 20)
            #expect(String(buffer: body).contains("\"kind\":\"user\""))

            // Plain HTTP to the TLS port gets no HTTP answer.
            let plain = HTTPClient(eventLoopGroupProvider: .singleton)
            await #expect(throws: (any Error).self) {
                _ = try await plain.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/me"), timeout: .seconds(5))
            }
            try await plain.shutdown()
            try await client.shutdown()
            await group.triggerGracefulShutdown()
            _ = try? await running.value
        }
    }

    @Test("a certificate or key file that is missing or not PEM stops start-up with a message naming the flag")
    func badFiles() throws {
        let (certificate, key) = try Self.selfSigned()
        #expect(throws: OpsTLSError.self) { try OpsServer.checkTLS(OpsTLS(certificatePath: "/nonexistent/ops.pem", keyPath: key)) }
        do {
            try OpsServer.checkTLS(OpsTLS(certificatePath: certificate, keyPath: certificate))
            Issue.record("a certificate accepted as a key")
        } catch let e as OpsTLSError {
            #expect(e.description.hasPrefix("--ops-tls-key \(certificate)"), "\(e)")
        }
    }
}
