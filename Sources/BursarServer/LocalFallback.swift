import BursarStore
import BursarWire
import NIOCore
public import Synchronization

/// What bursard answers, for one class of limits, when Redis cannot decide within the deadline.
public enum StoreFailureMode: String, Sendable, Hashable, CaseIterable {
    /// Answer `store_unavailable`: nothing is admitted that Redis has not checked.
    case deny
    /// Admit locally, within the local allowance, and replay the debit into Redis when it returns.
    case allow
}

/// bursard's store failure policy: per limit class, what happens to a CHECK Redis cannot answer
/// in time. The default, `deny` for both, keeps every limit exact.
///
/// A request is admitted locally only when every class of limit its key had at its last decision
/// by Redis is `allow` (a key with a budget, a project budget or a metered org has spend limits;
/// one with an RPM or TPM at either level has rate limits), the key was active and the model was
/// admitted for it then, and the key has had fewer than `localAllowancePerKeyPerMinute` local
/// admissions from this bursard this minute. A key this bursard has not seen decided by Redis is
/// never admitted locally.
public struct StoreFailurePolicy: Sendable, Hashable {
    /// For RPM and TPM at key and project level.
    public var rateLimits: StoreFailureMode
    /// For key budgets, project budgets and org credits.
    public var spendLimits: StoreFailureMode
    /// Most local admissions per key per minute, per bursard.
    public var localAllowancePerKeyPerMinute: Int
    /// Most local admissions held for replay; past it, `store_unavailable`.
    public var maxPendingReplay: Int

    /// A policy. Defaults: deny both, 60 local admissions per key per minute, 100,000 pending.
    public init(
        rateLimits: StoreFailureMode = .deny, spendLimits: StoreFailureMode = .deny,
        localAllowancePerKeyPerMinute: Int = 60, maxPendingReplay: Int = 100_000
    ) {
        self.rateLimits = rateLimits
        self.spendLimits = spendLimits
        self.localAllowancePerKeyPerMinute = localAllowancePerKeyPerMinute
        self.maxPendingReplay = maxPendingReplay
    }

    /// Whether any request can be admitted without Redis.
    public var admitsLocally: Bool { (rateLimits == .allow || spendLimits == .allow) && localAllowancePerKeyPerMinute > 0 }
}

/// Where bursard stands with its store, for `/readyz` and the metrics.
public enum StoreMode: String, Sendable {
    /// Redis answers; every decision is Redis's.
    case available
    /// Redis does not answer; CHECKs get `store_unavailable`.
    case unavailableDenying = "unavailable_deny"
    /// Redis does not answer; CHECKs are admitted locally within the policy and replayed later.
    case unavailableAdmittingLocally = "unavailable_local"
}

/// Counters of local admissions and their replay.
public final class FallbackStats: Sendable {
    /// CHECKs admitted locally.
    public let admitted = Atomic<Int>(0)
    /// SETTLEs and RELEASEs of local admissions answered locally (before their replay).
    public let settledLocally = Atomic<Int>(0)
    /// Local admissions recorded in Redis by a replay (each counted once, when it is done with).
    public let replayed = Atomic<Int>(0)
    /// Local admissions whose key no longer existed when replayed: their debit could not be placed.
    public let dropped = Atomic<Int>(0)
    init() {}
}

/// The admissions bursard makes on its own while Redis is unreachable, and what it knows of each
/// key to make them: its store failure policy at work. Thread-safe (one lock).
///
/// A local admission's reservation sequence carries the local bit (`ReservationSequence`), so any
/// bursard can tell one that Redis may not know yet. A SETTLE or RELEASE of it before its replay
/// is answered here; the replay then records the admission in Redis with the CHECK script in
/// replay mode (every counter debited, nothing checked, the reservation recorded under the same
/// id) followed by that SETTLE or RELEASE, both idempotent, so a replay repeated after a broken
/// connection counts once. The CHECK that was sent to Redis before the local admission (and
/// whose outcome was not learnt in time) is voided by the engine, so the two never both count.
final class LocalFallback: Sendable {
    /// Most models remembered per key.
    static let modelsPerKey = 16

