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

/// What the CHECK script did with an attempt (its reply's first element).
public enum CheckOutcome: Int64, Sendable, Hashable, CaseIterable {
    /// Denied: nothing moved.
    case denied = 0
    /// Admitted: every counter debited, the reservation recorded.
    case admitted = 1
    /// The attempt's sequence was already taken: it had been voided before it ran (SPEC §13.7),
    /// and did nothing.
    case fenced = 2
    /// A replay found its reservation already recorded: it did nothing.
    case alreadyRecorded = 3
}

/// The slots of a CHECK script's reply, in order (check.lua builds it in this order). Once the
/// step has read its counters the reply is one string, the 18 slots packed as big-endian 64-bit
/// integers, read with `CheckReplySlots`; a refusal before that is an array that stops after
/// `flags`, an unknown key's after `reason`.
public enum CheckReplySlot: Int, Sendable, CaseIterable {
    /// A `CheckOutcome`.
    case outcome
    /// A `DenyReason` (0 when admitted).
    case reason
    /// When a rate limit denied: ms until it would fit.
    case retryAfterMs
    /// Which optional slots have no value, in a packed reply (`CheckReplySlots.absentKeyBudget`,
    /// `…ProjectBudget`, `…Credits`); 0 in an array.
    case absent
    /// The key's project id.
    case project
    /// The key's flags.
    case flags
    /// The request headers' limit, remaining and reset (the tighter of the key's and the project's RPM).
    case requestsLimit, requestsRemaining, requestsResetMs
    /// The same for tokens (TPM).
    case tokensLimit, tokensRemaining, tokensResetMs
    /// The key's budget left (false: no budget) and the end of its window, ms.
    case keyBudgetRemaining, keyBudgetResetAtMs
    /// The project's budget left (false: no budget) and the end of its month, ms.
    case projectBudgetRemaining, projectBudgetResetAtMs
    /// The organization's credits (false: not metered).
    case orgCredits
    /// The budget alerts this admission crossed (`BudgetAlerts`' bits).
    case budgetAlerts
}

/// A CHECK script's reply by slot: the packed string of a decided step, or the array of an early
/// refusal (`CheckReplySlot`). Reading a packed reply makes no value per slot.
public struct CheckReplySlots: Sendable {
    /// `absent` bits: the key has no budget, the project none, the organization is not metered.
    public static let absentKeyBudget: Int64 = 1, absentProjectBudget: Int64 = 2, absentCredits: Int64 = 4
    static let packedSize = CheckReplySlot.allCases.count * 8

    private enum Form {
        case packed([UInt8])
        case array([RedisValue])
    }
    private let form: Form

    /// The slots of `reply`; nil when it is neither form.
    public init?(_ reply: RedisValue) {
        switch reply {
        case .bulk(let bytes) where bytes.count == Self.packedSize: form = .packed(bytes)
        case .array(let elements): form = .array(elements)
        default: return nil
        }
    }

    /// How many slots it has.
    public var count: Int {
        switch form {
        case .packed: CheckReplySlot.allCases.count
        case .array(let a): a.count
        }
    }

    /// The slot's value; nil past the end, or for an optional slot without one (a key without a
    /// budget, say).
    public subscript(_ slot: CheckReplySlot) -> Int64? {
        switch form {
        case .array(let a):
            return slot.rawValue < a.count ? a[slot.rawValue].int : nil
        case .packed(let bytes):
            let bit: Int64
            switch slot {
            case .keyBudgetRemaining: bit = Self.absentKeyBudget
            case .projectBudgetRemaining: bit = Self.absentProjectBudget
            case .orgCredits: bit = Self.absentCredits
            default: bit = 0
            }
            if bit != 0, PackedSlots.int64(bytes, CheckReplySlot.absent.rawValue) & bit != 0 { return nil }
            return PackedSlots.int64(bytes, slot.rawValue)
        }
    }
}

/// A CHECK script's reply, read.
public enum CheckReply: Sendable {
    /// Redis decided it.
    case decided(CheckResult)
    /// The attempt had been voided before it ran; nothing moved.
    case fenced
}

