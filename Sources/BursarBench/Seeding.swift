public import BursarStore
public import BursarWire
import BursarClient

/// One seeded key, as the harness and the audit know it.
public struct BenchKey: Sendable {
    /// Key id.
    public var id: UInt64
    /// Digest of its secret, sent in CHECK.
    public var digest: KeyDigest
    /// Index of its project in `BenchWorld.projects`.
    public var project: Int
    /// Its limits (budget, RPM, TPM; nil = none).
    public var limits: KeyLimits
}

/// What the harness seeded: one metered org, its projects and keys.
public struct BenchWorld: Sendable {
    /// The organization.
    public var orgID: UInt64
    /// Credits the org started with, nano-USD.
    public var initialCredits: Int64
    /// Projects, indexed like `BenchKey.project`.
    public var projects: [Project]
    /// Keys, indexed like `Workload.keyIndex`.
    public var keys: [BenchKey]
    /// The model name CHECKs carry.
    public var model: ModelName

    /// The identity bursard resolves key `k`'s digest to.
    func identity(ofKey k: Int) -> KeyIdentity { KeyIdentity(orgID: orgID, keyID: keys[k].id) }

    /// Keys created concurrently while seeding (one Redis client pipelines them together).
    static let seedingConcurrency = 64

    /// Seeds a fresh organization (unique per call) through the metadata store: an owner, the
    /// workload's projects with its project caps, and its keys round-robin over them, tight keys
    /// first (see `Workload.tightness`), the rest with a budget never reached. The org is metered
    /// with credits a run never exhausts, so the credit ledger is audited too.
    public static func seed(_ workload: Workload, store: MetadataStore) async throws -> BenchWorld {
        let credits: Int64 = 1 << 50
        let org = try await store.createOrganization(name: "bench", metered: true, credits: credits)
        let owner = try await store.createUser(org: org.id, email: "bench-\(org.id)@bench.test", name: "bench", role: .owner)
        var projects: [Project] = []
        for p in 0..<max(1, workload.projects) {
            projects.append(
                try await store.createProject(
                    org: org.id, name: "bench-\(p)", rpm: workload.projectRPM, tpm: workload.projectTPM, monthlyBudget: workload.projectBudget))
        }
        let projectIDs = projects.map(\.id)
        let keys = try await withThrowingTaskGroup(of: (Int, BenchKey).self) { group in
            var keys = [BenchKey?](repeating: nil, count: workload.keys)
            var next = 0
            func add(_ k: Int) {
                var limits = KeyLimits(budget: Workload.looseBudget)
                switch workload.tightness(ofKey: k) {
                case .budget: limits.budget = workload.tightBudget
                case .rpm: limits.rpm = workload.tightRPM
                case .tpm: limits.tpm = workload.tightTPM
                case nil: break
                }
                let project = k % projectIDs.count
                group.addTask {
                    let created = try await store.createKey(
                        org: org.id, project: projectIDs[project], user: owner.id, name: "bench-\(k)", limits: limits)
                    return (k, BenchKey(id: created.key.id, digest: KeyDigest(secret: created.secret), project: project, limits: limits))
                }
            }
            while next < min(workload.keys, seedingConcurrency) { add(next); next += 1 }
            while let (k, key) = try await group.next() {
                keys[k] = key
                if next < workload.keys { add(next); next += 1 }
            }
            return keys.map { $0! }
        }
        return BenchWorld(orgID: org.id, initialCredits: credits, projects: projects, keys: keys, model: try ModelName(workload.model))
    }
}
