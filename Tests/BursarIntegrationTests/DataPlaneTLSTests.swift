import BursarClient
import BursarServer
import BursarStore
import BursarWire
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import Testing

/// Mutual TLS on the TCP data plane (`--listen-tls-*`, SPEC 2): a test CA, bursard's certificate
/// and two gateways' — one issued by the CA bursard trusts, one by another CA — made by `openssl`
/// at test time.
@Suite("data plane: mutual TLS")
struct DataPlaneTLSTests {
    /// PEM files of a small PKI.
    struct PKI {
        let dir: String
        var ca: String { dir + "/ca.pem" }
        var serverCertificate: String { dir + "/server.pem" }
        var serverKey: String { dir + "/server.key" }
        var clientCertificate: String { dir + "/client.pem" }
        var clientKey: String { dir + "/client.key" }
        /// A client certificate from a CA bursard does not trust.
        var rogueCertificate: String { dir + "/rogue-client.pem" }
        var rogueKey: String { dir + "/rogue-client.key" }
        var rogueCA: String { dir + "/rogue-ca.pem" }

        static func make() throws -> PKI {
            let dir = NSTemporaryDirectory() + "bursar-pki-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            func openssl(_ arguments: [String]) throws {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                p.arguments = ["openssl"] + arguments
                p.currentDirectoryURL = URL(fileURLWithPath: dir)
                p.standardOutput = FileHandle.nullDevice
                p.standardError = FileHandle.nullDevice
                try p.run()
                p.waitUntilExit()
                try #require(p.terminationStatus == 0, "openssl \(arguments.joined(separator: " ")) failed (is openssl installed? deploy/install-deps.sh)")
            }
            let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
            for ca in ["ca", "rogue-ca"] {
                try openssl(["req", "-x509"] + ec + ["-keyout", "\(ca).key", "-out", "\(ca).pem", "-days", "1", "-subj", "/CN=bursar test \(ca)"])
            }
            try "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n".write(toFile: dir + "/server.ext", atomically: true, encoding: .utf8)
            try "extendedKeyUsage=clientAuth\n".write(toFile: dir + "/client.ext", atomically: true, encoding: .utf8)
            for (name, ca, ext, subject) in [
                ("server", "ca", "server.ext", "/CN=localhost"), ("client", "ca", "client.ext", "/CN=gateway-a"),
                ("rogue-client", "rogue-ca", "client.ext", "/CN=gateway-a"),
            ] {
                try openssl(["req"] + ec + ["-keyout", "\(name).key", "-out", "\(name).csr", "-subj", subject])
                try openssl([
                    "x509", "-req", "-in", "\(name).csr", "-CA", "\(ca).pem", "-CAkey", "\(ca).key", "-CAcreateserial",
                    "-out", "\(name).pem", "-days", "1", "-extfile", ext,
                ])
            }
            return PKI(dir: dir)
        }
    }

    /// What came back on a TLS (or plain) connection that sent one CHECK frame: bytes read before
    /// the server closed it, and whether it did within the wait.
    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received = Mutex<[UInt8]>([])
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
            received.withLock { $0 += bytes }
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }

    /// Connects to 127.0.0.1:`port` (TLS with `tls`, else plain TCP), sends a CHECK frame and
    /// returns the bytes that came back (over TLS: decrypted) before the server closed the
    /// connection (nil: it did not close within 10 s).
    static func attempt(port: Int, tls: NIOSSLContext?, _ request: CheckRequest) async throws -> [UInt8]? {
        let collector = Collector()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: "localhost")) }
                    try channel.pipeline.syncOperations.addHandler(collector)
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        var buffer = channel.allocator.buffer(capacity: 256)
        Frame(requestID: 1, body: .check(request)).encode(into: &buffer)
        channel.writeAndFlush(buffer, promise: nil)
        let closed = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask { try await channel.closeFuture.get(); return true }
            group.addTask { try await Task.sleep(for: .seconds(10)); return false }
            let first = try await group.next()!
            group.cancelAll()
            return first
        }
        if !closed { try? await channel.close() }
        return closed ? collector.received.withLock { $0 } : nil
    }

    @Test("a gateway with a certificate of the client CA is answered; without one, with another CA's, or in plain TCP it is refused in the handshake and nothing is evaluated")
    func mutualTLS() async throws {
        let pki = try PKI.make()
        defer { try? FileManager.default.removeItem(atPath: pki.dir) }
        try await withHarness { h in
            let w = try await h.world()
            let socket = NSTemporaryDirectory() + "bursar-tls-\(UUID().uuidString.prefix(8)).sock"
            defer { try? FileManager.default.removeItem(atPath: socket) }
            let tls = DataPlaneTLS(certificatePath: pki.serverCertificate, keyPath: pki.serverKey, clientCAPath: pki.ca)
            try tls.check()
            let server = DataPlaneServer(
                configuration: ListenerConfiguration(host: "127.0.0.1", port: 0, unixSocketPath: socket, tls: tls), engine: h.engine,
                group: MultiThreadedEventLoopGroup.singleton, logger: Harness.logger)
            let port = try await server.start()
            do {
                let gateway = try await BursarConnection.connect(
                    host: "127.0.0.1", port: port, tls: BursarClientTLS(caPath: pki.ca, certificatePath: pki.clientCertificate, keyPath: pki.clientKey))
                let first = try await gateway.check(.make(w.digest))
                #expect(first.allowed && first.keyID == w.key.key.id)
                #expect(try await gateway.settle(SettleRequest(reservation: first.reservation, inputTokens: 1, outputTokens: 1, cost: 10)).status == .applied)

                // Trusting bursard's certificate but presenting none, presenting one of another
                // CA, or not speaking TLS at all: the connection ends, no answer comes back.
                var trustOnly = TLSConfiguration.makeClientConfiguration()
                trustOnly.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(pki.ca))
                var rogue = trustOnly
                rogue.certificateChain = try NIOSSLCertificate.fromPEMFile(pki.rogueCertificate).map { .certificate($0) }
                rogue.privateKey = .privateKey(try NIOSSLPrivateKey(file: pki.rogueKey, format: .pem))
                for (name, context) in [("no client certificate", try NIOSSLContext(configuration: trustOnly)),
                                        ("another CA's certificate", try NIOSSLContext(configuration: rogue)), ("plain TCP", nil)] {
                    let bytes = try await Self.attempt(port: port, tls: context, .make(w.digest))
                    // Over TLS nothing is decrypted; in plain TCP what comes back is at most the
                    // handshake's alert record (content type 21), never a frame.
                    let answered = bytes.map { $0.isEmpty || (context == nil && $0.first == 21 && $0.count <= 7) }
                    #expect(answered == true, "\(name): the server closes the connection without a frame: \(String(describing: bytes))")
                }
                // A gateway refusing bursard's certificate (another CA) never sends its frame.
                await #expect(throws: (any Error).self) {
                    let c = try await BursarConnection.connect(
                        host: "127.0.0.1", port: port,
                        tls: BursarClientTLS(caPath: pki.rogueCA, certificatePath: pki.clientCertificate, keyPath: pki.clientKey))
                    _ = try await c.check(.make(w.digest))
                }

                // Nothing of theirs reached the engine: the next CHECK is this epoch's second.
                let second = try await gateway.check(.make(w.digest))
                #expect(try second.allowed && ReservationSequence.counter(of: h.name(second).sequence) == 2)
                await gateway.close()

                // The unix socket stays plain: its file permissions guard it.
                let local = try await BursarConnection.connect(unixSocketPath: socket)
                #expect(try await local.check(.make(w.digest)).allowed)
                await local.close()
            } catch {
                await server.stop()
                throw error
            }
            await server.stop()
        }
    }

    @Test("a TLS file that is missing, or not what its flag needs, is named with its flag")
    func badFiles() throws {
        let pki = try PKI.make()
        defer { try? FileManager.default.removeItem(atPath: pki.dir) }
        func refusal(_ tls: DataPlaneTLS) -> String {
            do {
                try tls.check()
                return "accepted"
            } catch {
                return error.description
            }
        }
        let good = DataPlaneTLS(certificatePath: pki.serverCertificate, keyPath: pki.serverKey, clientCAPath: pki.ca)
        #expect(refusal(good) == "accepted")
        var missing = good
        missing.certificatePath = pki.dir + "/nope.pem"
        #expect(refusal(missing).hasPrefix("--listen-tls-cert \(pki.dir)/nope.pem: cannot read"))
        var notKey = good
        notKey.keyPath = pki.ca
        #expect(refusal(notKey).hasPrefix("--listen-tls-key \(pki.ca): cannot read a PEM private key"))
        var notCA = good
        notCA.clientCAPath = pki.serverKey
        #expect(refusal(notCA).hasPrefix("--listen-tls-client-ca \(pki.serverKey)"))
        var mismatched = good
        mismatched.keyPath = pki.clientKey
        #expect(refusal(mismatched).hasPrefix("--listen-tls-cert/--listen-tls-key"))
    }
}
