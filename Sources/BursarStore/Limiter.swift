public import BursarRedis
public import BursarWire

/// Where a key lives: resolved from its digest through the digest index, cached by bursard.
public struct KeyIdentity: Hashable, Sendable {
    /// The key's organization (its Redis hash tag).
    public var orgID: UInt64
    /// The key.
    public var keyID: UInt64

    /// An identity.
    public init(orgID: UInt64, keyID: UInt64) {
        self.orgID = orgID
        self.keyID = keyID
    }

    /// Parses the digest index value "org:key".
    init?(indexValue: String) {
        let parts = indexValue.split(separator: ":")
        guard parts.count == 2, let o = UInt64(parts[0]), let k = UInt64(parts[1]) else { return nil }
        self.init(orgID: o, keyID: k)
    }

    var indexValue: String { "\(orgID):\(keyID)" }
}

/// Builds the limiter's Redis commands and reads their replies. Pure: no I/O, so the engine can
/// put many of these into one pipelined round trip.
public struct Limiter: Sendable {
    /// The CHECK script.
    public let checkScript: RedisScript
    /// The SETTLE/RELEASE script.
    public let settleScript: RedisScript
    /// How long an unsettled reservation holds its estimate, ms.
    public let reservationTTLMs: Int64

    /// A limiter on Redis's clock.
    public init(reservationTTLMs: Int64 = 15 * 60 * 1000) {
        self.init(clock: .redis, reservationTTLMs: reservationTTLMs)
    }

    /// A limiter on a chosen clock. Tests only.
    @_spi(Testing)
    public init(clock: ScriptClock, reservationTTLMs: Int64 = 15 * 60 * 1000) {
        checkScript = RedisScript(source: LimiterLua.check(clock))
        settleScript = RedisScript(source: LimiterLua.settle(clock))
        self.reservationTTLMs = reservationTTLMs
    }

    /// Both scripts, for `RedisClient.register`.
    public var scripts: [RedisScript] { [checkScript, settleScript] }

    /// GET of the digest index.
    public static func resolveCommand(_ digest: KeyDigest) -> RedisCommand {
        RedisCommand("GET", Keyspace.digestIndex(digest.hex))
    }

    /// Reads the digest index reply: nil for an unknown digest.
    public static func parseResolve(_ reply: RedisValue) throws(RedisError) -> KeyIdentity? {
        switch reply {
        case .null: return nil
        case .bulk:
            guard let text = reply.string, let id = KeyIdentity(indexValue: text) else {
                throw RedisError(.unexpectedReply, "digest index holds a malformed value")
            }
            return id
        case .error(let e): throw RedisError(.server, e)
        default: throw RedisError(.unexpectedReply, "digest index reply is not a string")
        }
    }

    /// The atomic CHECK step for a resolved key.
    public func checkCommand(_ request: CheckRequest, identity: KeyIdentity) -> RedisCommand {
        checkScript.call(
            keys: [Keyspace.key(identity.orgID, identity.keyID)],
            args: [
                Keyspace.org(identity.orgID), String(identity.keyID), request.digest.hex, request.model.value,
                String(request.reservedTokens), String(request.estimatedCost), String(reservationTTLMs),
            ])
    }

    /// Reads the CHECK script's reply.
    public func parseCheck(_ reply: RedisValue, identity: KeyIdentity) throws(RedisError) -> CheckResult {
        if case .error(let e) = reply { throw RedisError(.server, e) }
        guard let a = reply.array, a.count >= 2 else { throw RedisError(.unexpectedReply, "CHECK script reply has the wrong shape") }
        func int(_ i: Int) -> Int64 { i < a.count ? (a[i].int ?? 0) : 0 }
        func u32(_ i: Int) -> UInt32 { UInt32(clamping: int(i)) }
        func optional(_ i: Int) -> Int64 { i < a.count ? (a[i].int ?? CheckResult.unlimited) : CheckResult.unlimited }
        guard let reason = DenyReason(rawValue: UInt8(clamping: int(1))) else {
            throw RedisError(.unexpectedReply, "CHECK script returned reason \(int(1))")
        }
        let allowed = int(0) == 1
        if reason == .unknownKey { return .deny(.unknownKey) }
        return CheckResult(
            allowed: allowed, reason: reason, keyFlags: UInt16(clamping: int(5)), retryAfterMs: u32(2),
            reservation: allowed ? ReservationID(orgID: identity.orgID, sequence: UInt64(int(3))) : .none,
            orgID: identity.orgID, projectID: UInt64(clamping: int(4)), keyID: identity.keyID,
            requestsLimit: u32(6), requestsRemaining: u32(7), requestsResetMs: u32(8),
            tokensLimit: u32(9), tokensRemaining: u32(10), tokensResetMs: u32(11),
            keyBudgetRemaining: optional(12), keyBudgetResetAtMs: int(13),
            projectBudgetRemaining: optional(14), projectBudgetResetAtMs: int(15),
            orgCreditsRemaining: optional(16))
    }

    /// The atomic SETTLE step.
    public func settleCommand(_ request: SettleRequest) -> RedisCommand {
        settleScript.call(
            keys: [Keyspace.reservation(request.reservation.orgID, request.reservation.sequence)],
            args: [Keyspace.org(request.reservation.orgID), "settle", String(request.tokens), String(request.cost)])
    }

    /// The atomic RELEASE step.
    public func releaseCommand(_ reservation: ReservationID) -> RedisCommand {
        settleScript.call(
            keys: [Keyspace.reservation(reservation.orgID, reservation.sequence)],
            args: [Keyspace.org(reservation.orgID), "release", "0", "0"])
    }

    /// Reads the SETTLE/RELEASE script's reply.
    public func parseSettle(_ reply: RedisValue) throws(RedisError) -> ReservationResult {
        if case .error(let e) = reply { throw RedisError(.server, e) }
        guard let a = reply.array, a.count == 3, let raw = a[0].int, let status = ReservationStatus(rawValue: UInt8(clamping: raw)) else {
            throw RedisError(.unexpectedReply, "SETTLE script reply has the wrong shape")
        }
        return ReservationResult(status: status, costDelta: a[1].int ?? 0, tokenDelta: a[2].int ?? 0)
    }
}
