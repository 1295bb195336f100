import BursarAPI
import BursarRBAC
import BursarStore

// Store values → API bodies.

extension OrgBody {
    init(_ o: Organization, role: OrgRole?) {
        self.init(id: o.id, name: o.name, status: o.status.rawValue, role: role?.rawValue)
    }
}

extension MemberBody {
    init(_ u: User) {
        self.init(userId: u.id, email: u.email, name: u.name, role: u.role.rawValue)
    }
}

extension ProjectBody {
    init(_ p: Project, role: ProjectRole?) {
        self.init(
            id: p.id, name: p.name, status: p.status.rawValue, models: p.models, rpm: p.rpm, tpm: p.tpm,
            monthlyBudgetNusd: p.monthlyBudget, role: role?.rawValue)
    }
}

extension GrantBody {
    init(_ g: Grant) {
        self.init(models: g.models, maxKeySpendNusd: g.maxKeySpend, rpm: g.rpm, tpm: g.tpm)
    }

    var grant: Grant { Grant(models: models.flatMap { $0.isEmpty ? nil : $0 }, maxKeySpend: maxKeySpendNusd, rpm: rpm, tpm: tpm) }
}

extension ProjectMemberBody {
    /// A member of a project as the API shows them, with the role it reports.
    init(_ u: User, role: String, grant: Grant) {
        self.init(userId: u.id, email: u.email, name: u.name, role: role, grant: GrantBody(grant), orgOwner: u.role == .owner)
    }
}

extension KeyBody {
    init(_ k: APIKey) {
        self.init(
            id: k.id, projectId: k.projectID, userId: k.userID, name: k.name, display: k.display, status: k.status.rawValue,
            maxSpendNusd: k.limits.budget, period: k.limits.period.rawValue, rpm: k.limits.rpm, tpm: k.limits.tpm,
            models: k.limits.models, expiresAtMs: k.limits.expiresAtMs, contentLoggingDisabled: k.limits.contentLoggingDisabled,
            createdAtMs: k.createdAtMs, createdBy: k.createdBy)
    }
}

extension Caps {
    /// A project's caps on everything inside it.
    init(project p: Project) { self.init(models: p.models, rpm: p.rpm, tpm: p.tpm, spend: p.monthlyBudget) }
    /// A grant's caps on one member's keys.
    init(grant g: Grant) { self.init(models: g.models ?? [], rpm: g.rpm, tpm: g.tpm, spend: g.maxKeySpend) }
    /// A key's limits, as compared with the caps above it.
    init(key l: KeyLimits) { self.init(models: l.models, rpm: l.rpm, tpm: l.tpm, spend: l.budget) }
}

extension InvitationBody {
    init(_ i: Invitation) {
        self.init(id: i.id, email: i.email, name: i.name, role: i.role.rawValue, createdAtMs: i.createdAtMs, expiresAtMs: i.expiresAtMs)
    }
}
