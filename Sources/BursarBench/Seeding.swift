public import BursarStore
public import BursarWire
import BursarClient

/// One seeded key, as the harness and the audit know it.
public struct BenchKey: Sendable {
    /// Key id.
    public var id: UInt64
    /// Digest of its secret, sent in CHECK.
    public var digest: KeyDigest
    /// Its budget, nano-USD.
    public var budget: Int64
}

/// What the harness seeded: one metered org, its projects and keys.
public struct BenchWorld: Sendable {
    /// The organization.
    public var orgID: UInt64
    /// Credits the org started with, nano-USD.
    public var initialCredits: Int64
    /// Keys, indexed like `Workload.keyIndex`.
    public var keys: [BenchKey]
    /// The model name CHECKs carry.
    public var model: ModelName

    /// Seeds a fresh organization (unique per call) through the metadata store: an owner, the
    /// workload's projects, and its keys round-robin over them. The first `tightKeys` keys get
    /// the workload's `tightBudget`, the rest `Workload.looseBudget`; the org is metered with credits
    /// that a run never exhausts, so the credit ledger is audited too.
    public static func seed(_ workload: Workload, store: MetadataStore) async throws -> BenchWorld {
        let credits: Int64 = 1 << 50
        let org = try await store.createOrganization(name: "bench", metered: true, credits: credits)
        let owner = try await store.createUser(org: org.id, email: "bench-\(org.id)@bench.test", name: "bench", role: .owner)
        var projects: [UInt64] = []
        for p in 0..<max(1, workload.projects) {
            projects.append(try await store.createProject(org: org.id, name: "bench-\(p)").id)
        }
        var keys: [BenchKey] = []
        for k in 0..<workload.keys {
            let budget = k < workload.tightKeys ? workload.tightBudget : Workload.looseBudget
            let created = try await store.createKey(
                org: org.id, project: projects[k % projects.count], user: owner.id, name: "bench-\(k)",
                limits: KeyLimits(budget: budget))
            keys.append(BenchKey(id: created.key.id, digest: KeyDigest(secret: created.secret), budget: budget))
        }
        return BenchWorld(orgID: org.id, initialCredits: credits, keys: keys, model: try ModelName(workload.model))
    }
}
