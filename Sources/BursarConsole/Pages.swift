import BursarAdmin
import BursarAPI
import BursarRBAC
import Hummingbird

/// The organization-level actions of the permission matrix, in the order the console lists them,
/// with the organization page's section each one opens.
let orgActions: [(action: Action, label: String)] = [
    (.manageOrganizationMembers, "Members"),
    (.billingAndCredits, "Billing & credits"),
    (.manageKeysAcrossAllProjects, "All keys"),
    (.externalKeysBYOK, "External keys (BYOK)"),
    (.virtualModels, "Virtual models"),
    (.mcpServers, "MCP servers"),
    (.promptManagement, "Prompts"),
]

extension Console {
    /// The caller's standing in the organization, or on `project` when given (whose `role` is
    /// the caller's): the matrix's own `Standing(orgRole:projectRole:)`. not_found when the caller
    /// is not in the organization.
    func standing(_ signed: Signed, _ org: UInt64, _ project: ProjectBody? = nil) throws -> Standing {
        let projectRole = project?.role.flatMap(ProjectRole.init(rawValue:))
        guard let standing = Standing(orgRole: signed.orgRole(org), projectRole: projectRole) else {
            throw APIError(.notFound, "organization \(org) does not exist")
        }
        return standing
    }

    /// `{action: true}` for every action of the matrix `standing` allows: templates show an
    /// element only under its action's flag.
    func can(_ standing: Standing) -> [String: Bool] {
        var flags: [String: Bool] = [:]
        for action in Action.allCases where Policy.permits(action, standing) { flags[action.rawValue] = true }
        return flags
    }

    // MARK: Overview

    func overview(_ signed: Signed, _ req: Request, _ org: UInt64) async throws -> Response {
        let orgStanding = try standing(signed, org)
        let now = try await service.store.redisTimeMs()
        let projects = try await service.listProjects(signed.actor, org).projects
        var cards: [[String: Any]] = []
        var myKeys: [[String: Any]] = []
        for p in projects {
            let keys = try await service.listProjectKeys(signed.actor, org, p.id).keys
            let usage = try await service.projectUsage(signed.actor, org, p.id)
            var card = Fmt.project(p)
            card["role"] = try standing(signed, org, p) == .projectMember ? "Project Member" : "Project Admin"
            card["keyCount"] = Fmt.plural(keys.count, "key")
            card["budget"] = Fmt.budget(spent: usage.spend.spendNusd, of: p.monthlyBudgetNusd)
            card["alert"] = Fmt.budgetAlert(usage.spend.budgetAlerts)
            cards.append(card)
            for k in keys where k.userId == signed.userID {
                myKeys.append(try await keyRow(signed, org, k, projectName: p.name, now: now, back: "/console/o/\(org)"))
            }
        }
        let links = orgActions.filter { Policy.permits($0.action, orgStanding) }.map { ["action": $0.action.rawValue, "label": $0.label] }
        // Owners see every project's usage; anyone else what the service shows them (the projects
        // they administer, their own keys).
        let (history, status) = try await self.history(
            signed, org, req,
            HistoryView(
                dimension: .project, heading: "Usage by project",
                scope: orgStanding == .orgOwner ? "Every project of the organization." : "The projects you administer and your own keys elsewhere."))
        return views.page(
            "overview", title: signed.me.organizations.first { $0.id == org }?.name ?? "Overview",
            [
                "orgName": signed.me.organizations.first { $0.id == org }?.name ?? "", "orgRole": orgStanding == .orgOwner ? "Owner" : "Member",
                "projects": cards, "noProjects": cards.isEmpty, "keys": myKeys, "noKeys": myKeys.isEmpty, "orgLinks": links,
                "hasOrgLinks": !links.isEmpty, "tableId": "my-keys", "showProject": true,
                "can": can(orgStanding), "csrf": signed.session.csrf, "orgId": String(org), "history": history,
            ],
            chrome: Chrome(signed, org: org), status: status)
    }

    /// One key as a table row: display form, limits, spend in its window and its budget alert,
    /// expiry, live minute.
    func keyRow(_ signed: Signed, _ org: UInt64, _ k: KeyBody, projectName: String?, now: Int64, back: String) async throws -> [String: Any] {
        let usage = k.status == "active" ? try? await service.keyUsage(signed.actor, org, k.id) : nil
        return Self.keyRow(k, usage: usage, projectName: projectName, now: now, back: back)
    }

