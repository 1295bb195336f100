import _CryptoExtras
public import BursarRedis
public import BursarWire
import Crypto
import Foundation

/// Turns the name a reservation has inside the installation (its organization and sequence) into
/// the id its client holds, and back (SPEC §5): one AES-256 block under the installation's
/// reservation key, so the id a client holds is a capability. Nobody without the key can make
/// one up, count from one to the next, or tell from one which organization or bursard made it.
///
/// The key is 32 random bytes kept in Redis (`Keyspace.reservationKey`), written once by the
/// first bursard (`SET … NX`) and read by every other, so any bursard settles any reservation.
public struct ReservationSeal: Sendable {
    /// `SymmetricKey` is not `Sendable`; this box never changes after it is made, so sharing it
    /// between threads only ever reads it.
    private final class Key: @unchecked Sendable {
        let key: SymmetricKey
        init(_ key: SymmetricKey) { self.key = key }
    }

    private let key: Key
    /// The key in its stored form (standard base64 of 32 bytes).
    public let text: String

    /// A seal with the key whose stored form is `text`; nil unless it is base64 of 32 bytes.
    public init?(text: String) {
        guard let bytes = Data(base64Encoded: text), bytes.count == 32 else { return nil }
        self.key = Key(SymmetricKey(data: bytes))
        self.text = text
    }

    /// The installation's seal as Redis holds it (`Keyspace.reservationKey`); nil before any
    /// bursard made one. For readers outside bursard (the bench's audit, tests): bursard itself
    /// takes it as it takes its epoch.
    public static func stored(in redis: RedisClient) async throws -> ReservationSeal? {
        try await redis.send(RedisCommand("GET", Keyspace.reservationKey)).string.flatMap { ReservationSeal(text: $0) }
    }

    /// A new random key, in its stored form.
    public static func newKeyText() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { Data($0).base64EncodedString() }
    }

    /// The id a client is given for `reservation`. The all-zero id (a denied CHECK's) stays zero.
    public func seal(_ reservation: ReservationID) -> ReservationID {
        guard reservation != .none else { return .none }
        return permute(reservation, forward: true)
    }

    /// Organization ids are below this (they are counted from 1), so an id whose decryption has
    /// any of the top 16 bits of its organization set was not issued: with the two fixed bits of
    /// the sequence, 18 bits a made-up id matches only once in 262,144 tries.
    public static let orgIDLimit: UInt64 = 1 << 48

    /// The reservation a client's id names, or nil when it cannot be one bursard issued (its
    /// organization is 0 or not below 2^48, its sequence has bit 63 set or bit 61 clear, or it is
    /// all zero): answered `unknown` without asking Redis.
    public func open(_ id: ReservationID) -> ReservationID? {
        guard id != .none else { return nil }
        let inner = permute(id, forward: false)
        guard inner.orgID != 0, inner.orgID < Self.orgIDLimit, ReservationSequence.isIssued(inner.sequence) else { return nil }
        return inner
    }

    private func permute(_ id: ReservationID, forward: Bool) -> ReservationID {
        var block = (id.orgID.bigEndian, id.sequence.bigEndian)
        withUnsafeMutableBytes(of: &block) { pointer in
            var bytes = pointer
            // Cannot fail: the block is 16 bytes and the key 32.
            if forward {
                try! AES.permute(&bytes, key: key.key)
            } else {
                try! AES.inversePermute(&bytes, key: key.key)
            }
        }
        return ReservationID(orgID: UInt64(bigEndian: block.0), sequence: UInt64(bigEndian: block.1))
    }
}
