import BursarRBAC
import BursarRedis

extension MetadataStore {
    // MARK: Projects

    /// Creates an active project. `models` may name real or virtual models; empty means all.
    public func createProject(
        org: UInt64, name: String, models: [String] = [], rpm: Int64? = nil, tpm: Int64? = nil, monthlyBudget: Int64? = nil
    ) async throws -> Project {
        guard try await organization(org) != nil else { throw StoreError.notFound("organization \(org)") }
        let id = try await nextID("project", org: org)
        let project = Project(id: id, orgID: org, name: name, status: .active, models: models, rpm: rpm, tpm: tpm, monthlyBudget: monthlyBudget)
        try await write(project, extra: [RedisCommand("SADD", Keyspace.projects(org), String(id))])
        return project
    }

    /// Replaces a project's settings (name, status, models, caps). Applies at the next CHECK.
    public func updateProject(_ project: Project) async throws {
        guard try await self.project(org: project.orgID, project.id) != nil else { throw StoreError.notFound("project \(project.id)") }
        try await write(project)
    }

    private func write(_ p: Project, extra: [RedisCommand] = []) async throws {
        try validName(p.name, "project name")
        try validModels(p.models, "project models")
        try validRate(p.rpm, "project rpm")
        try validRate(p.tpm, "project tpm")
        if let b = p.monthlyBudget { try validMoney(b, "project monthly budget") }
        let hash = Keyspace.project(p.orgID, p.id)
        var commands = [
            RedisCommand("HSET", hash, "name", p.name, "status", p.status.rawValue, "models", Self.joinList(p.models)),
            optionalField(hash, "rpm", p.rpm), optionalField(hash, "tpm", p.tpm), optionalField(hash, "budget", p.monthlyBudget),
        ]
        let aliases = try await virtualModels(org: p.orgID)
        commands += replaceSet(Keyspace.projectModels(p.orgID, p.id), Self.expand(p.models, aliases), countIn: hash)
        try await transaction(commands + extra, org: p.orgID, recompile: .project(p.id))
    }

    /// A project, or nil.
    public func project(org: UInt64, _ id: UInt64) async throws -> Project? {
        let f = try await fields(Keyspace.project(org, id), ["name", "status", "rpm", "tpm", "budget", "models"])
        guard let name = f[0], let status = f[1].flatMap(Project.Status.init(rawValue:)) else { return nil }
        return Project(
            id: id, orgID: org, name: name, status: status, models: Self.splitList(f[5]),
            rpm: f[2].flatMap { Int64($0) }, tpm: f[3].flatMap { Int64($0) }, monthlyBudget: f[4].flatMap { Int64($0) })
    }

    /// Every project of an organization, by id.
    public func projects(org: UInt64) async throws -> [Project] {
        var result: [Project] = []
        for id in try await idSet(Keyspace.projects(org)) {
            if let p = try await project(org: org, id) { result.append(p) }
        }
        return result
    }

    /// Deletes a project and its memberships. Its keys stay as they were (a key revoked before
    /// still reads revoked): the next CHECK with any of them finds no project and is denied
    /// `project_inactive`, as for an archived project (SPEC §8, step 5 of §9).
    public func deleteProject(org: UInt64, _ id: UInt64) async throws {
        guard try await project(org: org, id) != nil else { throw StoreError.notFound("project \(id)") }
        let members = try await idSet(Keyspace.projectMembers(org, id))
        var commands = [
            RedisCommand("DEL", Keyspace.project(org, id), Keyspace.projectModels(org, id), Keyspace.projectMembers(org, id)),
            RedisCommand("SREM", Keyspace.projects(org), String(id)),
        ]
        for user in members {
            commands.append(RedisCommand("DEL", Keyspace.membership(org, id, user), Keyspace.membershipModels(org, id, user)))
            commands.append(RedisCommand("SREM", Keyspace.userProjects(org, user), String(id)))
        }
        // Its keys are compiled while the key set still names them: project_inactive from now on.
        commands.append(Self.recompile(org: org, .project(id)))
        commands.append(RedisCommand("DEL", Keyspace.projectKeys(org, id)))
        try await transaction(commands)
    }

