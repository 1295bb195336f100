/// One row of the permission matrix (`permissions.tsv`); raw values are the matrix's action names.
public enum Action: String, Sendable, CaseIterable {
    case createProject = "create_project"
    case viewProject = "view_project"
    case editProjectSettings = "edit_project_settings"
    case deleteProject = "delete_project"
    case viewProjectMembers = "view_project_members"
    case addProjectMembers = "add_project_members"
    case editMemberRoles = "edit_member_roles"
    case createAndManageOwnKeys = "create_and_manage_own_keys"
    case manageAllKeysInProject = "manage_all_keys_in_project"
    case manageKeysAcrossAllProjects = "manage_keys_across_all_projects"
    case billingAndCredits = "billing_and_credits"
    case manageOrganizationMembers = "manage_organization_members"
    case externalKeysBYOK = "external_keys_byok"
    case virtualModels = "virtual_models"
    case mcpServers = "mcp_servers"
    case promptManagement = "prompt_management"

    /// Whether the action concerns one project (its settings, members or keys). For these, an
    /// actor with no role in the project is not told the project exists.
    public var isProjectScoped: Bool {
        switch self {
        case .viewProject, .editProjectSettings, .deleteProject, .viewProjectMembers, .addProjectMembers,
             .editMemberRoles, .createAndManageOwnKeys, .manageAllKeysInProject:
            true
        case .createProject, .manageKeysAcrossAllProjects, .billingAndCredits, .manageOrganizationMembers,
             .externalKeysBYOK, .virtualModels, .mcpServers, .promptManagement:
            false
        }
    }
}

/// The answer to "may this actor do this?".
public enum Verdict: Sendable, Hashable {
    /// Go ahead.
    case allowed
    /// The actor can see the target but may not do this (HTTP 403).
    case refused
    /// The actor may not even know the target exists (HTTP 404, as if it did not).
    case invisible
}

/// The permission matrix. This is the one place that says who may do what; every admin endpoint
/// asks it before reading or writing anything.
public enum Policy {
    /// Whether `standing` may perform `action` (the matrix cell, "own" already implied by the
    /// standing: a project admin or member is in the project in question).
    public static func permits(_ action: Action, _ standing: Standing) -> Bool {
        switch standing {
        case .orgOwner:
            return true
        case .projectAdmin:
            switch action {
            case .viewProject, .editProjectSettings, .viewProjectMembers, .addProjectMembers, .editMemberRoles,
                 .createAndManageOwnKeys, .manageAllKeysInProject:
                return true
            default:
                return false
            }
        case .projectMember:
            return action == .viewProject || action == .createAndManageOwnKeys
        case .orgMemberNoProject:
            return false
        }
    }

    /// The verdict for an actor: nil standing means the actor is not in the organization, which
    /// is then invisible as a whole.
    public static func verdict(_ action: Action, _ standing: Standing?) -> Verdict {
        guard let standing else { return .invisible }
        if permits(action, standing) { return .allowed }
        if action.isProjectScoped && standing == .orgMemberNoProject { return .invisible }
        return .refused
    }

    /// The verdict for an action on one key: its owner acts under `createAndManageOwnKeys`,
    /// anyone else under `manageAllKeysInProject`.
    public static func keyVerdict(_ standing: Standing?, actorIsOwner: Bool) -> Verdict {
        verdict(actorIsOwner ? .createAndManageOwnKeys : .manageAllKeysInProject, standing)
    }
}
