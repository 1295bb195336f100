import BursarLimits
import BursarRBAC
import BursarRedis
@_spi(Testing) import BursarStore
import BursarWire
import Foundation
import Synchronization

/// A metered organization in which nothing is ever denied for a limit, yet every limit exists:
/// each key and project has an RPM, a TPM and a budget far above what a test can use, so every
/// rate bucket and spend window is written and can be compared. Its clock is frozen (the bursards
/// run with `BURSAR_TEST_FROZEN_CLOCK=1`): no bucket drains, no window rolls, no reservation
/// expires, so Redis must hold exactly what the clients were told.
struct ExactnessWorld: Sendable {
    struct Key: Sendable {
        var id: UInt64
        var project: UInt64
        var digest: KeyDigest
        var period: BudgetPeriod
        /// An Owner's key (else a Project Member's, under a member grant).
        var ownerKey: Bool
    }

    var org: UInt64
    var projects: [UInt64]
    var keys: [Key]
    var initialCredits: Int64
    /// The organization's frozen time, Unix µs.
    var clockUs: Int64

    static let credits: Int64 = 4_000_000_000_000_000
    static let keyLimits = (rpm: Int64(20_000_000), tpm: Int64(50_000_000), budget: Int64(100_000_000_000_000))
    static let grant = Grant(maxKeySpend: 200_000_000_000_000, rpm: 50_000_000, tpm: 80_000_000)
    static let projectLimits = (rpm: Int64(100_000_000), tpm: Int64(100_000_000), budget: Int64(1_000_000_000_000_000))

    /// Seeds the organization: an Owner, two Project Members, `projects` projects each with both
    /// members (granted) and `keysPerProject` keys, alternately an Owner's and a member's, over
    /// every budget period. Freezes the organization's clock at Redis's current time.
    static func seed(store: MetadataStore, redis: RedisClient, projects projectCount: Int = 3, keysPerProject: Int = 4) async throws -> ExactnessWorld {
        let org = try await store.createOrganization(name: "stall", metered: true, credits: credits)
        let time = try await redis.send(RedisCommand("TIME")).array ?? []
        let clockUs = (time[0].int ?? 0) * 1_000_000 + (time[1].int ?? 0)
        try await store.setTestClock(org: org.id, us: clockUs)
        let owner = try await store.createUser(org: org.id, email: "owner-\(org.id)@stall.test", name: "owner", role: .owner)
        var members: [User] = []
        for i in 0..<2 {
            members.append(try await store.createUser(org: org.id, email: "member\(i)-\(org.id)@stall.test", name: "member\(i)", role: .member))
        }
        var projects: [UInt64] = []
        var keys: [Key] = []
        for p in 0..<projectCount {
            let project = try await store.createProject(
                org: org.id, name: "p\(p)", rpm: projectLimits.rpm, tpm: projectLimits.tpm, monthlyBudget: projectLimits.budget)
            projects.append(project.id)
            for m in members {
                try await store.setMembership(Membership(orgID: org.id, projectID: project.id, userID: m.id, role: .member, grant: grant))
            }
            for k in 0..<keysPerProject {
                let n = p * keysPerProject + k
                let ownerKey = k % 2 == 0
                let user = ownerKey ? owner.id : members[(n / 2) % members.count].id
                let period = BudgetPeriod.allCases[n % BudgetPeriod.allCases.count]
                let created = try await store.createKey(
                    org: org.id, project: project.id, user: user, name: "k\(n)",
                    limits: KeyLimits(budget: keyLimits.budget, period: period, rpm: keyLimits.rpm, tpm: keyLimits.tpm))
                keys.append(Key(id: created.key.id, project: project.id, digest: KeyDigest(secret: created.secret), period: period, ownerKey: ownerKey))
            }
        }
        return ExactnessWorld(org: org.id, projects: projects, keys: keys, initialCredits: credits, clockUs: clockUs)
    }

    /// The key's spend window counter at the frozen time, named as the CHECK script names it.
    func keySpendKey(_ key: Key) -> String {
        let window = key.period == .lifetime ? "life" : String(SpendWindow.containing(clockUs / 1000, period: key.period).startMs)
        return Keyspace.keySpend(org, key.id, window: window)
    }

    /// The project's monthly spend window counter at the frozen time.
    func projectSpendKey(_ project: UInt64) -> String {
        Keyspace.projectSpend(org, project, window: String(SpendWindow.containing(clockUs / 1000, period: .monthly).startMs))
    }
}

