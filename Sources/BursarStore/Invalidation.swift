public import BursarRedis
public import BursarWire

/// A notice that cached metadata is stale, published on one Redis pub/sub channel and applied by
/// every bursard to its digest cache.
///
/// The cache holds routing only (digest → org and key); every limit and every revocation is
/// re-read inside the atomic CHECK step. Whoever changes a key, a membership, a role or an
/// organization publishes one of these after the write, so other bursards stop routing through
/// stale entries at once instead of after the cache TTL. A lost message costs at most that TTL;
/// a subscriber that reconnects drops its whole cache because it may have missed some.
///
/// Payloads (ASCII): `d:<64 lowercase hex>` one digest, `o:<decimal org id>` every digest of
/// one organization, `*` everything. Pub/sub ignores the database number, so bursar deployments
/// sharing one Redis server see each other's notices; that only costs extra cache misses.
public enum Invalidation: Hashable, Sendable {
    /// Drop one digest (a key deleted or rotated; a digest that was cached as unknown).
    case digest(KeyDigest)
    /// Drop every digest of one organization (revocation, limits, membership, role, status).
    case org(UInt64)
    /// Drop everything.
    case all
    /// A gateway credential was revoked: end the data-plane connections that authenticated with
    /// it (SPEC §6.5). Payload `g:<64 lowercase hex>`, its digest.
    case gateway(KeyDigest)

    /// The pub/sub channel.
    public static let channel = "br:inval"

    /// The message body.
    public var payload: String {
        switch self {
        case .digest(let d): return "d:" + d.hex
        case .org(let id): return "o:\(id)"
        case .all: return "*"
        case .gateway(let d): return "g:" + d.hex
        }
    }

    /// `PUBLISH br:inval <payload>`. Its integer reply is the number of subscribers reached.
    public var publishCommand: RedisCommand {
        RedisCommand("PUBLISH", Self.channel, payload)
    }

    /// Parses a message body; nil if it is not one of the three forms exactly.
    public init?(payload: [UInt8]) {
        if payload == [UInt8(ascii: "*")] {
            self = .all
            return
        }
        guard payload.count > 2, payload[1] == UInt8(ascii: ":") else { return nil }
        let body = payload[2...]
        switch payload[0] {
        case UInt8(ascii: "d"), UInt8(ascii: "g"):
            // KeyDigest(hex:) also takes uppercase; the canonical form is lowercase.
            guard !body.contains(where: { (UInt8(ascii: "A")...UInt8(ascii: "F")).contains($0) }),
                  let digest = KeyDigest(hex: String(decoding: body, as: UTF8.self))
            else { return nil }
            self = payload[0] == UInt8(ascii: "d") ? .digest(digest) : .gateway(digest)
        case UInt8(ascii: "o"):
            guard body.count <= 20, body.first != UInt8(ascii: "0") || body.count == 1, body.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
                  let id = UInt64(String(decoding: body, as: UTF8.self))
            else { return nil }
            self = .org(id)
        default:
            return nil
        }
    }

    /// Parses a message body given as text.
    public init?(payload: String) {
        self.init(payload: Array(payload.utf8))
    }
}
