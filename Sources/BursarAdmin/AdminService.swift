import BursarAPI
import BursarRBAC
public import BursarStore
import BursarLimits
import BursarRedis
import Foundation
public import Synchronization
public import Logging

/// The admin API's operations, independent of HTTP. Every operation authenticates its actor,
/// asks `Policy` before it reads or writes anything, and records every mutation and every refused
/// attempt in the organization's audit log.
/// Counts the admin API keeps for the operator's metrics.
public final class AdminCounters: Sendable {
    /// Refused requests by people with no standing in the organization they named: counted here,
    /// not written into that organization's audit log.
    public let outsiderRefusals = Atomic<Int>(0)
    init() {}
}

public struct AdminService: Sendable {
    /// The metadata store.
    public let store: MetadataStore
    /// The audit log.
    public let audit: AuditLog
    /// Live usage, read from Redis on the limiter's clock.
    let usage: UsageReader
    let logger: Logger
    /// What the service counts for the operator's metrics.
    public let counters = AdminCounters()

    /// A service.
    public init(store: MetadataStore, audit: AuditLog, logger: Logger) {
        self.init(store: store, audit: audit, usage: UsageReader(redis: store.redis), logger: logger)
    }

    init(store: MetadataStore, audit: AuditLog, usage: UsageReader, logger: Logger) {
        self.store = store
        self.audit = audit
        self.usage = usage
        self.logger = logger
    }

    /// Tells every bursard (through Redis pub/sub) to drop what its cache holds for `what`.
    /// Correctness never depends on it (the CHECK step re-reads every rule); a lost notice costs
    /// at most the cache TTL, so a failure to publish is logged, not raised.
    func invalidate(_ what: Invalidation) async {
        do {
            _ = try await store.redis.send(what.publishCommand)
        } catch {
            // Never the payload: a `d:` notice carries a key digest.
            let scope: String = switch what {
            case .digest: "key"
            case .org(let id): "org \(id)"
            case .all: "all"
            case .gateway: "gateway credential"
            }
            logger.warning("could not publish a cache invalidation", metadata: ["scope": "\(scope)", "error": "\(error)"])
        }
    }

    // MARK: Authentication and standing

    /// The actor behind a bearer token, or `unauthenticated`.
    public func authenticate(bearer token: String?) async throws -> Actor {
        guard let token, !token.isEmpty else { throw APIError(.unauthenticated, "missing bearer token (Authorization: Bearer …)") }
        guard let principal = try await store.authenticate(token: token) else {
            throw APIError(.unauthenticated, "the bearer token is not valid")
        }
        return Actor(principal)
    }

    /// The actor's role in an organization; throws not_found when the organization does not exist
    /// or the actor is not in it, forbidden for the operator (who acts on organizations, not in them).
    func orgRole(_ actor: Actor, _ org: UInt64) async throws -> OrgRole {
        guard let user = actor.userID else {
            guard try await store.organization(org) != nil else { throw APIError.notFound("organization \(org)") }
            throw APIError(.forbidden, "the operator does not act inside an organization")
        }
        guard let role = try await store.orgRole(org: org, user) else { throw APIError.notFound("organization \(org)") }
        return role
    }

    /// The actor's standing on one project of the organization (not_found when the project does
    /// not exist, exactly as when it exists but is invisible).
    func standing(_ actor: Actor, _ org: UInt64, project: UInt64) async throws -> (Standing, Project) {
        let role = try await orgRole(actor, org)
        guard let p = try await store.project(org: org, project) else { throw APIError.notFound("project \(project)") }
        let projectRole = role == .owner ? nil : try await store.membership(org: org, project: project, user: actor.userID!)?.role
        return (Standing(orgRole: role, projectRole: projectRole)!, p)
    }

    /// Throws unless `verdict` is `.allowed`: forbidden naming the action, or not_found naming
    /// `target` (exactly what a missing target answers).
    func require(_ verdict: Verdict, _ action: Action, target: String) throws {
        switch verdict {
        case .allowed: return
        case .refused: throw APIError(.forbidden, "your role does not allow \(action.rawValue.replacingOccurrences(of: "_", with: " ")) (\(target))")
        case .invisible: throw APIError.notFound(target)
        }
    }

    /// An org-level action: the matrix allows Owners only; a Member's project roles do not count.
    func requireOrg(_ actor: Actor, _ org: UInt64, _ action: Action) async throws {
        let role = try await orgRole(actor, org)
        try require(Policy.verdict(action, role == .owner ? .orgOwner : .orgMemberNoProject), action, target: "organization \(org)")
    }

    /// A project-scoped action; returns the standing and the project.
    @discardableResult
    func requireProject(_ actor: Actor, _ org: UInt64, _ project: UInt64, _ action: Action) async throws -> (Standing, Project) {
        let (standing, p) = try await standing(actor, org, project: project)
        try require(Policy.verdict(action, standing), action, target: "project \(project)")
        return (standing, p)
    }

    // MARK: Audit

    /// Runs `body`; records it in the organization's log when it is a mutation that succeeded or
    /// any attempt that was refused (forbidden, not found, invalid…). Store failures are not
    /// attempts the actor made, so they are not recorded.
    func audited<T>(
        _ actor: Actor, org: UInt64?, _ action: String, _ target: String, mutation: Bool, _ body: () async throws -> T
    ) async throws -> T {
        do {
            let result = try await body()
            if mutation, let org { await record(org, actor, action, target, "ok") }
            return result
        } catch {
            let e = APIError.from(error)
            if let org, e.code != .storeUnavailable, e.code != .internal { await record(org, actor, action, target, e.code.rawValue) }
            throw e
        }
    }

    func record(_ org: UInt64, _ actor: Actor, _ action: String, _ target: String, _ outcome: String) async {
        // An attempt on an organization that does not exist has no log to go to.
        guard (try? await store.organization(org)) != nil else { return }
        // A refusal of someone with no standing in the organization is not its business: it
        // goes to a counter the operator sees (`bursar_admin_outsider_refusals_total`), never into
        // its log, which outsiders could otherwise fill and write text into.
        if outcome != "ok", let user = actor.userID, (try? await store.orgRole(org: org, user)) == nil {
            counters.outsiderRefusals.add(1, ordering: .relaxed)
            return
        }
        do {
            try await audit.record(org: org, AuditEntry(actor: actor.label, action: action, target: target, outcome: outcome))
        } catch {
            logger.error("audit record failed", metadata: ["org": "\(org)", "action": "\(action)", "error": "\(error)"])
        }
    }
}
