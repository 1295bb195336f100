public import BursarAPI
import BursarRBAC
import BursarStore
import BursarWire

/// What a usage-history request asks for (GET /v1/orgs/{org}/usage/history).
public struct HistoryQuery: Sendable, Hashable {
    /// What the history can be grouped by.
    public enum Dimension: String, Sendable, CaseIterable {
        case day, project, key, model
    }

    /// The first and last day (days since 1970-01-01 UTC), inclusive.
    public var from: Int64
    public var to: Int64
    /// The dimensions, in order, each at most once.
    public var groupBy: [Dimension]
    /// Only this project's, or this key's, history.
    public var project: UInt64?
    public var key: UInt64?

    /// The longest range one request may read.
    public static let maximumDays: Int64 = 800

    public init(from: Int64, to: Int64, groupBy: [Dimension], project: UInt64? = nil, key: UInt64? = nil) {
        (self.from, self.to, self.groupBy, self.project, self.key) = (from, to, groupBy, project, key)
    }

    /// Reads the query parameters `from`, `to` (YYYY-MM-DD, UTC; default: the 30 days ending
    /// `today`), `group_by` (comma-separated dimensions, a repeat ignored; default `day`),
    /// `project_id`, `key_id`.
    public static func parse(_ get: (String) -> String?, today: Int64) throws -> HistoryQuery {
        func day(_ name: String) throws -> Int64? {
            guard let text = get(name) else { return nil }
            guard let d = HistoryDay.parse(text) else { throw APIError(.invalid, "\(name) must be a date as YYYY-MM-DD, not '\(text)'") }
            return d
        }
        func id(_ name: String) throws -> UInt64? {
            guard let text = get(name) else { return nil }
            guard let v = UInt64(text), v > 0 else { throw APIError(.invalid, "\(name) must be a positive integer, not '\(text)'") }
            return v
        }
        let to = try day("to") ?? today
        let from = try day("from") ?? (to - 29)
        guard from <= to else { throw APIError(.invalid, "from (\(HistoryDay.format(from))) is after to (\(HistoryDay.format(to)))") }
        guard to - from < maximumDays else { throw APIError(.invalid, "a history request spans at most \(maximumDays) days") }
        var dims: [Dimension] = []
        let groupBy = get("group_by") ?? "day"
        let parts = groupBy.split(separator: ",", omittingEmptySubsequences: false)
        guard groupBy.utf8.count <= 31, parts.count <= 4 else {
            throw APIError(.invalid, "group_by names at most 4 dimensions (day, project, key, model) in at most 31 characters")
        }
        for part in parts {
            let name = String(part)
            guard let d = Dimension(rawValue: name) else {
                throw APIError(.invalid, "group_by takes day, project, key and model, comma-separated; not '\(name)'")
            }
            if !dims.contains(d) { dims.append(d) }
        }
        return HistoryQuery(from: from, to: to, groupBy: dims, project: try id("project_id"), key: try id("key_id"))
    }
}

extension AdminService {
    /// Which history an actor may read: everything (Owners), or some projects whole (their
    /// Project Admins) and some keys (a Project Member's own).
    struct HistoryScope: Sendable {
        var all = false
        var projects: Set<UInt64> = []
        var keys: Set<UInt64> = []
        func admits(_ project: UInt64, _ key: UInt64) -> Bool { all || projects.contains(project) || keys.contains(key) }
    }

