import BursarAPI
import Foundation

/// How the console shows and reads values: money as dollars, counts grouped, limits with "none"
/// for no cap. Built on `Units` (shared with bursarctl); integers only.
enum Fmt {
    /// A project's card and guardrails.
    static func project(_ p: ProjectBody) -> [String: Any] {
        [
            "id": String(p.id), "name": p.name, "status": p.status, "active": p.status == "active",
            "models": p.models.isEmpty ? "All models" : p.models.joined(separator: ", "),
            "modelChips": p.models, "allModels": p.models.isEmpty,
            "modelsShort": short(p.models), "modelsList": p.models.joined(separator: ", "),
            "tpm": limit(p.tpm), "rpm": limit(p.rpm), "budgetText": p.monthlyBudgetNusd.map(Units.dollars) ?? "No budget",
            "tpmValue": p.tpm.map(String.init) ?? "", "rpmValue": p.rpm.map(String.init) ?? "",
            "budgetValue": p.monthlyBudgetNusd.map(Units.plainDollars) ?? "",
        ]
    }

    /// `GPT-5.5, Claude Opus 4.8 +6`.
    static func short(_ models: [String]) -> String {
        guard !models.isEmpty else { return "All models" }
        return models.prefix(2).joined(separator: ", ") + (models.count > 2 ? " +\(models.count - 2)" : "")
    }

    /// Spend against a budget, for a `<progress>` bar: the bar's value and maximum are the
    /// nano-USD amounts themselves (integers; the bar is clamped at full).
    static func budget(spent: Int64, of budget: Int64?, label: String = "Monthly budget") -> [String: Any] {
        guard let budget, budget > 0 else {
            return ["has": false, "label": label, "text": "\(Units.dollars(spent)) spent · no budget"]
        }
        let percent = spent >= budget ? 100 : Int(spent * 100 / budget)
        return [
            "has": true, "label": label, "value": String(min(spent, budget)), "max": String(budget), "percent": String(percent),
            "text": "\(Units.dollars(spent)) / \(Units.dollars(budget))", "over": spent >= budget,
            "warn": percent >= 80,
        ]
    }

    /// The highest budget alert of the current window (`spend.budget_alerts`: 50, 80, 100), for
    /// Templates/budget-alert.mustache; false when there is none (never absent: the template
    /// would find an enclosing page's alert).
    static func budgetAlert(_ alerts: [Int]) -> Any {
        guard let percent = alerts.max() else { return false }
        return ["percent": String(percent), "reached": percent >= 100, "text": percent >= 100 ? "Budget reached" : "\(percent)% of budget"]
    }

    /// A minute's usage: `12 / 600` or `12` without a limit.
    static func rate(_ r: RateUsageBody) -> String {
        Units.count(r.used) + (r.limit.map { " / " + Units.count($0) } ?? "")
    }

    static func limit(_ v: Int64?) -> String { v.map(Units.count) ?? "No limit" }

    /// The window a key's spend is counted in, as a phrase: `today`, `this week`, `this month`, `in total`.
    static func period(_ p: String) -> String {
        switch p {
        case "daily": "today"
        case "weekly": "this week"
        case "monthly": "this month"
        default: "in total"
        }
    }

    /// A key's limits in one line, as on the product page: `$200/mo · 60 RPM · 20k TPM · 4 models`.
    static func keyLimits(_ k: KeyBody) -> String {
        var parts: [String] = []
        if let s = k.maxSpendNusd {
            let per = ["daily": "/day", "weekly": "/wk", "monthly": "/mo"][k.period] ?? " total"
            parts.append(Units.dollars(s) + per)
        }
        if let r = k.rpm { parts.append("\(Units.count(r)) RPM") }
        if let t = k.tpm { parts.append("\(Units.count(t)) TPM") }
        parts.append(k.models.isEmpty ? "all models" : (k.models.count == 1 ? k.models[0] : "\(k.models.count) models"))
        return parts.joined(separator: " · ")
    }

    static func grant(_ g: GrantBody) -> String {
        var parts: [String] = []
        if let m = g.models, !m.isEmpty { parts.append(m.joined(separator: ", ")) }
        if let s = g.maxKeySpendNusd { parts.append("keys ≤ \(Units.dollars(s))") }
        if let r = g.rpm { parts.append("≤ \(Units.count(r)) RPM") }
        if let t = g.tpm { parts.append("≤ \(Units.count(t)) TPM") }
        return parts.isEmpty ? "Project caps" : parts.joined(separator: " · ")
    }

    static func plural(_ n: Int, _ word: String) -> String { n == 1 ? "1 \(word)" : "\(Units.count(Int64(n))) \(word)s" }

    /// A name as one path segment (virtual model and prompt names may hold `/`).
    static func pathSegment(_ name: String) -> String {
        name.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? name
    }

    // MARK: Reading form fields

    static func required(_ form: Form, _ name: String, _ label: String) throws -> String {
        guard let v = form.text(name) else { throw FormError("\(label) is required", field: name) }
        return v
    }

    /// `a, b, c` as a model list; nil when blank (every model).
    static func models(_ text: String?) -> [String]? {
        guard let text else { return nil }
        let list = text.split(whereSeparator: { $0 == "," || $0 == "\n" }).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return list.isEmpty ? nil : list
    }

    static func limit(_ form: Form, _ name: String, _ label: String) throws -> Int64? {
        guard let text = form.text(name) else { return nil }
        do { return try Units.parseLimit(text) } catch { throw FormError("\(label): \(error.message)", field: name) }
    }

    static func money(_ form: Form, _ name: String, _ label: String, allowNegative: Bool = false) throws -> Int64? {
        guard let text = form.text(name) else { return nil }
        do { return try Units.parseMoney(text, allowNegative: allowNegative) } catch { throw FormError("\(label): \(error.message)", field: name) }
    }

    /// A grant from the add-member form (every field optional: no field = the project's caps).
    static func grant(_ form: Form) throws -> GrantBody? {
        let g = GrantBody(
            models: models(form.text("grant_models")), maxKeySpendNusd: try money(form, "grant_spend", "Max key spend"),
            rpm: try limit(form, "grant_rpm", "RPM"), tpm: try limit(form, "grant_tpm", "TPM"))
        return g == GrantBody() ? nil : g
    }

    /// A price table row: dollars per million tokens.
    static func price(_ p: PriceBody) -> [String: Any] {
        [
            "model": p.model, "path": pathSegment(p.model), "input": Units.dollars(p.inputPerMillionNusd),
            "output": Units.dollars(p.outputPerMillionNusd), "cached": Units.dollars(p.cachedInputPerMillionNusd),
        ]
    }
}
