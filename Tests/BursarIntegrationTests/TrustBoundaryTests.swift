import BursarClient
import BursarLimits
import BursarRedis
import BursarServer
@_spi(Testing) import BursarStore
import BursarWire
import NIOPosix
import Testing

/// The data plane's trust boundary (SPEC §5, §6.5): reservation ids are capabilities nobody can
/// make up, and a gateway credential confines a connection to its organizations.
@Suite("Data-plane trust boundary against real Redis")
struct TrustBoundaryTests {
    /// The protocol error a request failed with, if it failed with one.
    func serverError(_ error: any Error) -> ProtocolErrorCode? {
        (error as? BursarClientError)?.serverError?.code
    }

    @Test("10,000 SETTLEs of ids guessed around three real ones: none applied, the budget untouched, the holders settle")
    func guessing() async throws {
        try await withHarness { h in
            // A $1 daily budget; three reservations of $0.30 each, as the issue's exploit made.
            let w = try await h.world(limits: KeyLimits(budget: 1_000_000_000, period: .daily))
            let holder = try await h.connect()
            var real: [CheckResult] = []
            for _ in 0..<3 {
                let r = try await holder.check(.make(w.digest, cost: 300_000_000))
                #expect(r.allowed)
                real.append(r)
            }
            #expect(try await holder.check(.make(w.digest, cost: 300_000_000)).reason == .keyBudget)
            let names = try real.map { try #require(h.engine.reservation(fromClient: $0.reservation)) }
            #expect(names.allSatisfy { $0.orgID == w.org.id })
            // The client's ids show neither the organization nor the sequence, nor any order.
            for (id, name) in zip(real.map(\.reservation), names) { #expect(id.orgID != name.orgID && id.sequence != name.sequence) }

            var guesses: [ReservationID] = []
            for (id, name) in zip(real.map(\.reservation), names) {
                // The names in clear (the old id scheme), and their neighbours.
                for d in 0..<200 { guesses.append(ReservationID(orgID: name.orgID, sequence: name.sequence &+ UInt64(d) &- 100)) }
                // Neighbours of the real id, in each half.
                for d in 1...700 {
                    guesses.append(ReservationID(orgID: id.orgID, sequence: id.sequence &+ UInt64(d)))
                    guesses.append(ReservationID(orgID: id.orgID, sequence: id.sequence &- UInt64(d)))
                    guesses.append(ReservationID(orgID: id.orgID &+ UInt64(d), sequence: id.sequence))
                }
                // Every single-bit flip.
                for bit in 0..<64 {
                    guesses.append(ReservationID(orgID: id.orgID ^ (1 << UInt64(bit)), sequence: id.sequence))
                    guesses.append(ReservationID(orgID: id.orgID, sequence: id.sequence ^ (1 << UInt64(bit))))
                }
            }
            var rng = SystemRandomNumberGenerator()
            while guesses.count < 10_000 { guesses.append(ReservationID(orgID: rng.next(), sequence: rng.next())) }
            #expect(guesses.count == 10_000)
            #expect(Set(guesses).isDisjoint(with: real.map(\.reservation)))

            let attacker = try await h.connect()
            var statuses: [ReservationStatus: Int] = [:]
            for chunk in stride(from: 0, to: guesses.count, by: 500) {
                let futures = guesses[chunk..<min(chunk + 500, guesses.count)].map {
                    attacker.request(.settle(SettleRequest(reservation: $0, inputTokens: 0, outputTokens: 0, cost: 0)))
                }
                for f in futures {
                    guard case .settleResult(let r) = try await f.get().body else { Issue.record("not a SETTLE_RESULT"); continue }
                    statuses[r.status, default: 0] += 1
                }
            }
            // None applied. (A made-up id opens to some name once in 262,144 tries, SPEC §5; one
            // that opened to a local admission's name would be answered `store_unavailable`, as a
            // local admission whose replay may still be coming is, §13.9: it never applies.)
            #expect(statuses[.applied] == nil && statuses.values.reduce(0, +) == 10_000, "\(statuses)")
            #expect(Set(statuses.keys).isSubset(of: [.unknown, .storeUnavailable]), "\(statuses)")
            #expect(statuses[.unknown, default: 0] >= 9_990, "\(statuses)")
            // Nothing moved: the budget is still spent by the three estimates, and the holder's
            // own SETTLEs apply.
            #expect(try await holder.check(.make(w.digest, cost: 300_000_000)).reason == .keyBudget)
            for r in real {
                let s = try await holder.settle(SettleRequest(reservation: r.reservation, inputTokens: 1, outputTokens: 1, cost: 100_000_000))
                #expect(s.status == .applied && s.costDelta == -200_000_000)
            }
            #expect(try await holder.check(.make(w.digest, cost: 300_000_000)).allowed)
            await holder.close()
            await attacker.close()
        }
    }

    @Test("A reservation made through one bursard is settled through another: the key is the installation's, from Redis")
    func anyInstance() async throws {
        try await withHarness { h in
            let w = try await h.world()
            let other = DecisionEngine(
                redis: h.redis, limiter: Limiter(clock: .testFrozen), configuration: EngineConfiguration(deadline: .seconds(10), instanceLease: .seconds(60)),
                logger: Harness.logger)
            await other.prepare()
            let maintenance = other.startMaintenance()
            defer { maintenance.cancel() }
            let server = DataPlaneServer(
                configuration: ListenerConfiguration(host: "127.0.0.1", port: 0), engine: other,
                group: MultiThreadedEventLoopGroup.singleton, logger: Harness.logger)
            let port = try await server.start()
            let first = try await h.connect()
            let second = try await BursarConnection.connect(host: "127.0.0.1", port: port)
            let r = try await first.check(.make(w.digest))
            #expect(r.allowed)
            // The harness's 10 s deadline on both: a loaded machine may not answer within 50 ms.
            let released = try await second.release(r.reservation).status
            #expect(released == .applied, "\(released)")
            let again = try await first.release(r.reservation).status
            #expect(again == .alreadyReleased, "\(again)")
            #expect(try await h.redis.send(RedisCommand("GET", Keyspace.reservationKey)).string.flatMap { ReservationSeal(text: $0) } != nil)
            await first.close()
            await second.close()
            await server.shutdown(timeout: .milliseconds(200))
            await other.shutdown(timeout: .milliseconds(200))
        }
    }

    @Test("A gateway credential scoped to A: B's keys are unknown, B's reservations unknown; A's work")
    func scoped() async throws {
        try await withHarness { h in
            let a = try await h.world()
            let b = try await h.world()
            let (credential, secret) = try await h.store.createGatewayCredential(name: "gw-a", organizations: [a.org.id])
            #expect(credential.organizations == [a.org.id] && secret.hasPrefix("bgw_"))
            #expect(try await h.redis.send(RedisCommand("HGET", Keyspace.gatewayCredentials, credential.digest)).string?.contains(secret) == false)

            let unscoped = try await h.connect()
            let gateway = try await h.connect()
            try await gateway.authenticate(credential: secret)

            let ofB = try await unscoped.check(.make(b.digest))
            #expect(ofB.allowed)
            // CHECK of B's key: as a digest no key has: nothing evaluated, no ids.
            let denied = try await gateway.check(.make(b.digest))
            #expect(denied.reason == .unknownKey && denied.orgID == 0 && denied.keyID == 0)
            // SETTLE and RELEASE of B's reservation: unknown, and it stays open.
            #expect(try await gateway.settle(SettleRequest(reservation: ofB.reservation, inputTokens: 0, outputTokens: 0, cost: 0)).status == .unknown)
            #expect(try await gateway.release(ofB.reservation).status == .unknown)
            #expect(try await unscoped.settle(SettleRequest(reservation: ofB.reservation, inputTokens: 1, outputTokens: 1, cost: 10)).status == .applied)

            // A's key works on the scoped connection, through and through.
            let ofA = try await gateway.check(.make(a.digest))
            #expect(ofA.allowed && ofA.orgID == a.org.id)
            #expect(try await gateway.release(ofA.reservation).status == .applied)
            // A cached key of B (the unscoped connection cached it) is still unknown to it.
            #expect(try await gateway.check(.make(b.digest)).reason == .unknownKey)
            await unscoped.close()
            await gateway.close()
        }
    }

    @Test("AUTH refused: an unknown credential, a second AUTH, an AUTH after a request; required mode refuses a CHECK without AUTH")
    func refusals() async throws {
        try await withHarness { h in
            let w = try await h.world()
            let (_, secret) = try await h.store.createGatewayCredential(name: "gw", organizations: [w.org.id])

            let unknown = try await h.connect()
            await #expect { try await unknown.authenticate(credential: "bgw_not-a-credential") } throws: { serverError($0) == .unauthorized }

            let twice = try await h.connect()
            try await twice.authenticate(credential: secret)
            await #expect { try await twice.authenticate(credential: secret) } throws: { serverError($0) == .unauthorized }

            let late = try await h.connect()
            #expect(try await late.check(.make(w.digest)).allowed)
            await #expect { try await late.authenticate(credential: secret) } throws: { serverError($0) == .unauthorized }

            // Pipelined behind AUTH: the CHECK waits for it and is served under its scope.
            let pipelined = try await h.connect()
            let auth = pipelined.request(.auth(AuthRequest(credentialDigest: KeyDigest(secret: secret))), flush: false)
            let check = pipelined.request(.check(.make(w.digest)), flush: true)
            guard case .authResult = try await auth.get().body else { Issue.record("AUTH not answered AUTH_RESULT"); return }
            guard case .checkResult(let r) = try await check.get().body else { Issue.record("CHECK not answered"); return }
            #expect(r.allowed)

            let server = DataPlaneServer(
                configuration: ListenerConfiguration(host: "127.0.0.1", port: 0, limits: ConnectionLimits(requireAuthentication: true)),
                engine: h.engine, group: MultiThreadedEventLoopGroup.singleton, logger: Harness.logger)
            let port = try await server.start()
            let bare = try await BursarConnection.connect(host: "127.0.0.1", port: port)
            try await bare.ping()
            await #expect { try await bare.check(.make(w.digest)) } throws: { serverError($0) == .unauthorized }
            let settleFirst = try await BursarConnection.connect(host: "127.0.0.1", port: port)
            await #expect { try await settleFirst.release(r.reservation) } throws: { serverError($0) == .unauthorized }
            let authed = try await BursarConnection.connect(host: "127.0.0.1", port: port)
            try await authed.authenticate(credential: secret)
            #expect(try await authed.release(r.reservation).status == .applied)
            await authed.close()
            await server.shutdown(timeout: .milliseconds(200))
        }
    }

    @Test("A revoked credential ends its connections: at once on the notice, and without it within seconds")
    func revocation() async throws {
        try await withHarness { h in
            let w = try await h.world()
            let (first, firstSecret) = try await h.store.createGatewayCredential(name: "gw-1", organizations: [w.org.id])
            let (_, secondSecret) = try await h.store.createGatewayCredential(name: "gw-2", organizations: [w.org.id])
            let noticed = try await h.connect()
            try await noticed.authenticate(credential: firstSecret)
            let bystander = try await h.connect()
            try await bystander.authenticate(credential: secondSecret)
            #expect(try await noticed.check(.make(w.digest)).allowed)

            _ = try await h.store.revokeGatewayCredential(id: first.id)
            h.engine.applyInvalidation(.gateway(try #require(KeyDigest(hex: first.digest))))
            await #expect { try await noticed.check(.make(w.digest)) } throws: { serverError($0) == .unauthorized }
            #expect(try await bystander.check(.make(w.digest)).allowed, "another credential's connection is not touched")
            // A new connection with the revoked credential is refused.
            let again = try await h.connect()
            await #expect { try await again.authenticate(credential: firstSecret) } throws: { serverError($0) == .unauthorized }

            // Without a notice (lost): the periodic re-read finds it gone within its interval.
            let (third, thirdSecret) = try await h.store.createGatewayCredential(name: "gw-3", organizations: [w.org.id])
            let unnoticed = try await h.connect()
            try await unnoticed.authenticate(credential: thirdSecret)
            _ = try await h.store.revokeGatewayCredential(id: third.id)
            let clock = ContinuousClock()
            let start = clock.now
            var ended = false
            while clock.now - start < .seconds(12), !ended {
                do {
                    _ = try await unnoticed.check(.make(w.digest))
                    try await Task.sleep(for: .milliseconds(200))
                } catch {
                    #expect(serverError(error) == .unauthorized)
                    ended = true
                }
            }
            #expect(ended, "the connection of a credential revoked without a notice was still served after 12 s")
            await bystander.close()
        }
    }
}