    // MARK: Memberships

    /// Adds a user to a project, or replaces their role and grant.
    public func setMembership(_ m: Membership) async throws {
        guard try await project(org: m.orgID, m.projectID) != nil else { throw StoreError.notFound("project \(m.projectID)") }
        guard try await orgRole(org: m.orgID, m.userID) != nil else { throw StoreError.notFound("user \(m.userID)") }
        try validRate(m.grant.rpm, "grant rpm")
        try validRate(m.grant.tpm, "grant tpm")
        if let s = m.grant.maxKeySpend { try validMoney(s, "grant max key spend") }
        try validModels(m.grant.models ?? [], "grant models")
        let hash = Keyspace.membership(m.orgID, m.projectID, m.userID)
        var commands = [
            RedisCommand("HSET", hash, "role", m.role.rawValue, "models", Self.joinList(m.grant.models ?? [])),
            optionalField(hash, "rpm", m.grant.rpm), optionalField(hash, "tpm", m.grant.tpm),
            optionalField(hash, "spend", m.grant.maxKeySpend),
            RedisCommand("SADD", Keyspace.projectMembers(m.orgID, m.projectID), String(m.userID)),
            RedisCommand("SADD", Keyspace.userProjects(m.orgID, m.userID), String(m.projectID)),
        ]
        let aliases = try await virtualModels(org: m.orgID)
        commands += replaceSet(Keyspace.membershipModels(m.orgID, m.projectID, m.userID), Self.expand(m.grant.models ?? [], aliases), countIn: hash)
        try await transaction(commands, org: m.orgID, recompile: .project(m.projectID))
    }

    /// A membership, or nil.
    public func membership(org: UInt64, project: UInt64, user: UInt64) async throws -> Membership? {
        let f = try await fields(Keyspace.membership(org, project, user), ["role", "rpm", "tpm", "spend", "models"])
        guard let role = f[0].flatMap(ProjectRole.init(rawValue:)) else { return nil }
        let models = Self.splitList(f[4])
        let grant = Grant(
            models: models.isEmpty ? nil : models, maxKeySpend: f[3].flatMap { Int64($0) },
            rpm: f[1].flatMap { Int64($0) }, tpm: f[2].flatMap { Int64($0) })
        return Membership(orgID: org, projectID: project, userID: user, role: role, grant: grant)
    }

    /// Every membership of a project, by user id.
    public func memberships(org: UInt64, project: UInt64) async throws -> [Membership] {
        var result: [Membership] = []
        for user in try await idSet(Keyspace.projectMembers(org, project)) {
            if let m = try await membership(org: org, project: project, user: user) { result.append(m) }
        }
        return result
    }

    /// The ids of the projects a user has a role in.
    public func projectIDs(org: UInt64, user: UInt64) async throws -> [UInt64] {
        try await idSet(Keyspace.userProjects(org, user))
    }

    /// Removes a user from a project. Their keys in it stop working on the next CHECK.
    public func removeMembership(org: UInt64, project: UInt64, user: UInt64) async throws {
        try await transaction([
            RedisCommand("DEL", Keyspace.membership(org, project, user), Keyspace.membershipModels(org, project, user)),
            RedisCommand("SREM", Keyspace.projectMembers(org, project), String(user)),
            RedisCommand("SREM", Keyspace.userProjects(org, user), String(project)),
        ], org: org, recompile: .project(project))
    }

    // MARK: Helpers

    /// The members of a set of decimal ids, sorted.
    func idSet(_ key: String) async throws -> [UInt64] {
        (try await redis.send(RedisCommand("SMEMBERS", key)).array ?? []).compactMap { $0.string.flatMap { UInt64($0) } }.sorted()
    }
}
