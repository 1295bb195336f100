public import BursarAPI
import BursarLimits
import BursarRBAC
import BursarStore
import BursarWire

extension AdminService {
    // MARK: Keys

    /// The project's keys the caller may manage: all of them for an admin, their own otherwise.
    public func listProjectKeys(_ actor: Actor, _ org: UInt64, _ project: UInt64) async throws -> KeyListResponse {
        try await audited(actor, org: org, "key.list", "project:\(project)", mutation: false) {
            let (standing, _) = try await requireProject(actor, org, project, .createAndManageOwnKeys)
            let all = Policy.permits(.manageAllKeysInProject, standing)
            let keys = try await store.keys(org: org, project: project).filter { all || $0.userID == actor.userID }
            return KeyListResponse(keys: keys.map(KeyBody.init))
        }
    }

    /// Every key of every project (Owners).
    public func listOrgKeys(_ actor: Actor, _ org: UInt64) async throws -> KeyListResponse {
        try await audited(actor, org: org, "key.list", "org:\(org)", mutation: false) {
            try await requireOrg(actor, org, .manageKeysAcrossAllProjects)
            var keys: [KeyBody] = []
            for p in try await store.projects(org: org) {
                keys += try await store.keys(org: org, project: p.id).map(KeyBody.init)
            }
            return KeyListResponse(keys: keys)
        }
    }

    /// Creates a key for the caller, or (Project Admins and Owners) for another member of the
    /// project. Its limits must lie within the project's caps and the key user's grant.
    public func createKey(_ actor: Actor, _ org: UInt64, _ project: UInt64, _ r: CreateKeyRequest) async throws -> KeySecretResponse {
        try await audited(actor, org: org, "key.create", "project:\(project)", mutation: true) {
            let (standing, p) = try await standing(actor, org, project: project)
            let userID = r.userId ?? actor.userID!
            let own = userID == actor.userID
            try require(Policy.keyVerdict(standing, actorIsOwner: own), own ? .createAndManageOwnKeys : .manageAllKeysInProject, target: "project \(project)")
            guard p.status == .active else { throw APIError(.conflict, "project \(project) is archived: reactivate it before creating keys") }
            let grant = try await keyUserGrant(org, project: project, user: userID)
            let limits = KeyLimits(
                budget: r.maxSpendNusd, period: try parse(BudgetPeriod.self, r.period ?? "monthly", "period"), rpm: r.rpm, tpm: r.tpm,
                models: r.models ?? [], expiresAtMs: try await expiry(atMs: r.expiresAtMs, inDays: r.expiresInDays),
                contentLoggingDisabled: r.contentLoggingDisabled ?? false)
            try await checkCaps(org, limits, project: p, grant: grant)
            let created = try await store.createKey(org: org, project: project, user: userID, name: r.name, limits: limits, createdBy: actor.userID!)
            // A bursard may hold this digest as unknown (negative cache) if it was probed before.
            await invalidate(.digest(MetadataStore.digest(ofSecret: created.secret)))
            return KeySecretResponse(key: KeyBody(created.key), secret: created.secret)
        }
    }

    /// One key.
    public func getKey(_ actor: Actor, _ org: UInt64, _ key: UInt64) async throws -> KeyBody {
        try await audited(actor, org: org, "key.show", "key:\(key)", mutation: false) {
            KeyBody(try await authorizedKey(actor, org, key).0)
        }
    }

    /// Changes a key's name or limits (within the project's caps and the key user's grant).
    public func updateKey(_ actor: Actor, _ org: UInt64, _ key: UInt64, _ r: UpdateKeyRequest) async throws -> KeyBody {
        try await audited(actor, org: org, "key.update", "key:\(key)", mutation: true) {
            let (current, p) = try await authorizedKey(actor, org, key)
            guard r.expiresInDays == nil || r.expiresAtMs == .unchanged else {
                throw APIError(.invalid, "give expires_at_ms or expires_in_days, not both")
            }
            var limits = current.limits
            limits.budget = r.maxSpendNusd.applied(to: limits.budget)
            if let period = r.period { limits.period = try parse(BudgetPeriod.self, period, "period") }
            limits.rpm = r.rpm.applied(to: limits.rpm)
            limits.tpm = r.tpm.applied(to: limits.tpm)
            if let models = r.models { limits.models = models }
            if let days = r.expiresInDays {
                limits.expiresAtMs = try await expiry(atMs: nil, inDays: days)
            } else if case .set(let at) = r.expiresAtMs {
                limits.expiresAtMs = try await expiry(atMs: at, inDays: nil)
            } else if r.expiresAtMs == .clear {
                limits.expiresAtMs = nil
            }
            if let c = r.contentLoggingDisabled { limits.contentLoggingDisabled = c }
            let grant = try await keyUserGrant(org, project: p.id, user: current.userID)
            try await checkCaps(org, limits, project: p, grant: grant)
            if let name = r.name { try await store.renameKey(org: org, key, name) }
            try await store.updateKeyLimits(org: org, key, limits)
            guard let updated = try await store.key(org: org, key) else { throw APIError.notFound("key \(key)") }
            return KeyBody(updated)
        }
    }

