import BursarStore
import BursarWire
import NIOCore
public import Synchronization

/// bursard's in-memory cache of digest → key identity, with a TTL, and of unknown digests with a
/// shorter TTL so a flood of bad keys does not reach Redis.
///
/// Only routing lives here. Everything that can revoke a key (status, expiry, rotation, the
/// creator's membership, the project and org status) and every limit is re-read inside the atomic
/// step, so nothing this cache holds can let a stale key through.
final class IdentityCache: Sendable {
    enum Lookup {
        case known(KeyIdentity)
        case unknown
        case miss
    }

    private struct Entry {
        var identity: KeyIdentity?
        var expires: NIODeadline
    }

    private let entries = Mutex<[KeyDigest: Entry]>([:])
    private let ttl: TimeAmount
    private let negativeTTL: TimeAmount
    private let capacity: Int
    let stats = CacheStats()

    init(ttl: TimeAmount, negativeTTL: TimeAmount, capacity: Int) {
        self.ttl = ttl
        self.negativeTTL = negativeTTL
        self.capacity = capacity
    }

    func lookup(_ digest: KeyDigest, now: NIODeadline) -> Lookup {
        let entry = entries.withLock { $0[digest] }
        guard let entry, entry.expires > now else {
            stats.misses.add(1, ordering: .relaxed)
            return .miss
        }
        if let id = entry.identity {
            stats.hits.add(1, ordering: .relaxed)
            return .known(id)
        }
        stats.negativeHits.add(1, ordering: .relaxed)
        return .unknown
    }

    /// Bumped by every invalidation, under the lock. A resolution read from Redis before an
    /// invalidation may be stale, so `store` drops it if the generation moved meanwhile.
    private let generationCounter = Atomic<UInt64>(0)

    /// Read before resolving a digest; pass it to `store`.
    var generation: UInt64 { generationCounter.load(ordering: .relaxed) }

    func store(_ digest: KeyDigest, _ identity: KeyIdentity?, now: NIODeadline, resolvedAt generation: UInt64) {
        let entry = Entry(identity: identity, expires: now + (identity == nil ? negativeTTL : ttl))
        entries.withLock { map in
            // An invalidation landed while this resolution was in flight; the next CHECK resolves again.
            guard generationCounter.load(ordering: .relaxed) == generation else { return }
            if map.count >= capacity && map[digest] == nil {
                // Bounded memory: drop expired entries; if that is not enough, start over.
                map = map.filter { $0.value.expires > now }
                if map.count >= capacity { map.removeAll(keepingCapacity: true) }
            }
            map[digest] = entry
        }
    }

    func invalidate(_ digest: KeyDigest) {
        entries.withLock { map in
            map.removeValue(forKey: digest)
            generationCounter.add(1, ordering: .relaxed)
        }
    }

    /// Drops every digest resolved to `org` (digests cached as unknown stay: they belong to no org).
    func invalidate(org: UInt64) {
        entries.withLock { map in
            // Rare (an admin change) but the map can be large: collect, then remove in place.
            var stale: [KeyDigest] = []
            for (digest, entry) in map where entry.identity?.orgID == org { stale.append(digest) }
            for digest in stale { map.removeValue(forKey: digest) }
            generationCounter.add(1, ordering: .relaxed)
        }
    }

    /// Drops everything, unknown digests included.
    func invalidateAll() {
        entries.withLock { map in
            map.removeAll(keepingCapacity: true)
            generationCounter.add(1, ordering: .relaxed)
        }
    }

    /// Whether `digest` is cached and unexpired, without counting a hit or a miss.
    func contains(_ digest: KeyDigest, now: NIODeadline) -> Bool {
        entries.withLock { $0[digest].map { $0.expires > now } ?? false }
    }

    var count: Int { entries.withLock { $0.count } }
}

/// Cache counters.
public final class CacheStats: Sendable {
    /// Digests found.
    public let hits = Atomic<Int>(0)
    /// Digests not cached (or expired).
    public let misses = Atomic<Int>(0)
    /// Digests cached as unknown.
    public let negativeHits = Atomic<Int>(0)
    init() {}
}