/// Builds the limiter's Redis commands and reads their replies. Pure: no I/O, so the engine can
/// put many of these into one pipelined round trip.
public struct Limiter: Sendable {
    /// The CHECK script.
    public let checkScript: RedisScript
    /// The SETTLE/RELEASE script.
    public let settleScript: RedisScript
    /// CHECK of several requests of one organization in one call (`RedisClient.batch`).
    public let checkBatchScript: RedisScript
    /// SETTLE and RELEASE of several reservations of one organization in one call.
    public let settleBatchScript: RedisScript
    /// The VOID script: gives back an attempt whose client was told it was refused.
    public let voidScript: RedisScript
    /// The SWEEP script: voids what a dead bursard left undelivered in one organization.
    public let sweepScript: RedisScript
    /// The instance registry's heartbeat (global key, Redis's clock).
    public let heartbeatScript: RedisScript
    /// How long an unsettled reservation holds its estimate, ms.
    public let reservationTTLMs: Int64
    /// `FCALL <check function> 1`: the constant head of every CHECK step.
    private let checkCall: RedisCommand
    /// `FCALL <settle function> 1`: the constant head of every SETTLE and RELEASE step.
    private let settleCall: RedisCommand

    /// A limiter on Redis's clock.
    public init(reservationTTLMs: Int64 = 15 * 60 * 1000, history: HistoryRetention = .standard) {
        self.init(clock: .redis, reservationTTLMs: reservationTTLMs, history: history)
    }

    /// A limiter on a chosen clock. Tests only.
    @_spi(Testing)
    public init(clock: ScriptClock, reservationTTLMs: Int64 = 15 * 60 * 1000, history: HistoryRetention = .standard) {
        checkScript = LimiterLua.check(clock, history)
        settleScript = LimiterLua.settle(clock, history)
        checkBatchScript = LimiterLua.checkBatch(clock, history)
        settleBatchScript = LimiterLua.settleBatch(clock, history)
        voidScript = RedisScript(source: LimiterLua.void(clock, history))
        sweepScript = RedisScript(source: LimiterLua.sweep(clock, history))
        heartbeatScript = RedisScript(source: LimiterLua.heartbeat)
        self.reservationTTLMs = reservationTTLMs
        checkCall = checkScript.head(keyCount: 1)
        settleCall = settleScript.head(keyCount: 1)
    }

    /// Every script, for `RedisClient.register`.
    public var scripts: [RedisScript] {
        [checkScript, settleScript, checkBatchScript, settleBatchScript, voidScript, sweepScript, heartbeatScript]
    }

    /// The scripts whose calls for one organization that reach Redis together run as one call
    /// of their batch script, for `RedisClient.batch` (SPEC §13.11).
    public var batches: [RedisScriptBatch] {
        [RedisScriptBatch(single: checkScript, batch: checkBatchScript), RedisScriptBatch(single: settleScript, batch: settleBatchScript)]
    }

    /// How long a fence (the record a void leaves under an attempt that never ran) keeps its id
    /// taken, ms: as long as a reservation's record would have lived.
    public var fenceTTLMs: Int64 { reservationTTLMs + 3_600_000 }

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

    /// The atomic CHECK step for a resolved key, under the reservation sequence bursard chose for
    /// this attempt (`ReservationSequence`, which holds the epoch of the bursard choosing it).
    ///
    /// Built on every CHECK, so written straight into the command's buffer: the script call's
    /// constant head is copied, key names, the digest's hex and the numbers are written in place
    /// (no intermediate Strings or arrays). The arguments are those of `Keyspace.key`,
    /// `Keyspace.org` and `KeyDigest.hex`.
    public func checkCommand(_ request: CheckRequest, identity: KeyIdentity, sequence: UInt64) -> RedisCommand {
        var c = checkCall
        c.reserveCapacity(bytes: 200 + request.model.value.utf8.count, arguments: 10)
        appendCheckArguments(request, identity: identity, ttlMs: reservationTTLMs, to: &c)
        c.append(decimal: sequence)
        c.append("check")
        appendPricedTokens(request, to: &c)
        return c
    }

