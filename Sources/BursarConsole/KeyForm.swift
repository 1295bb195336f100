import BursarAdmin
import BursarAPI
import BursarRBAC
import Hummingbird

extension Console {
    // MARK: New user API key

    /// The form for a key of the caller, or (Project Admins and Owners) of another member of the
    /// project, `user`: the caps shown are that member's.
    func newKeyForm(_ signed: Signed, _ org: UInt64, _ project: UInt64, user: UInt64?) async throws -> Response {
        try await keyForm(signed, org, project, forUser: user == signed.userID ? nil : user, values: nil, error: nil, status: .ok)
    }

    /// The form, as pictured on the product page: max spend and its reset, TPM, RPM, models,
    /// expiry, content logging. Each capped field carries its tightest cap (`data-max`) and the
    /// cap's name (`data-cap`), so the page refuses a value above it before it is sent; the
    /// service refuses it again after. `forUser` is the key's user when not the caller; `values`
    /// what was typed, when the form comes back refused.
    func keyForm(
        _ signed: Signed, _ org: UInt64, _ project: UInt64, forUser: UInt64?, values: Form?,
        error: (message: String, cap: String?, field: String?)?, status: HTTPResponse.Status
    ) async throws -> Response {
        let p = try await service.getProject(signed.actor, org, project)
        let caps = try await service.keyCapLevels(signed.actor, org, project, user: forUser)
        // Project Admins and Owners may create a key for any member of the project.
        var owners: [[String: Any]] = []
        if Policy.permits(.manageAllKeysInProject, try standing(signed, org, p)) {
            owners = try await service.listProjectMembers(signed.actor, org, project).members.map { m in
                [
                    "id": String(m.userId), "label": m.userId == signed.userID ? "\(m.email) (you)" : m.email,
                    "selected": m.userId == (forUser ?? signed.userID),
                ]
            }
        }
        func cap(_ field: KeyPath<Caps, Int64?>, _ name: String, money: Bool = false) -> [String: Any] {
            guard let t = caps.tightest(field) else { return ["has": false] }
            let capName = t.cap == "grant" ? "grant.\(name == "monthly_budget" ? "max_key_spend" : name)" : "project.\(name)"
            let shown = money ? Units.dollars(t.value) : Units.count(t.value)
            let whose = t.cap == "grant" ? "your grant in this project" : "the project"
            return ["has": true, "max": String(t.value), "cap": capName, "text": "at most \(shown) (\(whose), \(capName))"]
        }
        let chosen = Set(values?.all("models") ?? [])
        let models = caps.grantableModels.map { ["name": $0, "checked": chosen.contains($0)] as [String: Any] }
        let period = values?["period"] ?? "monthly"
        let periods = [("daily", "Daily"), ("weekly", "Weekly"), ("monthly", "Monthly"), ("lifetime", "No reset")].map {
            ["value": $0.0, "label": $0.1, "selected": $0.0 == period] as [String: Any]
        }
        var ctx: [String: Any] = [
            "orgId": String(org), "projectId": String(project), "projectName": p.name, "csrf": signed.session.csrf,
            "keyOwners": owners, "hasKeyOwners": owners.count > 1, "forUser": forUser.map(String.init) ?? "",
            "forWhom": owners.first { $0["selected"] as? Bool == true }?["label"] as? String ?? "you",
            "models": models, "anyModel": caps.grantableModels.isEmpty, "periods": periods,
            "spendCap": cap(\.spend, "monthly_budget", money: true), "tpmCap": cap(\.tpm, "tpm"), "rpmCap": cap(\.rpm, "rpm"),
            "name": values?["name"] ?? "", "maxSpend": values?["max_spend"] ?? "", "tpm": values?["tpm"] ?? "", "rpm": values?["rpm"] ?? "",
            "modelsText": values?["models_text"] ?? "", "expiresInDays": values?["expires_in_days"] ?? (values == nil ? "30" : ""),
            "expiresOn": values?["expires_on"] ?? "", "noLogging": values?.checked("content_logging_disabled") ?? false,
        ]
        if let error {
            ctx["error"] = ["message": error.message, "cap": error.cap ?? "", "field": error.field ?? ""]
        }
        return views.page("key-new", title: "New user API key", ctx, chrome: Chrome(signed, org: org), status: status)
    }

