import BursarAdmin
import BursarAPI
import BursarRBAC
import Foundation
import Hummingbird

extension Console {
    // MARK: Organization (Owners)

    func organization(_ signed: Signed, _ org: UInt64) async throws -> Response {
        let a = signed.actor
        // The service refuses a Member here (forbidden) before anything is read.
        let members = try await service.listMembers(a, org).members
        let owners = members.filter { $0.role == "owner" }.count
        let invitations = try await service.listInvitations(a, org).invitations
        let billing = try await service.billing(a, org)
        let now = try await service.store.redisTimeMs()
        let projects = try await service.listProjects(a, org).projects
        let prices = try await service.listPrices(a, org).prices
        let names = Dictionary(uniqueKeysWithValues: projects.map { ($0.id, $0.name) })
        var keys: [[String: Any]] = []
        for k in try await service.listOrgKeys(a, org).keys {
            var row = try await keyRow(signed, org, k, projectName: names[k.projectId] ?? "project \(k.projectId)", now: now, back: "/console/o/\(org)/organization")
            row["owner"] = members.first { $0.userId == k.userId }?.email ?? "user \(k.userId)"
            keys.append(row)
        }
        let ctx: [String: Any] = [
            "orgId": String(org), "csrf": signed.session.csrf, "can": can(try standing(signed, org)),
            "members": members.map { m in
                [
                    "id": String(m.userId), "email": m.email, "name": m.name, "owner": m.role == "owner",
                    "role": m.role == "owner" ? "Owner" : "Member", "lastOwner": m.role == "owner" && owners == 1,
                    "me": m.userId == signed.userID,
                ] as [String: Any]
            },
            "invitations": invitations.map { i in
                ["id": String(i.id), "email": i.email, "name": i.name as Any, "role": i.role == "owner" ? "Owner" : "Member", "expires": Units.isoTime(i.expiresAtMs)] as [String: Any]
            },
            "hasInvitations": !invitations.isEmpty,
            "credits": Units.dollars(billing.creditsNusd), "metered": billing.metered,
            "spendByProject": billing.projects.map { s in
                ["name": s.name, "id": String(s.projectId), "budget": Fmt.budget(spent: s.spendNusd, of: s.monthlyBudgetNusd)] as [String: Any]
            },
            "month": Units.day(billing.monthStartMs),
            "keys": keys, "noKeys": keys.isEmpty, "tableId": "all-keys", "showProject": true, "showUser": true,
            "byok": try await service.listByok(a, org).keys.map { ["id": String($0.id), "provider": $0.provider, "name": $0.name, "display": $0.display] },
            "virtualModels": try await service.listVirtualModels(a, org).models.map {
                ["name": $0.name, "path": Fmt.pathSegment($0.name), "targets": $0.targets.joined(separator: ", ")]
            },
            "prices": prices.map(Fmt.price), "hasPrices": !prices.isEmpty,
            "mcp": try await service.listMcp(a, org).servers.map { ["id": String($0.id), "name": $0.name, "url": $0.url] },
            "prompts": try await service.listPrompts(a, org).prompts.map {
                ["name": $0.name, "path": Fmt.pathSegment($0.name), "version": String($0.latestVersion)]
            },
        ]
        return views.page("organization", title: "Organization", ctx, chrome: Chrome(signed, org: org))
    }