    /// The replay of an admission bursard made locally while Redis was unreachable (its store
    /// failure policy `allow`): the CHECK script in replay mode debits every counter the request
    /// would have, checks nothing, and records the reservation under `sequence` holding its
    /// estimate for `remainingTTLMs`, so a later SETTLE or RELEASE finds it. Idempotent: a
    /// reservation already recorded under `sequence` makes it a no-op. Read with `parseReplay`.
    public func replayCommand(_ request: CheckRequest, identity: KeyIdentity, sequence: UInt64, remainingTTLMs: Int64) -> RedisCommand {
        var c = checkCall
        c.reserveCapacity(bytes: 200 + request.model.value.utf8.count, arguments: 10)
        appendCheckArguments(request, identity: identity, ttlMs: max(1, remainingTTLMs), to: &c)
        c.append(decimal: sequence)
        c.append("replay")
        appendPricedTokens(request, to: &c)
        return c
    }

    /// What a replay did.
    public enum ReplayOutcome: Sendable, Hashable {
        /// The admission is recorded now: every counter debited, the reservation made.
        case recorded
        /// An earlier replay recorded it; nothing changed.
        case alreadyRecorded
        /// Its key no longer exists: the debit cannot be placed.
        case keyGone
    }

    /// Reads a replay's reply.
    public func parseReplay(_ reply: RedisValue) throws(RedisError) -> ReplayOutcome {
        if case .error(let e) = reply { throw RedisError(.server, e) }
        guard let a = CheckReplySlots(reply), let raw = a[.outcome], let outcome = CheckOutcome(rawValue: raw) else {
            throw RedisError(.unexpectedReply, "replay reply has the wrong shape")
        }
        switch outcome {
        case .admitted: return .recorded
        case .alreadyRecorded, .fenced: return .alreadyRecorded
        case .denied: return .keyGone
        }
    }

    /// A CHECK priced from the table (SPEC §13.12) also sends its input and maximum output tokens.
    private func appendPricedTokens(_ request: CheckRequest, to c: inout RedisCommand) {
        guard request.pricedByTable else { return }
        c.append(decimal: UInt64(request.inputTokens))
        c.append(decimal: UInt64(request.maxOutputTokens))
    }

    private func appendCheckArguments(_ request: CheckRequest, identity: KeyIdentity, ttlMs: Int64, to c: inout RedisCommand) {
        Keyspace.append(key: identity.keyID, org: identity.orgID, to: &c)
        Keyspace.append(org: identity.orgID, to: &c)
        c.append(decimal: identity.keyID)
        Self.appendHex(request.digest, to: &c)
        c.append(request.model.value)
        c.append(request.reservedTokens)
        c.append(request.estimatedCost)
        c.append(ttlMs)
    }