    func createKey(_ signed: Signed, _ form: Form, _ org: UInt64, _ project: UInt64) async throws -> Response {
        let request: CreateKeyRequest
        do {
            request = try keyRequest(form)
        } catch let e as FormError {
            return try await keyForm(
                signed, org, project, forUser: form["user_id"].flatMap { UInt64($0) }, values: form, error: (e.message, nil, e.field),
                status: .badRequest)
        }
        do {
            let created = try await service.createKey(signed.actor, org, project, request)
            let now = try await service.store.redisTimeMs()
            let row = try await keyRow(signed, org, created.key, projectName: nil, now: now, back: "")
            return views.page(
                "key-created", title: "Key created",
                ["secret": created.secret, "key": row, "orgId": String(org), "projectId": String(project)],
                chrome: Chrome(signed, org: org), status: .created)
        } catch let e as APIError where [.exceedsCap, .invalid, .conflict].contains(e.code) {
            // A value the service refuses (a cap, an expiry in the past): the form again, with
            // what was typed and the reason, naming the cap.
            var message = Self.sentence(e.message)
            if let cap = e.cap {
                let levels = try await service.keyCapLevels(signed.actor, org, project, user: request.userId)
                message = Self.capMessage(cap, request, levels) ?? (message.hasSuffix(".") ? String(message.dropLast()) : message) + " (\(cap))."
            }
            return try await keyForm(
                signed, org, project, forUser: request.userId, values: form, error: (message, e.cap, nil),
                status: e.code == .exceedsCap ? .unprocessableContent : (e.code == .conflict ? .conflict : .badRequest))
        }
    }

    /// A cap refusal in the form's terms: the field as labelled, dollars and grouped counts, and
    /// the cap's stable name, e.g. "TPM 150,000 exceeds the project's cap of 120,000 (project.tpm)."
    /// nil when the cap is not one of the form's numbers (models: the service's sentence names it).
    static func capMessage(_ cap: String, _ r: CreateKeyRequest, _ levels: KeyCapLevels) -> String? {
        let parts = cap.split(separator: ".")
        guard parts.count == 2, let caps = levels.levels.first(where: { $0.name == parts[0] })?.caps else { return nil }
        let whose = parts[0] == "grant" ? "your grant's" : "the project's"
        switch parts[1] {
        case "tpm":
            guard let v = r.tpm, let c = caps.tpm else { return nil }
            return "TPM \(Units.count(v)) exceeds \(whose) cap of \(Units.count(c)) (\(cap))."
        case "rpm":
            guard let v = r.rpm, let c = caps.rpm else { return nil }
            return "RPM \(Units.count(v)) exceeds \(whose) cap of \(Units.count(c)) (\(cap))."
        case "monthly_budget", "max_key_spend":
            guard let v = r.maxSpendNusd, let c = caps.spend else { return nil }
            let what = parts[1] == "monthly_budget" ? "monthly budget" : "max key spend"
            return "Max spend \(Units.dollars(v)) exceeds \(whose) \(what) of \(Units.dollars(c)) (\(cap))."
        default:
            return nil
        }
    }

    /// The form's fields as the admin API's request. Dollars, counts and dates are parsed exactly
    /// as bursarctl parses them (`Units`).
    func keyRequest(_ form: Form) throws -> CreateKeyRequest {
        let inDays = try form.text("expires_in_days").map { text -> Int64 in
            guard let n = Int64(text), n >= 1 else { throw FormError("Expires in: '\(text)' is not a whole number of days (1 or more)", field: "expires_in_days") }
            return n
        }
        var on: Int64?
        if let text = form.text("expires_on") {
            do { on = try Units.parseDay(text) } catch { throw FormError("Expires on: \(error.message)", field: "expires_on") }
        }
        if inDays != nil && on != nil {
            throw FormError("Give the expiry either in days or as a date, not both", field: "expires_on")
        }
        var models = form.all("models").filter { !$0.isEmpty }
        if let typed = Fmt.models(form.text("models_text")) { models += typed }
        let period = form.text("period") ?? "monthly"
        var userID: UInt64?
        if let text = form.text("user_id") {
            guard let id = UInt64(text) else { throw FormError("Key for: '\(text)' is not a user id", field: "user_id") }
            userID = id
        }
        return CreateKeyRequest(
            name: try Fmt.required(form, "name", "Name"), userId: userID, maxSpendNusd: try Fmt.money(form, "max_spend", "Max spend"),
            period: period, rpm: try Fmt.limit(form, "rpm", "RPM"), tpm: try Fmt.limit(form, "tpm", "TPM"), models: models,
            expiresAtMs: on, expiresInDays: inDays, contentLoggingDisabled: form.checked("content_logging_disabled"))
    }
}
