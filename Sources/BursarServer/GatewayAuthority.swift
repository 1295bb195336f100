import BursarRedis
import BursarStore
import BursarWire
import Logging
import NIOCore
import Synchronization

/// What a data-plane connection that sent AUTH may serve (SPEC §6.5): the organizations its
/// gateway credential names.
struct GatewayScope: Sendable {
    /// The credential's digest (what a revocation names).
    let digest: KeyDigest
    /// Its organizations.
    let organizations: Set<UInt64>
    /// The authority's revocation generation this connection last checked against.
    var generation: UInt64

    /// Whether the connection may touch `org`'s keys and reservations.
    @inline(__always)
    func serves(_ org: UInt64) -> Bool { organizations.contains(org) }
}

/// The gateway credentials of this bursard's connections: looks a credential up for AUTH, and
/// learns of revocations (from Redis pub/sub at once, and by re-reading the credentials of the
/// connections still open every `recheckInterval`, so a lost notice costs at most that long).
///
/// A connection checks one atomic generation per request; only when it moved does it ask
/// whether its own credential is among the revoked.
final class GatewayAuthority: Sendable {
    private struct State {
        /// Digests of the credentials of open connections, with how many use each.
        var inUse: [KeyDigest: Int] = [:]
        /// Credentials revoked while connections used them.
        var revoked: Set<KeyDigest> = []
        var lastRecheck = NIODeadline.now()
        var rechecking = false
    }

    static let recheckInterval: TimeAmount = .seconds(5)

    private let redis: RedisClient
    private let logger: Logger
    private let state = Mutex(State())
    /// Moves whenever a credential is found revoked.
    let generation = Atomic<UInt64>(0)

    init(redis: RedisClient, logger: Logger) {
        self.redis = redis
        self.logger = logger
    }

    enum Lookup: Sendable {
        /// The credential exists: the connection serves these organizations.
        case accepted(GatewayScope)
        /// No such credential (never issued, or revoked).
        case refused
        /// Redis did not answer: nothing can be said.
        case unavailable
    }

    /// Looks up the credential `digest` and calls `completion` on `loop`. An accepted one counts
    /// as in use until `release`.
    func authenticate(_ digest: KeyDigest, on loop: any EventLoop, completion: @escaping @Sendable (Lookup) -> Void) {
        let deadline = NIODeadline.now() + .seconds(1)
        redis.submit([RedisCommand("HGET", Keyspace.gatewayCredentials, digest.hex)], deadline: deadline, on: loop, lane: .priority) { [self] result in
            switch result {
            case .success(let replies):
                guard case .bulk(let bytes) = replies[0], let credential = GatewayCredential(stored: bytes),
                      credential.digest == digest.hex
                else { return completion(.refused) }
                let generation = state.withLock { s -> UInt64 in
                    s.inUse[digest, default: 0] += 1
                    s.revoked.remove(digest)
                    return self.generation.load(ordering: .acquiring)
                }
                completion(.accepted(GatewayScope(digest: digest, organizations: Set(credential.organizations), generation: generation)))
            case .failure(let error):
                logger.warning("gateway credential lookup failed", metadata: ["error": "\(error)"])
                completion(.unavailable)
            }
        }
    }

    /// A connection that authenticated with `digest` closed.
    func release(_ digest: KeyDigest) {
        state.withLock { s in
            guard let n = s.inUse[digest] else { return }
            if n <= 1 {
                s.inUse[digest] = nil
                s.revoked.remove(digest)
            } else {
                s.inUse[digest] = n - 1
            }
        }
    }

    /// Whether the credential `digest` was revoked (a connection asks after `generation` moved).
    func isRevoked(_ digest: KeyDigest) -> Bool {
        state.withLock { $0.revoked.contains(digest) }
    }

    /// A revocation notice: if a connection uses the credential, it ends at its next request.
    func revoked(_ digest: KeyDigest) {
        let known = state.withLock { s -> Bool in
            guard s.inUse[digest] != nil else { return false }
            return s.revoked.insert(digest).inserted
        }
        if known { generation.add(1, ordering: .releasing) }
    }

    /// Re-reads the credentials of the open connections, every `recheckInterval`: any no longer
    /// stored was revoked (its notice may have been lost).
    func recheck() async {
        let digests = state.withLock { s -> [KeyDigest]? in
            guard !s.rechecking, NIODeadline.now() - s.lastRecheck >= Self.recheckInterval, !s.inUse.isEmpty else { return nil }
            s.rechecking = true
            return Array(s.inUse.keys)
        }
        guard let digests else { return }
        defer { state.withLock { s in
            s.rechecking = false
            s.lastRecheck = .now()
        } }
        var command = RedisCommand("HMGET", Keyspace.gatewayCredentials)
        for d in digests { command.append(d.hex) }
        guard let reply = try? await redis.send(command), let values = reply.array, values.count == digests.count else { return }
        for (digest, value) in zip(digests, values) where value.isNull { revoked(digest) }
    }
}