/// What the clients of a load were told, by the gateway rules of SPEC §10 and §11.4: an allowed
/// CHECK is an admission (a local one included); a denied one, or one without an answer, is not.
/// A SETTLE or RELEASE counts once a definitive answer says it took effect. Thread-safe.
final class ClientLedger: Sendable {
    /// How the client last learnt an admission ended.
    enum Settlement: Sendable, Equatable {
        /// Not settled or released (or no definitive answer came): its estimate stands.
        case open
        case settled(tokens: Int64, cost: Int64)
        case released

        /// The reservation hash's `st` for this.
        var status: String {
            switch self {
            case .open: return "open"
            case .settled: return "settled"
            case .released: return "released"
            }
        }
    }

    struct Admission: Sendable {
        /// Index into `ExactnessWorld.keys`.
        var key: Int
        /// Input plus maximum output tokens, reserved at CHECK.
        var tokens: Int64
        var estimate: Int64
        /// Admitted locally (key_flags bit 1).
        var local: Bool
        var settlement: Settlement = .open
    }

    struct Counts: Sendable {
        var checks = 0
        var admitted = 0
        var admittedLocally = 0
        var denied: [DenyReason: Int] = [:]
        /// CHECKs whose connection ended before the answer.
        var noAnswer = 0
        /// Answers of the wrong type (an ERROR frame): treated like no answer.
        var unexpectedAnswers = 0
        var settled = 0
        var released = 0
        /// SETTLE/RELEASE attempts after the first (after store_unavailable, overloaded or a lost connection).
        var retries = 0
        /// Times no bursard accepted a connection.
        var unreachable = 0
    }

    private struct State {
        /// By the id the client was given (sealed, SPEC §5).
        var admissions: [ReservationID: Admission] = [:]
        var counts = Counts()
        var anomalies: [String] = []
    }

    private let state = Mutex(State())

    func checkSent() { state.withLock { $0.counts.checks += 1 } }
    func noAnswer() { state.withLock { $0.counts.noAnswer += 1 } }
    func unexpectedAnswer() { state.withLock { $0.counts.unexpectedAnswers += 1 } }
    func denied(_ reason: DenyReason) { state.withLock { $0.counts.denied[reason, default: 0] += 1 } }
    func retried() { state.withLock { $0.counts.retries += 1 } }
    func unreachable() { state.withLock { $0.counts.unreachable += 1 } }

    /// An exactness failure the clients saw (a reservation id given twice, `expired` or `unknown`
    /// for a reservation they were told about, a follow-up that never got a definitive answer).
    func anomaly(_ text: String) { state.withLock { $0.anomalies.append(text) } }

    /// A CHECK answered allowed.
    func admitted(_ reservation: ReservationID, _ admission: Admission) {
        state.withLock { s in
            s.counts.admitted += 1
            if admission.local { s.counts.admittedLocally += 1 }
            if s.admissions[reservation] != nil {
                s.anomalies.append("reservation \(reservation.hex) was admitted twice")
            }
            s.admissions[reservation] = admission
        }
    }

    /// A definitive answer: the SETTLE or RELEASE took effect (now, or by an earlier try).
    func settled(_ reservation: ReservationID, _ settlement: Settlement) {
        state.withLock { s in
            s.admissions[reservation]?.settlement = settlement
            if case .settled = settlement { s.counts.settled += 1 } else { s.counts.released += 1 }
        }
    }

    var admissions: [ReservationID: Admission] { state.withLock { $0.admissions } }
    var counts: Counts { state.withLock { $0.counts } }
    var anomalies: [String] { state.withLock { $0.anomalies } }
}

extension ClientLedger.Counts: CustomStringConvertible {
    /// One line: admitted, denied by reason, no answer, follow-ups, retries.
    var description: String {
        let denials = denied.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        return "checks=\(checks) admitted=\(admitted) (local=\(admittedLocally)) denied{\(denials)} no_answer=\(noAnswer)"
            + (unexpectedAnswers > 0 ? " unexpected_answers=\(unexpectedAnswers)" : "")
            + " settled=\(settled) released=\(released) retries=\(retries)" + (unreachable > 0 ? " unreachable=\(unreachable)" : "")
    }
}

/// Compares Redis with a client ledger, counter by counter.
enum Exactness {
    /// One counter whose value in Redis is not what the clients were told.
    struct Difference: Sendable, CustomStringConvertible {
        var counter: String
        var expected: Int64
        var actual: Int64
        var note: String = ""

        var description: String {
            let delta = actual - expected
            return "\(counter): expected \(expected), actual \(actual) (\(delta >= 0 ? "+" : "")\(delta))\(note.isEmpty ? "" : " " + note)"
        }
    }

