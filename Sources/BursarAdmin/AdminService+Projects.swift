public import BursarAPI
import BursarRBAC
import BursarStore

extension AdminService {
    // MARK: Projects

    /// The projects the caller can see: all for an Owner, the ones they were added to otherwise.
    public func listProjects(_ actor: Actor, _ org: UInt64) async throws -> ProjectListResponse {
        try await audited(actor, org: org, "project.list", "org:\(org)", mutation: false) {
            let role = try await orgRole(actor, org)
            if role == .owner {
                return ProjectListResponse(projects: try await store.projects(org: org).map { ProjectBody($0, role: .admin) })
            }
            var visible: [ProjectBody] = []
            for id in try await store.projectIDs(org: org, user: actor.userID!) {
                guard let p = try await store.project(org: org, id),
                      let m = try await store.membership(org: org, project: id, user: actor.userID!),
                      Policy.verdict(.viewProject, Standing(orgRole: role, projectRole: m.role)) == .allowed
                else { continue }
                visible.append(ProjectBody(p, role: m.role))
            }
            return ProjectListResponse(projects: visible)
        }
    }

    /// Creates a project.
    public func createProject(_ actor: Actor, _ org: UInt64, _ r: CreateProjectRequest) async throws -> ProjectBody {
        try await audited(actor, org: org, "project.create", "name:\(r.name)", mutation: true) {
            try await requireOrg(actor, org, .createProject)
            let p = try await store.createProject(
                org: org, name: r.name, models: r.models ?? [], rpm: r.rpm, tpm: r.tpm, monthlyBudget: r.monthlyBudgetNusd)
            return ProjectBody(p, role: .admin)
        }
    }

    /// One project.
    public func getProject(_ actor: Actor, _ org: UInt64, _ project: UInt64) async throws -> ProjectBody {
        try await audited(actor, org: org, "project.show", "project:\(project)", mutation: false) {
            let (standing, p) = try await requireProject(actor, org, project, .viewProject)
            return ProjectBody(p, role: standing.effectiveProjectRole)
        }
    }

    /// Changes a project's settings. Lowering a cap does not touch existing keys: CHECK applies
    /// the tighter value.
    public func updateProject(_ actor: Actor, _ org: UInt64, _ project: UInt64, _ r: UpdateProjectRequest) async throws -> ProjectBody {
        try await audited(actor, org: org, "project.update", "project:\(project)", mutation: true) {
            let (standing, current) = try await requireProject(actor, org, project, .editProjectSettings)
            var p = current
            if let name = r.name { p.name = name }
            if let status = r.status { p.status = try parse(Project.Status.self, status, "status") }
            if let models = r.models { p.models = models }
            p.rpm = r.rpm.applied(to: p.rpm)
            p.tpm = r.tpm.applied(to: p.tpm)
            p.monthlyBudget = r.monthlyBudgetNusd.applied(to: p.monthlyBudget)
            try await store.updateProject(p)
            return ProjectBody(p, role: standing.effectiveProjectRole)
        }
    }

    /// Deletes a project; its keys are revoked.
    public func deleteProject(_ actor: Actor, _ org: UInt64, _ project: UInt64) async throws {
        try await audited(actor, org: org, "project.delete", "project:\(project)", mutation: true) {
            try await requireProject(actor, org, project, .deleteProject)
            try await store.deleteProject(org: org, project)
            await invalidate(.org(org))
        }
    }

    // MARK: Project members

    /// The project's members; Owners appear as admins (`org_owner: true`).
    public func listProjectMembers(_ actor: Actor, _ org: UInt64, _ project: UInt64) async throws -> ProjectMemberListResponse {
        try await audited(actor, org: org, "project.member.list", "project:\(project)", mutation: false) {
            try await requireProject(actor, org, project, .viewProjectMembers)
            var byUser: [UInt64: ProjectMemberBody] = [:]
            for m in try await store.memberships(org: org, project: project) {
                guard let u = try await store.user(org: org, m.userID) else { continue }
                byUser[u.id] = ProjectMemberBody(u, role: u.role == .owner ? "admin" : m.role.rawValue, grant: m.grant)
            }
            for u in try await store.users(org: org) where u.role == .owner && byUser[u.id] == nil {
                byUser[u.id] = ProjectMemberBody(u, role: "admin", grant: Grant())
            }
            return ProjectMemberListResponse(members: byUser.keys.sorted().map { byUser[$0]! })
        }
    }

