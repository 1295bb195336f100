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

    /// The map, and every store in the order made, per TTL. One TTL per queue means each queue's
    /// expiries are in order, so expired entries leave from the front: every store sweeps what
    /// has expired since (amortized O(1)), and the map holds about rate × TTL entries, not every
    /// digest ever seen. A record whose entry was replaced or invalidated since is skipped.
    private struct State {
        var map: [KeyDigest: Entry] = [:]
        var known = CircularBuffer<(digest: KeyDigest, expires: NIODeadline)>(initialCapacity: 1024)
        var unknown = CircularBuffer<(digest: KeyDigest, expires: NIODeadline)>(initialCapacity: 64)

        /// Removes the front record of `queue` and its entry, if the entry is still that record's.
        mutating func dropFront(_ queue: WritableKeyPath<State, CircularBuffer<(digest: KeyDigest, expires: NIODeadline)>>) {
            let record = self[keyPath: queue].removeFirst()
            if map[record.digest]?.expires == record.expires { map.removeValue(forKey: record.digest) }
        }

        /// Drops every entry expired by `now`.
        mutating func sweep(now: NIODeadline) {
            while let first = known.first, first.expires <= now { dropFront(\.known) }
            while let first = unknown.first, first.expires <= now { dropFront(\.unknown) }
        }

        /// Drops the oldest records until fewer than `capacity` entries remain.
        mutating func evict(below capacity: Int) {
            while map.count >= capacity {
                switch (known.first, unknown.first) {
                case (let k?, let u?): dropFront(k.expires <= u.expires ? \.known : \.unknown)
                case (_?, nil): dropFront(\.known)
                case (nil, _?): dropFront(\.unknown)
                case (nil, nil): map.removeAll(keepingCapacity: true)  // unreachable: every entry has a record
                }
            }
        }

        mutating func removeAll() {
            map.removeAll(keepingCapacity: true)
            known.removeAll(keepingCapacity: true)
            unknown.removeAll(keepingCapacity: true)
        }
    }

    private let state = Mutex(State())
    private let ttl: TimeAmount
    private let negativeTTL: TimeAmount
    private let capacity: Int
    let stats = CacheStats()

    init(ttl: TimeAmount, negativeTTL: TimeAmount, capacity: Int) {
        self.ttl = ttl
        self.negativeTTL = negativeTTL
        self.capacity = max(1, capacity)
    }

    func lookup(_ digest: KeyDigest, now: NIODeadline) -> Lookup {
        let entry = state.withLock { $0.map[digest] }
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
        state.withLock { state in
            // An invalidation landed while this resolution was in flight; the next CHECK resolves again.
            guard generationCounter.load(ordering: .relaxed) == generation else { return }
            state.sweep(now: now)
            if state.map[digest] == nil { state.evict(below: capacity) }
            state.map[digest] = entry
            if identity == nil {
                state.unknown.append((digest, entry.expires))
            } else {
                state.known.append((digest, entry.expires))
            }
        }
    }

    func invalidate(_ digest: KeyDigest) {
        state.withLock { state in
            state.map.removeValue(forKey: digest)
            generationCounter.add(1, ordering: .relaxed)
        }
    }

    /// Drops every digest resolved to `org` (digests cached as unknown stay: they belong to no org).
    func invalidate(org: UInt64) {
        state.withLock { state in
            // Rare (an admin change) but the map can be large: collect, then remove in place.
            var stale: [KeyDigest] = []
            for (digest, entry) in state.map where entry.identity?.orgID == org { stale.append(digest) }
            for digest in stale { state.map.removeValue(forKey: digest) }
            generationCounter.add(1, ordering: .relaxed)
        }
    }

    /// Drops everything, unknown digests included.
    func invalidateAll() {
        state.withLock { state in
            state.removeAll()
            generationCounter.add(1, ordering: .relaxed)
        }
    }

    /// The identity `digest` resolved to when last resolved, expired or not, while the entry is
    /// still held (the store failure policy decides with it while Redis cannot resolve; nothing
    /// can revoke a key meanwhile, admin changes being written to Redis too).
    func lastKnown(_ digest: KeyDigest) -> KeyIdentity? {
        state.withLock { $0.map[digest]?.identity }
    }

    /// Whether `digest` is cached and unexpired, without counting a hit or a miss.
    func contains(_ digest: KeyDigest, now: NIODeadline) -> Bool {
        state.withLock { $0.map[digest].map { $0.expires > now } ?? false }
    }

    /// Entries held (expired ones until the next store sweeps them).
    var count: Int { state.withLock { $0.map.count } }
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
