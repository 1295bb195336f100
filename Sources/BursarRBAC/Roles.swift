/// A user's role in an organization.
public enum OrgRole: String, Sendable, Codable, CaseIterable {
    /// Full control; automatically Project Admin on every project.
    case owner
    /// Only the projects they are added to.
    case member
}

/// A user's role in a project.
public enum ProjectRole: String, Sendable, Codable, CaseIterable {
    /// Settings, members, all keys of the project.
    case admin
    /// Their own keys within their grants.
    case member
}

/// Where an actor stands relative to one project of an organization: the columns of the
/// permission matrix (`permissions.tsv`).
public enum Standing: String, Sendable, CaseIterable {
    /// An organization Owner (Project Admin of every project).
    case orgOwner = "org_owner"
    /// An organization Member who is Project Admin of the project in question.
    case projectAdmin = "project_admin"
    /// An organization Member who is Project Member of the project in question.
    case projectMember = "project_member"
    /// An organization Member with no role in the project in question.
    case orgMemberNoProject = "org_member_no_project"

    /// The standing of a user with `orgRole` in the organization and `projectRole` in the project
    /// (nil: not added to it). nil when the user is not in the organization at all.
    public init?(orgRole: OrgRole?, projectRole: ProjectRole?) {
        switch (orgRole, projectRole) {
        case (nil, _): return nil
        case (.owner?, _): self = .orgOwner
        case (.member?, .admin?): self = .projectAdmin
        case (.member?, .member?): self = .projectMember
        case (.member?, nil): self = .orgMemberNoProject
        }
    }

    /// The project role this standing acts with: Owners are admins everywhere.
    public var effectiveProjectRole: ProjectRole? {
        switch self {
        case .orgOwner, .projectAdmin: .admin
        case .projectMember: .member
        case .orgMemberNoProject: nil
        }
    }
}