    /// Usage history (SPEC §13.13) of what the caller may see: Owners everything; Project Admins
    /// their projects; Project Members their own keys. `project` or `key` narrows it and answers
    /// not_found when the caller may not see that project or key.
    public func usageHistory(_ actor: Actor, _ org: UInt64, _ q: HistoryQuery) async throws -> HistoryResponse {
        let target = q.key.map { "key:\($0)" } ?? q.project.map { "project:\($0)" } ?? "org:\(org)"
        return try await audited(actor, org: org, "usage.history", target, mutation: false) {
            let role = try await orgRole(actor, org)
            var scope = HistoryScope()
            if let key = q.key {
                let (k, _) = try await authorizedKey(actor, org, key)
                if let p = q.project, p != k.projectID { throw APIError.notFound("key \(key)") }
                scope.keys = [key]
            } else if let project = q.project {
                let (standing, _) = try await requireProject(actor, org, project, .createAndManageOwnKeys)
                if Policy.permits(.manageAllKeysInProject, standing) {
                    scope.projects = [project]
                } else {
                    scope.keys = Set(try await store.keys(org: org, project: project).filter { $0.userID == actor.userID }.map(\.id))
                }
            } else if role == .owner {
                scope.all = true
            } else if let user = actor.userID {
                for project in try await store.projectIDs(org: org, user: user) {
                    guard let m = try await store.membership(org: org, project: project, user: user),
                          let standing = Standing(orgRole: role, projectRole: m.role)
                    else { continue }
                    if Policy.permits(.manageAllKeysInProject, standing) {
                        scope.projects.insert(project)
                    } else {
                        for k in try await store.keys(org: org, project: project) where k.userID == user { scope.keys.insert(k.id) }
                    }
                }
            }
            let s = scope
            let entries = try await history.entries(org: org, from: q.from, to: q.to) { s.admits($0, $1) }
            return try await historyResponse(org, q, entries)
        }
    }

    /// Groups `entries` as `q` asks, naming projects and keys that still exist.
    func historyResponse(_ org: UInt64, _ q: HistoryQuery, _ entries: [HistoryEntry]) async throws -> HistoryResponse {
        struct Group: Hashable {
            var day: Int64?
            var project: UInt64?
            var key: UInt64?
            var model: String?
        }
        var sums: [Group: HistoryCounts] = [:]
        var total = HistoryCounts()
        for e in entries {
            var g = Group()
            for d in q.groupBy {
                switch d {
                case .day: g.day = e.day
                case .project: g.project = e.projectID
                case .key: (g.project, g.key) = (e.projectID, e.keyID)
                case .model: g.model = e.model
                }
            }
            sums[g, default: HistoryCounts()].add(e.counts)
            total.add(e.counts)
        }
        var projectNames: [UInt64: String] = [:]
        var keyNames: [UInt64: String] = [:]
        if q.groupBy.contains(.project) || q.groupBy.contains(.key) {
            let keyed = q.groupBy.contains(.key) ? Set(sums.keys.compactMap(\.project)) : []
            for p in try await store.projects(org: org) {
                projectNames[p.id] = p.name
                if keyed.contains(p.id) {
                    for k in try await store.keys(org: org, project: p.id) { keyNames[k.id] = k.name }
                }
            }
        }
        let ordered = sums.keys.sorted {
            ($0.day ?? 0, $0.project ?? 0, $0.key ?? 0, $0.model ?? "") < ($1.day ?? 0, $1.project ?? 0, $1.key ?? 0, $1.model ?? "")
        }
        let rows = ordered.map { g in
            var r = HistoryRowBody(sums[g]!)
            r.day = g.day.map(HistoryDay.format)
            r.projectId = g.project
            r.projectName = g.project.flatMap { projectNames[$0] }
            r.keyId = g.key
            r.keyName = g.key.flatMap { keyNames[$0] }
            r.model = g.model
            return r
        }
        return HistoryResponse(
            from: HistoryDay.format(q.from), to: HistoryDay.format(q.to), groupBy: q.groupBy.map(\.rawValue), rows: rows,
            totals: HistoryRowBody(total))
    }

    /// Today on the limiter's clock for `org` (UTC days since 1970-01-01).
    public func historyToday(_ org: UInt64) async throws -> Int64 {
        HistoryDay.of(ms: try await usage.nowMs(org: org))
    }

    /// The history reader.
    var history: HistoryReader { HistoryReader(redis: store.redis) }
}

extension HistoryRowBody {
    init(_ c: HistoryCounts) {
        self.init(
            requestsAdmitted: c.admitted, requestsSettled: c.settled, requestsReleased: c.released, requestsOpen: c.openRequests,
            requestsDenied: c.deniedTotal, denied: Dictionary(uniqueKeysWithValues: c.denied.map { ($0.key.description, $0.value) }),
            tokensSettled: c.settledTokens, tokensOpen: c.openTokens, tokens: c.tokens, spendSettledNusd: c.settledSpend,
            spendOpenNusd: c.openSpend, spendNusd: c.spend)
    }
}