    /// A key's row from its usage (nil: not active, or not readable).
    static func keyRow(_ k: KeyBody, usage: KeyUsageResponse?, projectName: String?, now: Int64, back: String) -> [String: Any] {
        var row: [String: Any] = [
            "id": String(k.id), "user": String(k.userId), "name": k.name, "display": k.display, "status": k.status,
            "active": k.status == "active", "period": Fmt.period(k.period),
            "limits": Fmt.keyLimits(k), "expiry": k.expiresAtMs.map { Units.relative($0, nowMs: now) } ?? "never",
            "expiryTitle": k.expiresAtMs.map { Units.day($0) } ?? "", "back": back,
            "noLogging": k.contentLoggingDisabled, "alert": false,
        ]
        if let projectName { row["project"] = projectName }
        if let u = usage {
            row["spend"] = Units.dollars(u.spend.spendNusd) + (u.spend.budgetNusd.map { " of " + Units.dollars($0) } ?? "")
            row["requests"] = Fmt.rate(u.requests)
            row["tokens"] = Fmt.rate(u.tokens)
            row["alert"] = Fmt.budgetAlert(u.spend.budgetAlerts)
        } else {
            row["spend"] = "—"
            row["requests"] = "—"
            row["tokens"] = "—"
        }
        return row
    }

    func createProject(_ signed: Signed, _ form: Form, _ org: UInt64) async throws -> Response {
        let r = CreateProjectRequest(
            name: try Fmt.required(form, "name", "Project name"), models: Fmt.models(form.text("models")),
            rpm: try Fmt.limit(form, "rpm", "RPM"), tpm: try Fmt.limit(form, "tpm", "TPM"), monthlyBudgetNusd: try Fmt.money(form, "budget", "Monthly budget"))
        let p = try await service.createProject(signed.actor, org, r)
        return Self.redirect("/console/o/\(org)/p/\(p.id)")
    }

    // MARK: Project

    func project(_ signed: Signed, _ req: Request, _ org: UInt64, _ project: UInt64) async throws -> Response {
        let p = try await service.getProject(signed.actor, org, project)
        let standing = try self.standing(signed, org, p)
        let flags = can(standing)
        let now = try await service.store.redisTimeMs()
        let usage = try await service.projectUsage(signed.actor, org, project)
        let here = "/console/o/\(org)/p/\(project)"
        var rows: [[String: Any]] = []
        let keys = try await service.listProjectKeys(signed.actor, org, project).keys
        for k in keys {
            var row = try await keyRow(signed, org, k, projectName: nil, now: now, back: here)
            row["mine"] = k.userId == signed.userID
            rows.append(row)
        }
        var members: [[String: Any]] = []
        var emails: [UInt64: String] = [:]
        if Policy.permits(.viewProjectMembers, standing) {
            let list = try await service.listProjectMembers(signed.actor, org, project).members
            for m in list { emails[m.userId] = m.email }
            members = list.map { m in
                [
                    "id": String(m.userId), "email": m.email, "name": m.name, "orgOwner": m.orgOwner,
                    "role": m.orgOwner ? "Owner (Project Admin)" : (m.role == "admin" ? "Project Admin" : "Project Member"),
                    "isAdmin": m.role == "admin", "grant": Fmt.grant(m.grant),
                    "editable": !m.orgOwner,
                ]
            }
        }
        var ctx = Fmt.project(p)
        ctx["orgId"] = String(org)
        ctx["projectId"] = String(project)
        ctx["can"] = flags
        ctx["csrf"] = signed.session.csrf
        // Admins and Owners see every key of the project: name each key's user.
        if !emails.isEmpty {
            for (i, k) in keys.enumerated() { rows[i]["owner"] = emails[k.userId] ?? "user \(k.userId)" }
        }
        ctx["keys"] = rows
        ctx["noKeys"] = rows.isEmpty
        ctx["tableId"] = "keys"
        ctx["showUser"] = !emails.isEmpty
        ctx["members"] = members
        ctx["budget"] = Fmt.budget(spent: usage.spend.spendNusd, of: p.monthlyBudgetNusd)
        ctx["alert"] = Fmt.budgetAlert(usage.spend.budgetAlerts)
        ctx["minuteRequests"] = Fmt.rate(usage.requests)
        ctx["minuteTokens"] = Fmt.rate(usage.tokens)
        ctx["reserved"] = Fmt.plural(Int(usage.reserved.count), "open reservation")
        // The prices of the models this project may use (every price if it allows every model).
        let allowed = Set(p.models)
        let prices = try await service.listPrices(signed.actor, org).prices.filter { allowed.isEmpty || allowed.contains($0.model) }
        ctx["prices"] = prices.map(Fmt.price)
        ctx["hasPrices"] = !prices.isEmpty
        ctx["roleLabel"] = standing == .orgOwner ? "Owner (Project Admin on every project)" : (standing == .projectAdmin ? "Project Admin" : "Project Member")
        let allKeys = Policy.permits(.manageAllKeysInProject, standing)
        ctx["allKeys"] = allKeys
        ctx["back"] = here
        let (history, status) = try await self.history(
            signed, org, req,
            HistoryView(
                dimension: .key, project: project, budget: usage.spend.budgetNusd.map { ($0, usage.spend.period, "the project's") },
                heading: "Usage by key", scope: allKeys ? "Every key of this project." : "Your keys in this project."))
        ctx["history"] = history
        return views.page("project", title: p.name, ctx, chrome: Chrome(signed, org: org), status: status)
    }