    /// Appends the digest as 64 lowercase hex characters (`KeyDigest.hex`), as one argument.
    private static func appendHex(_ digest: KeyDigest, to command: inout RedisCommand) {
        let digits: StaticString = "0123456789abcdef"
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 2 * KeyDigest.size) { out in
            digits.withUTF8Buffer { d in
                func write(_ word: UInt64, at start: Int) {
                    for j in 0..<8 {
                        let b = UInt8(truncatingIfNeeded: word >> UInt64(56 - 8 * j))
                        out[start + 2 * j] = d[Int(b >> 4)]
                        out[start + 2 * j + 1] = d[Int(b & 0xF)]
                    }
                }
                write(digest.words.0, at: 0)
                write(digest.words.1, at: 16)
                write(digest.words.2, at: 32)
                write(digest.words.3, at: 48)
            }
            command.append(bytes: UnsafeRawBufferPointer(out))
        }
    }

    /// Reads the CHECK script's reply for the attempt made under `reservation`.
    public func parseCheck(_ reply: RedisValue, identity: KeyIdentity, reservation: ReservationID) throws(RedisError) -> CheckReply {
        if case .error(let e) = reply { throw RedisError(.server, e) }
        guard let a = CheckReplySlots(reply), a.count >= 2, let raw = a[.outcome], let outcome = CheckOutcome(rawValue: raw) else {
            throw RedisError(.unexpectedReply, "CHECK script reply has the wrong shape")
        }
        if outcome == .fenced || outcome == .alreadyRecorded { return .fenced }
        func int(_ slot: CheckReplySlot) -> Int64 { a[slot] ?? 0 }
        func u32(_ slot: CheckReplySlot) -> UInt32 { UInt32(clamping: int(slot)) }
        func optional(_ slot: CheckReplySlot) -> Int64 { a[slot] ?? CheckResult.unlimited }
        guard let reason = DenyReason(rawValue: UInt8(clamping: int(.reason))) else {
            throw RedisError(.unexpectedReply, "CHECK script returned reason \(int(.reason))")
        }
        let allowed = outcome == .admitted
        if reason == .unknownKey { return .decided(.deny(.unknownKey)) }
        return .decided(CheckResult(
            allowed: allowed, reason: reason, keyFlags: UInt16(clamping: int(.flags)), retryAfterMs: u32(.retryAfterMs),
            reservation: allowed ? reservation : .none,
            orgID: identity.orgID, projectID: UInt64(clamping: int(.project)), keyID: identity.keyID,
            requestsLimit: u32(.requestsLimit), requestsRemaining: u32(.requestsRemaining), requestsResetMs: u32(.requestsResetMs),
            tokensLimit: u32(.tokensLimit), tokensRemaining: u32(.tokensRemaining), tokensResetMs: u32(.tokensResetMs),
            keyBudgetRemaining: optional(.keyBudgetRemaining), keyBudgetResetAtMs: int(.keyBudgetResetAtMs),
            projectBudgetRemaining: optional(.projectBudgetRemaining), projectBudgetResetAtMs: int(.projectBudgetResetAtMs),
            orgCreditsRemaining: optional(.orgCredits)))
    }

    /// The atomic SETTLE step (built like `checkCommand`, in place).
    public func settleCommand(_ request: SettleRequest) -> RedisCommand {
        var c = settleCall
        c.reserveCapacity(bytes: 96, arguments: 5)
        Keyspace.append(reservation: request.reservation.sequence, org: request.reservation.orgID, to: &c)
        Keyspace.append(org: request.reservation.orgID, to: &c)
        c.append("settle")
        c.append(request.tokens)
        c.append(request.cost)
        if request.pricedByTable {
            c.append(decimal: UInt64(request.inputTokens))
            c.append(decimal: UInt64(request.outputTokens))
            c.append(decimal: UInt64(min(request.cachedInputTokens, request.inputTokens)))
        }
        return c
    }

    /// The atomic RELEASE step (built like `checkCommand`, in place).
    public func releaseCommand(_ reservation: ReservationID) -> RedisCommand {
        var c = settleCall
        c.reserveCapacity(bytes: 96, arguments: 5)
        Keyspace.append(reservation: reservation.sequence, org: reservation.orgID, to: &c)
        Keyspace.append(org: reservation.orgID, to: &c)
        c.append("release")
        c.append("0")
        c.append("0")
        return c
    }

    /// Reads the SETTLE/RELEASE script's reply.
    public func parseSettle(_ reply: RedisValue) throws(RedisError) -> ReservationResult {
        if case .error(let e) = reply { throw RedisError(.server, e) }
        guard let a = Self.settleSlots(reply), let status = ReservationStatus(rawValue: UInt8(clamping: a.status)) else {
            throw RedisError(.unexpectedReply, "SETTLE script reply has the wrong shape")
        }
        return ReservationResult(status: status, costDelta: a.cost, tokenDelta: a.tokens)
    }

    /// The budget alerts a SETTLE's reply says it crossed (none for any other reply).
    public func settleAlerts(_ reply: RedisValue) -> BudgetAlerts {
        BudgetAlerts(rawValue: UInt8(clamping: Self.settleSlots(reply)?.alerts ?? 0))
    }

    /// A SETTLE step's reply: applied, four big-endian 64-bit integers in one string (status, cost
    /// delta, token delta, alerts); otherwise the array of the first three.
    private static func settleSlots(_ reply: RedisValue) -> (status: Int64, cost: Int64, tokens: Int64, alerts: Int64)? {
        switch reply {
        case .bulk(let b) where b.count == 32:
            return (PackedSlots.int64(b, 0), PackedSlots.int64(b, 1), PackedSlots.int64(b, 2), PackedSlots.int64(b, 3))
        case .array(let a) where a.count == 3:
            guard let status = a[0].int else { return nil }
            return (status, a[1].int ?? 0, a[2].int ?? 0, 0)
        default:
            return nil
        }
    }

    /// The budget alerts a CHECK's reply says its admission crossed (none for any other reply).
    public func checkAlerts(_ reply: RedisValue) -> BudgetAlerts {
        guard let alerts = CheckReplySlots(reply)?[.budgetAlerts] else { return [] }
        return BudgetAlerts(rawValue: UInt8(clamping: alerts))
    }

    /// The VOID step for the attempt under `reservation` (SPEC §13.7).
    public func voidCommand(_ reservation: ReservationID) -> RedisCommand {
        var c = voidScript.head(keyCount: 1)
        Keyspace.append(reservation: reservation.sequence, org: reservation.orgID, to: &c)
        Keyspace.append(org: reservation.orgID, to: &c)
        c.append(decimal: reservation.sequence)
        c.append(fenceTTLMs)
        return c
    }

    /// Reads a VOID's reply: true if an admission was given back.
    public func parseVoid(_ reply: RedisValue) throws(RedisError) -> Bool {
        if case .error(let e) = reply { throw RedisError(.server, e) }
        guard let n = reply.int else { throw RedisError(.unexpectedReply, "VOID script reply is not an integer") }
        return n == 1
    }

    /// The SWEEP step: voids up to `limit` admissions of `org` that bursard `epoch` left undelivered.
    public func sweepCommand(org: UInt64, epoch: UInt64, limit: Int = 256) -> RedisCommand {
        let range = ReservationSequence.range(epoch: epoch)
        return sweepScript.call(
            keys: [Keyspace.undelivered(org), Keyspace.legacyUndelivered(org)],
            args: [Keyspace.org(org), String(epoch), String(fenceTTLMs), String(limit), String(range.lowerBound), String(range.upperBound)])
    }

    /// The confirmation that admissions of `org` reached their clients: they leave the org's
    /// undelivered set (one command for many).
    public static func deliveredCommand(org: UInt64, sequences: some Sequence<UInt64>) -> RedisCommand {
        var c = RedisCommand("SREM", Keyspace.undelivered(org))
        for s in sequences { c.append(decimal: s) }
        return c
    }

    /// What the instance registry is asked.
    public enum Heartbeat: String, Sendable {
        /// Adds the epoch, live from now.
        case register
        /// Marks the epoch live now (unless a sweep already took it) and lists the dead ones.
        case beat
        /// Removes the epoch (a graceful exit that left nothing to sweep).
        case leave
    }

    /// A heartbeat of the bursard holding `epoch`.
    public func heartbeatCommand(epoch: UInt64, _ mode: Heartbeat, leaseMs: Int64) -> RedisCommand {
        heartbeatScript.call(keys: [Keyspace.instances, Keyspace.instanceLeases], args: [String(epoch), mode.rawValue, String(leaseMs)])
    }

    /// A heartbeat's reply: whether the epoch is still registered, Redis's time, and the epochs
    /// whose heartbeats are older than their lease.
    public struct HeartbeatReply: Sendable, Hashable {
        /// An instance that missed its beats.
        public struct Dead: Sendable, Hashable {
            /// Its epoch.
            public var epoch: UInt64
            /// The lease it registered, ms.
            public var leaseMs: Int64
        }
        /// False once a sweep took this epoch for dead.
        public var registered: Bool
        /// Redis's time, Unix ms.
        public var nowMs: Int64
        /// Dead instances (only for `beat`).
        public var dead: [Dead]
    }

    /// Reads a heartbeat's reply.
    public func parseHeartbeat(_ reply: RedisValue) throws(RedisError) -> HeartbeatReply {
        if case .error(let e) = reply { throw RedisError(.server, e) }
        guard let a = reply.array, a.count >= 2, let registered = a[0].int, let now = a[1].int else {
            throw RedisError(.unexpectedReply, "heartbeat reply has the wrong shape")
        }
        let rest = Array(a.dropFirst(2))
        var dead: [HeartbeatReply.Dead] = []
        var i = 0
        while i + 1 < rest.count {
            if let e = rest[i].int, let l = rest[i + 1].int { dead.append(HeartbeatReply.Dead(epoch: UInt64(e), leaseMs: l)) }
            i += 2
        }
        return HeartbeatReply(registered: registered == 1, nowMs: now, dead: dead)
    }
}