    struct Report: Sendable, CustomStringConvertible {
        var differences: [Difference] = []
        /// Open reservations no client was told about (stranded estimates), by sequence.
        var strandedOpen: [UInt64] = []
        /// Reservations clients were told about that Redis does not have.
        var missing: [UInt64] = []
        /// Reservations whose status is not what the client's last definitive answer implies.
        var wrongStatus: [String] = []
        /// Reservations no client was told about, by status (a late admission released or voided is fine).
        var untoldByStatus: [String: Int] = [:]
        var anomalies: [String] = []
        var counts = ClientLedger.Counts()

        var isExact: Bool { differences.isEmpty && strandedOpen.isEmpty && missing.isEmpty && wrongStatus.isEmpty && anomalies.isEmpty }

        /// "exact", or how many things differ.
        var verdict: String {
            isExact ? "exact"
                : "NOT exact: \(differences.count) counters differ, \(strandedOpen.count) open reservations nobody was told about, "
                + "\(missing.count) missing, \(wrongStatus.count) with the wrong status, \(anomalies.count) client anomalies"
        }

        var description: String {
            var lines = ["Redis vs. what clients were told: \(verdict)", "outcomes: \(counts)"]
            lines += differences.map { "  \($0)" }
            if !strandedOpen.isEmpty {
                lines.append("  open reservations nobody was told about: \(strandedOpen.count) (e.g. \(strandedOpen.sorted().prefix(8).map(String.init).joined(separator: ", ")))")
            }
            if !missing.isEmpty {
                lines.append("  told-admitted reservations missing from Redis: \(missing.count) (e.g. \(missing.sorted().prefix(8).map(String.init).joined(separator: ", ")))")
            }
            lines += wrongStatus.prefix(8).map { "  \($0)" }
            if wrongStatus.count > 8 { lines.append("  … \(wrongStatus.count - 8) more with the wrong status") }
            lines += anomalies.prefix(8).map { "  client: \($0)" }
            if anomalies.count > 8 { lines.append("  … \(anomalies.count - 8) more client anomalies") }
            let untold = untoldByStatus.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            lines.append("  reservations no client was told about, by status: {\(untold)}")
            return lines.joined(separator: "\n")
        }
    }

    /// The bucket level scale (µs per minute).
    static let scale: Int64 = 60_000_000