    /// Revokes a key: the next CHECK with it is denied.
    public func revokeKey(_ actor: Actor, _ org: UInt64, _ key: UInt64) async throws -> KeyBody {
        try await audited(actor, org: org, "key.revoke", "key:\(key)", mutation: true) {
            _ = try await authorizedKey(actor, org, key)
            try await store.revokeKey(org: org, key)
            if let hex = try await store.keyDigest(org: org, key), let digest = KeyDigest(hex: hex) { await invalidate(.digest(digest)) }
            guard let k = try await store.key(org: org, key) else { throw APIError.notFound("key \(key)") }
            return KeyBody(k)
        }
    }

    /// Gives a key a new secret; the old secret stops working at once.
    public func rotateKey(_ actor: Actor, _ org: UInt64, _ key: UInt64) async throws -> KeySecretResponse {
        try await audited(actor, org: org, "key.rotate", "key:\(key)", mutation: true) {
            let (k, _) = try await authorizedKey(actor, org, key)
            guard k.status == .active else { throw APIError(.conflict, "key \(key) is revoked; create a new key instead") }
            let (rotated, old) = try await store.rotateKey(org: org, key)
            if let digest = KeyDigest(hex: old) { await invalidate(.digest(digest)) }
            await invalidate(.digest(MetadataStore.digest(ofSecret: rotated.secret)))
            return KeySecretResponse(key: KeyBody(rotated.key), secret: rotated.secret)
        }
    }

    // MARK: Helpers

    /// A key the actor may manage, with its project: the key's user manages it under "own keys",
    /// anyone else needs "all keys in project". Invisible projects answer not_found.
    func authorizedKey(_ actor: Actor, _ org: UInt64, _ key: UInt64) async throws -> (APIKey, Project) {
        _ = try await orgRole(actor, org)
        guard let k = try await store.key(org: org, key) else { throw APIError.notFound("key \(key)") }
        let standing: Standing
        let project: Project
        do {
            (standing, project) = try await self.standing(actor, org, project: k.projectID)
        } catch let e as APIError where e.code == .notFound {
            throw APIError.notFound("key \(key)")
        }
        let own = k.userID == actor.userID
        try require(Policy.keyVerdict(standing, actorIsOwner: own), own ? .createAndManageOwnKeys : .manageAllKeysInProject, target: "key \(key)")
        return (k, project)
    }

    /// The grant that bounds a user's keys in a project: nil for an Owner (no grant), the
    /// membership's grant otherwise; `conflict` when the user is not in the organization or has
    /// no role in the project (a user the body names: the path's resources are there).
    func keyUserGrant(_ org: UInt64, project: UInt64, user: UInt64) async throws -> Grant? {
        guard let role = try await store.orgRole(org: org, user) else { throw APIError.notMember("\(user)", org: org) }
        if role == .owner { return nil }
        guard let m = try await store.membership(org: org, project: project, user: user) else {
            throw APIError(.conflict, "user \(user) has no role in project \(project); add them to the project first")
        }
        return m.grant
    }

    private func checkCaps(_ org: UInt64, _ limits: KeyLimits, project: Project, grant: Grant?) async throws {
        var levels: [(name: String, caps: Caps)] = [("project", Caps(project: project))]
        if let grant { levels.append(("grant", Caps(grant: grant))) }
        if let v = CapCheck.violation(of: Caps(key: limits), subject: "key", within: levels, expand: try await expander(org)) { throw v }
    }

    /// An expiry from either form; the "in N days" form counts from Redis's clock. Out of the
    /// document's range is `invalid`; a well-formed time that has already passed is `conflict`
    /// (JSON Schema cannot say "in the future").
    private func expiry(atMs: Int64?, inDays: Int64?) async throws -> Int64? {
        switch (atMs, inDays) {
        case (nil, nil): return nil
        case (_?, _?): throw APIError(.invalid, "give expires_at_ms or expires_in_days, not both")
        case (let at?, nil):
            guard at >= 1 else { throw APIError(.invalid, "expires_at_ms must be a positive Unix ms time") }
            guard at > (try await store.redisTimeMs()) else { throw APIError(.conflict, "expires_at_ms \(at) is not in the future (server clock)") }
            return at
        case (nil, let days?):
            guard (1...maxExpiryDays).contains(days) else { throw APIError(.invalid, "expires_in_days must be 1…\(maxExpiryDays)") }
            return try await store.redisTimeMs() + days * 86_400_000
        }
    }
}

/// The longest `expires_in_days` (about ten years).
let maxExpiryDays: Int64 = 3650