    // MARK: Key

    /// One key: its limits, live usage, budget and alert, and its history by model.
    func keyPage(_ signed: Signed, _ req: Request, _ org: UInt64, _ key: UInt64) async throws -> Response {
        let k = try await service.getKey(signed.actor, org, key)
        let p = try await service.getProject(signed.actor, org, k.projectId)
        let now = try await service.store.redisTimeMs()
        let usage = k.status == "active" ? try? await service.keyUsage(signed.actor, org, k.id) : nil
        var ctx = Self.keyRow(k, usage: usage, projectName: p.name, now: now, back: "/console/o/\(org)/keys/\(key)")
        ctx["orgId"] = String(org)
        ctx["projectId"] = String(p.id)
        ctx["csrf"] = signed.session.csrf
        ctx["budget"] = false
        var budget: (nusd: Int64, period: String, whose: String)?
        if let spend = usage?.spend {
            let label = ["daily": "Daily budget", "weekly": "Weekly budget", "monthly": "Monthly budget"][spend.period] ?? "Budget"
            ctx["budget"] = Fmt.budget(spent: spend.spendNusd, of: spend.budgetNusd, label: label)
            budget = spend.budgetNusd.map { ($0, spend.period, "the key's") }
        }
        let (history, status) = try await self.history(
            signed, org, req,
            HistoryView(dimension: .model, key: key, budget: budget, heading: "Usage by model", scope: "This key's requests, by model."))
        ctx["history"] = history
        return views.page("key", title: k.name, ctx, chrome: Chrome(signed, org: org), status: status)
    }

    func updateProject(_ signed: Signed, _ form: Form, _ org: UInt64, _ project: UInt64) async throws -> Response {
        func patch(_ v: Int64?) -> Patch<Int64> { v.map { .set($0) } ?? .clear }
        var r = UpdateProjectRequest()
        r.models = Fmt.models(form.text("models")) ?? []
        r.tpm = patch(try Fmt.limit(form, "tpm", "TPM"))
        r.rpm = patch(try Fmt.limit(form, "rpm", "RPM"))
        r.monthlyBudgetNusd = patch(try Fmt.money(form, "budget", "Monthly budget"))
        _ = try await service.updateProject(signed.actor, org, project, r)
        return Self.redirect("/console/o/\(org)/p/\(project)")
    }

    func deleteProject(_ signed: Signed, _ org: UInt64, _ project: UInt64) async throws -> Response {
        try await service.deleteProject(signed.actor, org, project)
        return Self.redirect("/console/o/\(org)")
    }

    func addProjectMember(_ signed: Signed, _ form: Form, _ org: UInt64, _ project: UInt64) async throws -> Response {
        let r = AddProjectMemberRequest(
            userId: nil, email: try Fmt.required(form, "email", "E-mail"), role: form.text("role") ?? "member", grant: try Fmt.grant(form))
        _ = try await service.addProjectMember(signed.actor, org, project, r)
        return Self.redirect("/console/o/\(org)/p/\(project)")
    }

    func setProjectRole(_ signed: Signed, _ form: Form, _ org: UInt64, _ project: UInt64, _ user: UInt64) async throws -> Response {
        _ = try await service.updateProjectMember(
            signed.actor, org, project, user, UpdateProjectMemberRequest(role: try Fmt.required(form, "role", "Role"), grant: nil))
        return Self.redirect("/console/o/\(org)/p/\(project)")
    }

    func removeProjectMember(_ signed: Signed, _ org: UInt64, _ project: UInt64, _ user: UInt64) async throws -> Response {
        try await service.removeProjectMember(signed.actor, org, project, user)
        return Self.redirect("/console/o/\(org)/p/\(project)")
    }

    func revokeKey(_ signed: Signed, _ form: Form, _ org: UInt64, _ key: UInt64) async throws -> Response {
        _ = try await service.revokeKey(signed.actor, org, key)
        return Self.redirect(Self.safeLocal(form["back"]) ?? "/console/o/\(org)")
    }
}