    /// Whether a reservation was made by some bursard's local fallback.
    static func isLocal(_ reservation: ReservationID) -> Bool { ReservationSequence.isLocal(reservation.sequence) }

    /// What Redis last said about a key.
    struct Profile {
        var projectID: UInt64
        var flags: UInt16
        var rateLimited = true
        var spendLimited = true
        /// A deny that no local admission may override (revoked, expired, suspended…).
        var standing: DenyReason?
        /// Models Redis admitted for the key, most recent last.
        var models: [ModelName] = []
        var minute: UInt64 = .max
        var admittedThisMinute = 0
    }

    enum Settlement: Equatable {
        case open
        case settled(SettleRequest)
        case released
    }

    /// An admission awaiting replay.
    struct Admission {
        var request: CheckRequest
        var identity: KeyIdentity
        var at: NIODeadline
        var settlement = Settlement.open
        /// Bumped on every change, so a replay only confirms the state it sent.
        var version = 0
    }

    /// One admission as a replay sends it.
    struct ReplayItem {
        var sequence: UInt64
        var admission: Admission
    }

    private struct State {
        var profiles: [KeyIdentity: Profile] = [:]
        var pending: [UInt64: Admission] = [:]
    }

    let policy: StoreFailurePolicy
    let stats = FallbackStats()
    private let reservationTTL: TimeAmount
    private let capacity: Int
    private let state = Mutex(State())

    init(policy: StoreFailurePolicy, reservationTTL: TimeAmount, capacity: Int) {
        self.policy = policy
        self.reservationTTL = reservationTTL
        self.capacity = max(1, capacity)
    }

    /// Admissions awaiting replay.
    var pendingCount: Int { state.withLock { $0.pending.count } }

    /// Learns from a decision Redis made for `identity`.
    func learn(_ result: CheckResult, request: CheckRequest, identity: KeyIdentity) {
        state.withLock { s in
            if result.reason == .unknownKey {
                s.profiles.removeValue(forKey: identity)
                return
            }
            if s.profiles[identity] == nil && s.profiles.count >= capacity {
                s.profiles.remove(at: s.profiles.startIndex)
            }
            var p = s.profiles[identity] ?? Profile(projectID: result.projectID, flags: result.keyFlags)
            p.projectID = result.projectID
            p.flags = result.keyFlags
            switch result.reason {
            case .keyRevoked, .keyExpired, .creatorLostAccess, .projectInactive, .orgSuspended:
                p.standing = result.reason
            case .modelNotAllowed:
                p.standing = nil
                p.models.removeAll { $0 == request.model }
            case .requestTooLarge:
                p.standing = nil
            default:
                // Allowed, or denied by a rate or spend limit: the whole script ran, so the answer
                // carries every limit that applies.
                p.standing = nil
                p.rateLimited = result.requestsLimit > 0 || result.tokensLimit > 0
                p.spendLimited = result.keyBudgetRemaining != CheckResult.unlimited
                    || result.projectBudgetRemaining != CheckResult.unlimited
                    || result.orgCreditsRemaining != CheckResult.unlimited
                if !p.models.contains(request.model) {
                    if p.models.count >= Self.modelsPerKey { p.models.removeFirst() }
                    p.models.append(request.model)
                }
            }
            s.profiles[identity] = p
        }
    }

    /// Forgets what was learnt of the keys `matching` picks (their pending admissions stay).
    func forget(_ matching: (KeyIdentity) -> Bool) {
        state.withLock { s in
            s.profiles = s.profiles.filter { !matching($0.key) }
        }
    }

