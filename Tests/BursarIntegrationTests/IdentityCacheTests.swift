@testable import BursarServer
import BursarStore
import BursarWire
import NIOCore
import Testing

/// The digest cache holds what was stored within its TTLs, not every digest ever seen: memory
/// follows the rate of distinct keys, whatever their total number.
@Suite("The digest cache")
struct IdentityCacheTests {
    func digest(_ i: Int) -> KeyDigest { KeyDigest(bytes: (0..<32).map { UInt8(truncatingIfNeeded: i >> (8 * ($0 % 4))) &+ UInt8($0) })! }
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test("expired entries are swept as new ones are stored, so the cache holds about rate × TTL entries")
    func sweepsExpired() {
        let cache = IdentityCache(ttl: .seconds(5), negativeTTL: .seconds(1), capacity: 100_000)
        // 1,000 distinct digests a second for 60 seconds: 60,000 in all, 5,000 within any TTL.
        for second in 0..<60 {
            for i in 0..<1_000 {
                let now = t0 + .seconds(Int64(second)) + .milliseconds(Int64(i))
                cache.store(digest(second * 1_000 + i), i % 10 == 0 ? nil : KeyIdentity(orgID: 1, keyID: UInt64(i)), now: now, resolvedAt: cache.generation)
            }
        }
        // Live: the last 5 s of known digests (4,500 + the ones stored this second) and the last 1 s of unknown ones.
        #expect(cache.count <= 5_000 + 100, "\(cache.count)")
        #expect(cache.count >= 4_000, "\(cache.count)")
        let now = t0 + .seconds(59) + .milliseconds(999)
        #expect(cache.contains(digest(59_998), now: now))
        #expect(!cache.contains(digest(10_000), now: now))
    }

    @Test("a refreshed entry outlives the record of its earlier store; capacity evicts the oldest, not everything")
    func refreshAndCapacity() {
        let cache = IdentityCache(ttl: .seconds(5), negativeTTL: .seconds(1), capacity: 3)
        let id = KeyIdentity(orgID: 1, keyID: 1)
        cache.store(digest(1), id, now: t0, resolvedAt: cache.generation)
        cache.store(digest(1), id, now: t0 + .seconds(4), resolvedAt: cache.generation)
        // At t0 + 6 s the first record has expired and is swept, but the refreshed entry stays.
        cache.store(digest(2), id, now: t0 + .seconds(6), resolvedAt: cache.generation)
        #expect(cache.contains(digest(1), now: t0 + .seconds(6)))
        cache.store(digest(3), id, now: t0 + .seconds(6), resolvedAt: cache.generation)
        #expect(cache.count == 3)
        // Full: storing a fourth evicts the oldest (digest 1), keeps 2 and 3.
        cache.store(digest(4), id, now: t0 + .seconds(6), resolvedAt: cache.generation)
        #expect(cache.count == 3)
        #expect(!cache.contains(digest(1), now: t0 + .seconds(6)))
        #expect(cache.contains(digest(2), now: t0 + .seconds(6)) && cache.contains(digest(4), now: t0 + .seconds(6)))
    }
}