    /// Compares every key's and project's RPM and TPM bucket and spend window, the org's credits
    /// and every reservation with what the ledger says clients were told.
    static func check(_ world: ExactnessWorld, _ ledger: ClientLedger, redis: RedisClient) async throws -> Report {
        var report = Report(anomalies: ledger.anomalies, counts: ledger.counts)
        // Redis names a reservation by its sequence in the organization; the clients hold its
        // sealed id. Every id a client was told of must open, to one of this organization.
        let seal = try await reservationSeal(redis)
        var admissions: [UInt64: ClientLedger.Admission] = [:]
        for (id, admission) in ledger.admissions {
            guard let name = seal.open(id), name.orgID == world.org else {
                report.anomalies.append("an admission carried reservation \(id.hex), which names none of organization \(world.org)")
                continue
            }
            admissions[name.sequence] = admission
        }

        // Expected, per key and per project.
        var rpm: [String: Int64] = [:], tpm: [String: Int64] = [:], spend: [String: Int64] = [:]
        var totalSpend: Int64 = 0
        for a in admissions.values {
            let key = world.keys[a.key]
            let (tokens, cost): (Int64, Int64)
            switch a.settlement {
            case .open: (tokens, cost) = (a.tokens, a.estimate)
            case .settled(let t, let c): (tokens, cost) = (t, c)
            case .released: (tokens, cost) = (0, 0)
            }
            for scope in [("k", key.id), ("p", key.project)] {
                rpm[Keyspace.buckets(world.org, scope: scope.0, id: scope.1), default: 0] += 1
                tpm[Keyspace.buckets(world.org, scope: scope.0, id: scope.1), default: 0] += tokens
            }
            spend[world.keySpendKey(key), default: 0] += cost
            spend[world.projectSpendKey(key.project), default: 0] += cost
            totalSpend += cost
        }

        // Actual: every counter in one MGET.
        enum Kind { case rpm, tpm, spend }
        var counters: [(name: String, key: String, kind: Kind, expected: Int64)] = []
        func add(_ name: String, scope: String, id: UInt64, spendKey: String) {
            let b = Keyspace.buckets(world.org, scope: scope, id: id)
            counters.append(("\(name) RPM", b, .rpm, rpm[b] ?? 0))
            counters.append(("\(name) TPM", b, .tpm, tpm[b] ?? 0))
            counters.append(("\(name) spend [\(spendKey)]", spendKey, .spend, spend[spendKey] ?? 0))
        }
        for (i, key) in world.keys.enumerated() {
            add("key \(key.id) (#\(i), \(key.ownerKey ? "owner" : "member"), project \(key.project), \(key.period))", scope: "k", id: key.id, spendKey: world.keySpendKey(key))
        }
        for project in world.projects { add("project \(project)", scope: "p", id: project, spendKey: world.projectSpendKey(project)) }
        let values = try await redis.send(RedisCommand(["MGET"] + counters.map(\.key) + [Keyspace.credits(world.org)])).array ?? []
        for (i, c) in counters.enumerated() {
            let raw = i < values.count ? values[i].string : nil
            switch c.kind {
            case .rpm, .tpm:
                // The pair "rpm_level:…:tpm_level:…"; absent = 0.
                guard let raw else {
                    if c.expected != 0 { report.differences.append(Difference(counter: c.name, expected: c.expected, actual: 0, note: "(absent)")) }
                    continue
                }
                guard let pair = RateBuckets(raw) else {
                    report.differences.append(Difference(counter: c.name, expected: c.expected, actual: -1, note: "(unreadable buckets '\(raw)')"))
                    continue
                }
                let level = c.kind == .rpm ? pair.rpmLevel : pair.tpmLevel
                if level % scale != 0 {
                    report.differences.append(Difference(
                        counter: c.name, expected: c.expected, actual: level / scale,
                        note: "(level \(level) is not a multiple of \(scale): it drained or was part-written)"))
                } else if level / scale != c.expected {
                    report.differences.append(Difference(counter: c.name, expected: c.expected, actual: level / scale))
                }
            case .spend:
                let actual = raw.flatMap { Int64($0) } ?? 0
                if actual != c.expected { report.differences.append(Difference(counter: c.name, expected: c.expected, actual: actual)) }
            }
        }
        let credits = values.last?.string.flatMap { Int64($0) } ?? 0
        if credits != world.initialCredits - totalSpend {
            report.differences.append(Difference(counter: "org \(world.org) credits", expected: world.initialCredits - totalSpend, actual: credits))
        }

        // Reservations: every record under the organization's `r:` prefix.
        let prefix = String(Keyspace.reservation(world.org, 0).dropLast())  // "br:{o<org>}:r:"
        let names = try await keyNames(redis, matching: prefix + "*")
        var seen = Set<UInt64>()
        let byKey = Dictionary(world.keys.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        for start in stride(from: 0, to: names.count, by: 500) {
            let batch = Array(names[start..<min(start + 500, names.count)])
            let replies = try await redis.send(batch.map { RedisCommand("GET", $0) }, timeout: .seconds(10))
            for (name, reply) in zip(batch, replies) {
                guard let record = ReservationRecord(reply: reply), let sequence = UInt64(name.dropFirst(prefix.count)) else { continue }
                let status = record.status
                seen.insert(sequence)
                guard let told = admissions[sequence] else {
                    report.untoldByStatus[status, default: 0] += 1
                    if status == "open" { report.strandedOpen.append(sequence) }
                    continue
                }
                if status != told.settlement.status {
                    report.wrongStatus.append("reservation \(sequence): the client's last definitive answer implies '\(told.settlement.status)', Redis has '\(status)'")
                }
                // The window names this check computed must be the ones the script wrote.
                if let kid = record.keyID, let key = byKey[kid], let kw = record.keyWindow, kw != world.keySpendKey(key) {
                    report.wrongStatus.append("reservation \(sequence): key window '\(kw)' is not the computed '\(world.keySpendKey(key))'")
                }
                if let kid = record.keyID, let key = byKey[kid], let pw = record.projectWindow, pw != world.projectSpendKey(key.project) {
                    report.wrongStatus.append("reservation \(sequence): project window '\(pw)' is not the computed '\(world.projectSpendKey(key.project))'")
                }
            }
        }
        report.missing = admissions.keys.filter { !seen.contains($0) }
        return report
    }
}

/// Every key name matching `pattern`, by `SCAN` (one node: not for Redis Cluster).
func keyNames(_ redis: RedisClient, matching pattern: String) async throws -> [String] {
    var names: [String] = []
    var cursor = "0"
    repeat {
        let reply = try await redis.send(RedisCommand("SCAN", cursor, "MATCH", pattern, "COUNT", "1000")).array ?? []
        cursor = reply.first?.string ?? "0"
        names += (reply.count > 1 ? reply[1].array ?? [] : []).compactMap(\.string)
    } while cursor != "0"
    return names
}