    /// Adds an organization member to the project.
    public func addProjectMember(_ actor: Actor, _ org: UInt64, _ project: UInt64, _ r: AddProjectMemberRequest) async throws -> ProjectMemberBody {
        let who = r.userId.map { "user:\($0)" } ?? "email:\(r.email ?? "")"
        return try await audited(actor, org: org, "project.member.add", "project:\(project)/\(who)", mutation: true) {
            let (_, p) = try await requireProject(actor, org, project, .addProjectMembers)
            let user = try await orgMember(org, id: r.userId, email: r.email)
            if try await store.membership(org: org, project: project, user: user.id) != nil {
                throw APIError(.conflict, "user \(user.id) is already in project \(project); change their role instead")
            }
            let role = try parse(ProjectRole.self, r.role ?? "member", "role")
            let grant = (r.grant ?? GrantBody()).grant
            try await checkGrant(org, grant, within: p)
            try await store.setMembership(Membership(orgID: org, projectID: project, userID: user.id, role: role, grant: grant))
            return ProjectMemberBody(user, role: role.rawValue, grant: grant)
        }
    }

    /// Changes a project member's role and/or replaces their grant. Keys already issued keep
    /// their own limits; CHECK applies the narrower grant.
    public func updateProjectMember(_ actor: Actor, _ org: UInt64, _ project: UInt64, _ user: UInt64, _ r: UpdateProjectMemberRequest) async throws -> ProjectMemberBody {
        try await audited(actor, org: org, "project.member.update", "project:\(project)/user:\(user)", mutation: true) {
            let (_, p) = try await requireProject(actor, org, project, .editMemberRoles)
            guard var m = try await store.membership(org: org, project: project, user: user),
                  let u = try await store.user(org: org, user)
            else { throw APIError.notFound("member \(user) of project \(project)") }
            if let role = r.role { m.role = try parse(ProjectRole.self, role, "role") }
            if let g = r.grant {
                m.grant = g.grant
                try await checkGrant(org, m.grant, within: p)
            }
            try await store.setMembership(m)
            await invalidate(.org(org))
            return ProjectMemberBody(u, role: m.role.rawValue, grant: m.grant)
        }
    }

    /// Removes a member from the project: their keys in it are denied at the next CHECK.
    public func removeProjectMember(_ actor: Actor, _ org: UInt64, _ project: UInt64, _ user: UInt64) async throws {
        try await audited(actor, org: org, "project.member.remove", "project:\(project)/user:\(user)", mutation: true) {
            try await requireProject(actor, org, project, .editMemberRoles)
            guard try await store.membership(org: org, project: project, user: user) != nil else {
                throw APIError.notFound("member \(user) of project \(project)")
            }
            try await store.removeMembership(org: org, project: project, user: user)
            await invalidate(.org(org))
        }
    }

    // MARK: Helpers

    /// Throws `exceeds_cap` when a grant lies outside its project's caps.
    func checkGrant(_ org: UInt64, _ grant: Grant, within project: Project) async throws {
        if let v = CapCheck.violation(of: Caps(grant: grant), subject: "grant", within: [("project", Caps(project: project))], expand: try await expander(org)) {
            throw v
        }
    }

    /// An organization member named by id or e-mail; `conflict` when nobody in the organization
    /// is: the body names a user the organization does not have, which is stored state refusing a
    /// well-formed request, not the path's resource missing (404 is kept for that).
    func orgMember(_ org: UInt64, id: UInt64?, email: String?) async throws -> User {
        var userID = id
        if userID == nil, let email {
            userID = try await store.person(email: email)?.id
        }
        guard id != nil || email != nil else { throw APIError(.invalid, "name the user by user_id or email") }
        // Validated even when user_id wins, so the body is exactly as valid as the document says.
        if let email { _ = try MetadataStore.normalizedEmail(email) }
        guard let userID, let u = try await store.user(org: org, userID) else {
            throw APIError.notMember(id.map(String.init) ?? email ?? "", org: org)
        }
        return u
    }

    /// Expands virtual model names of the organization into their real models.
    func expander(_ org: UInt64) async throws -> @Sendable (String) -> [String] {
        let aliases = try await store.virtualModels(org: org)
        return { aliases[$0] ?? [$0] }
    }
}