    /// The organization page's forms: `section` names the part of the page, `item`/`verb` the
    /// row and what to do with it (`remove`, `role`, `delete`).
    func organizationAction(_ signed: Signed, _ form: Form, _ org: UInt64, _ section: String, _ target: (item: String, verb: String)?) async throws -> Response {
        let a = signed.actor
        let back = Self.redirect("/console/o/\(org)/organization#\(section)")
        func id(_ text: String) throws -> UInt64 {
            guard let v = UInt64(text) else { throw APIError(.notFound, "there is no such item") }
            return v
        }
        switch (section, target?.verb) {
        case ("members", nil):
            let r = InviteRequest(email: try Fmt.required(form, "email", "E-mail"), name: form.text("name"), role: form.text("role") ?? "member")
            let invited = try await service.invite(a, org, r)
            let ctx: [String: Any] = [
                "orgId": String(org), "email": invited.invitation.email, "role": invited.invitation.role == "owner" ? "an Owner" : "a Member",
                "secret": invited.acceptToken, "expires": Units.isoTime(invited.invitation.expiresAtMs),
            ]
            return views.page("invited", title: "Invitation sent", ctx, chrome: Chrome(signed, org: org), status: .created)
        case ("invitations", "revoke"):
            try await service.revokeInvitation(a, org, try id(target!.item))
            return Self.redirect("/console/o/\(org)/organization#manage_organization_members")
        case ("members", "role"):
            _ = try await service.setMemberRole(a, org, try id(target!.item), MemberRoleRequest(role: try Fmt.required(form, "role", "Role")))
        case ("members", "remove"):
            try await service.removeMember(a, org, try id(target!.item))
        case ("credits", nil):
            guard let amount = try Fmt.money(form, "amount", "Amount", allowNegative: true) else {
                throw FormError("Amount is required", field: "amount")
            }
            _ = try await service.addCredits(a, org, AddCreditsRequest(amountNusd: amount, metered: form.text("metered").map { $0 == "on" || $0 == "true" }))
        case ("byok", nil):
            _ = try await service.addByok(
                a, org,
                CreateByokRequest(
                    provider: try Fmt.required(form, "provider", "Provider"), name: try Fmt.required(form, "name", "Name"),
                    secret: try Fmt.required(form, "secret", "Secret")))
        case ("byok", "delete"):
            try await service.deleteByok(a, org, try id(target!.item))
        case ("virtual-models", nil):
            let targets = Fmt.models(form.text("targets")) ?? []
            _ = try await service.putVirtualModel(a, org, try Fmt.required(form, "name", "Name"), PutVirtualModelRequest(targets: targets))
        case ("virtual-models", "delete"):
            try await service.deleteVirtualModel(a, org, target!.item)
        case ("prices", nil):
            let model = try Fmt.required(form, "model", "Model")
            guard let input = try Fmt.money(form, "input", "Input $ per million tokens") else { throw FormError("Input price is required", field: "input") }
            guard let output = try Fmt.money(form, "output", "Output $ per million tokens") else { throw FormError("Output price is required", field: "output") }
            let cached = try Fmt.money(form, "cached", "Cached input $ per million tokens")
            _ = try await service.putPrice(a, org, model, PutPriceRequest(inputPerMillionNusd: input, outputPerMillionNusd: output, cachedInputPerMillionNusd: cached))
        case ("prices", "delete"):
            try await service.deletePrice(a, org, target!.item)
        case ("prices-import", nil):
            let file = try Fmt.required(form, "file", "LiteLLM price JSON")
            let only = Fmt.models(form.text("models"))
            _ = try await service.importPrices(a, org, Data(file.utf8), only: only.map(Set.init))
        case ("mcp-servers", nil):
            _ = try await service.addMcp(a, org, McpServerRequest(name: try Fmt.required(form, "name", "Name"), url: try Fmt.required(form, "url", "URL")))
        case ("mcp-servers", "delete"):
            try await service.deleteMcp(a, org, try id(target!.item))
        case ("prompts", nil):
            _ = try await service.createPrompt(a, org, PromptRequest(name: try Fmt.required(form, "name", "Name"), text: try Fmt.required(form, "text", "Text")))
        case ("prompts", "delete"):
            try await service.deletePrompt(a, org, target!.item)
        default:
            throw APIError(.notFound, "there is no such form")
        }
        return back
    }

    // MARK: Audit log (Owners)

    func auditPage(_ signed: Signed, _ req: Request, _ org: UInt64) async throws -> Response {
        let q = req.uri.queryParameters
        let filters = ["actor", "action", "target"].map { name in (name, q.get(name)?.trimmingCharacters(in: .whitespaces) ?? "") }
        // The service refuses a Member (forbidden). The newest 1,000 entries are filtered here.
        let entries = try await service.readAudit(signed.actor, org, limit: 1000).entries
        let now = try await service.store.redisTimeMs()
        // Actors are logged as `user:<id>`; the page shows (and filters on) their e-mail too.
        var emails: [String: String] = [:]
        for m in try await service.listMembers(signed.actor, org).members { emails["user:\(m.userId)"] = m.email }
        func who(_ actor: String) -> String { emails[actor].map { "\($0) (\(actor))" } ?? actor }
        let shown = entries.filter { e in
            filters.allSatisfy { name, want in
                guard !want.isEmpty else { return true }
                let have = name == "actor" ? who(e.actor) : (name == "action" ? e.action : e.target)
                return have.localizedCaseInsensitiveContains(want)
            }
        }
        var ctx: [String: Any] = [
            "orgId": String(org),
            "entries": shown.prefix(300).map { e in
                [
                    "time": Units.relative(e.timeMs, nowMs: now), "iso": Units.isoTime(e.timeMs), "actor": who(e.actor), "action": e.action,
                    "target": e.target, "outcome": e.outcome, "ok": e.outcome == "ok",
                ] as [String: Any]
            },
            "count": "\(shown.count) of \(entries.count)", "none": shown.isEmpty,
        ]
        for (name, value) in filters { ctx[name] = value }
        return views.page("audit", title: "Audit log", ctx, chrome: Chrome(signed, org: org))
    }
}