    /// Decides a CHECK without Redis: a local admission (under a local sequence from `sequence`),
    /// a standing deny, or nil (`store_unavailable`).
    func decide(_ request: CheckRequest, identity: KeyIdentity, now: NIODeadline, sequence: () -> UInt64?) -> CheckResult? {
        state.withLock { s -> CheckResult? in
            guard var p = s.profiles[identity] else { return nil }
            if let standing = p.standing {
                return CheckResult(allowed: false, reason: standing, keyFlags: p.flags, orgID: identity.orgID, projectID: p.projectID, keyID: identity.keyID)
            }
            if p.rateLimited && policy.rateLimits == .deny { return nil }
            if p.spendLimited && policy.spendLimits == .deny { return nil }
            // Priced from the table: its cost is Redis's to compute, so under a money limit it
            // waits for Redis.
            if p.spendLimited && request.pricedByTable { return nil }
            guard p.models.contains(request.model), s.pending.count < policy.maxPendingReplay else { return nil }
            let minute = now.uptimeNanoseconds / 60_000_000_000
            if p.minute != minute {
                p.minute = minute
                p.admittedThisMinute = 0
            }
            guard p.admittedThisMinute < policy.localAllowancePerKeyPerMinute, let sequence = sequence() else { return nil }
            p.admittedThisMinute += 1
            s.profiles[identity] = p
            s.pending[sequence] = Admission(request: request, identity: identity, at: now)
            stats.admitted.add(1, ordering: .relaxed)
            return CheckResult(
                allowed: true, reason: .none, keyFlags: p.flags | CheckResult.flagAdmittedLocally,
                reservation: ReservationID(orgID: identity.orgID, sequence: sequence),
                orgID: identity.orgID, projectID: p.projectID, keyID: identity.keyID)
        }
    }

    /// Settles (`settle`) or releases (nil) a local admission not yet replayed, with the script's
    /// semantics; nil when it is not held here (replayed, or another bursard's). A cost priced
    /// from the table is Redis's to compute at the replay: the answer's cost delta is then 0.
    func settle(_ reservation: ReservationID, settle: SettleRequest?, now: NIODeadline) -> ReservationResult? {
        state.withLock { s -> ReservationResult? in
            guard var a = s.pending[reservation.sequence], a.identity.orgID == reservation.orgID else { return nil }
            switch a.settlement {
            case .settled: return ReservationResult(status: .alreadySettled)
            case .released: return ReservationResult(status: .alreadyReleased)
            case .open: break
            }
            if now - a.at >= reservationTTL { return ReservationResult(status: .expired) }
            let estimate = a.request.reservedTokens
            let result: ReservationResult
            let reserved = a.request.pricedByTable ? 0 : a.request.estimatedCost
            if let settle {
                a.settlement = .settled(settle)
                let delta = settle.pricedByTable || a.request.pricedByTable ? 0 : settle.cost - reserved
                result = ReservationResult(status: .applied, costDelta: delta, tokenDelta: settle.tokens - estimate)
            } else {
                a.settlement = .released
                result = ReservationResult(status: .applied, costDelta: -reserved, tokenDelta: -estimate)
            }
            a.version += 1
            s.pending[reservation.sequence] = a
            stats.settledLocally.add(1, ordering: .relaxed)
            return result
        }
    }

    /// Up to `limit` admissions to replay, oldest first.
    func replayBatch(limit: Int) -> [ReplayItem] {
        state.withLock { s in
            s.pending.sorted { $0.key < $1.key }.prefix(limit).map { ReplayItem(sequence: $0.key, admission: $0.value) }
        }
    }

    /// The remaining reservation TTL of an admission, ms (at least 1).
    func remainingTTLMs(_ admission: Admission, now: NIODeadline) -> Int64 {
        max(1, (reservationTTL - (now - admission.at)).nanoseconds / 1_000_000)
    }

    /// Forgets replayed admissions whose state has not changed since the replay read them (one
    /// settled meanwhile is replayed again: the CHECK part is then a no-op, the SETTLE applies).
    /// Returns how many it forgot.
    @discardableResult
    func confirm(_ items: [ReplayItem]) -> Int {
        state.withLock { s in
            var forgotten = 0
            for item in items where s.pending[item.sequence]?.version == item.admission.version {
                s.pending.removeValue(forKey: item.sequence)
                forgotten += 1
            }
            return forgotten
        }
    }
}
