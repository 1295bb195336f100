/// The caps one level of the hierarchy imposes on what lies below it. nil = no cap at this level;
/// an empty model list = every model.
public struct Caps: Sendable, Hashable {
    /// Accessible models (real or virtual names); empty = all.
    public var models: [String]
    /// Requests per minute.
    public var rpm: Int64?
    /// Tokens per minute.
    public var tpm: Int64?
    /// Spend, nano-USD: a project's monthly budget, or a grant's largest spend cap of one key.
    public var spend: Int64?

    /// Caps.
    public init(models: [String] = [], rpm: Int64? = nil, tpm: Int64? = nil, spend: Int64? = nil) {
        self.models = models
        self.rpm = rpm
        self.tpm = tpm
        self.spend = spend
    }
}

/// A limit that lies outside a cap above it. `cap` is stable (`project.tpm`,
/// `grant.max_key_spend`, …) and is what the admin API returns.
public struct CapViolation: Error, Sendable, Hashable, CustomStringConvertible {
    /// Which cap: `<level>.<field>`, level `project` or `grant`.
    public var cap: String
    /// A sentence naming the value and the cap.
    public var message: String

    public var description: String { message }
}

/// Whether a set of limits lies within the caps above it.
///
/// A nil limit inherits the cap (the CHECK step applies the tighter of all levels), so only set
/// values are compared. Model names are compared after expanding virtual models into the real
/// models they map to: a list permits a model when every real model behind it is in the list's
/// expansion.
public enum CapCheck {
    /// The first cap `limits` exceed, checking `levels` in order (e.g. project, then grant).
    /// `spendName` names the limit's spend field in messages (e.g. "key max spend").
    public static func violation(
        of limits: Caps, subject: String, within levels: [(name: String, caps: Caps)],
        expand: (String) -> [String] = { [$0] }
    ) -> CapViolation? {
        for (level, caps) in levels {
            if let v = exceeds(limits.rpm, caps.rpm, "\(subject) rpm", level, "rpm") { return v }
            if let v = exceeds(limits.tpm, caps.tpm, "\(subject) tpm", level, "tpm") { return v }
            let spendField = level == "grant" ? "max_key_spend" : "monthly_budget"
            if let v = exceeds(limits.spend, caps.spend, "\(subject) spend cap", level, spendField, money: true) { return v }
            if !caps.models.isEmpty {
                let allowed = Set(caps.models.flatMap(expand))
                for model in limits.models where !Set(expand(model)).isSubset(of: allowed) {
                    return CapViolation(
                        cap: "\(level).models",
                        message: "\(subject) model '\(model)' is not among the \(level)'s models (\(caps.models.joined(separator: ", ")))")
                }
            }
        }
        return nil
    }

    private static func exceeds(_ value: Int64?, _ cap: Int64?, _ what: String, _ level: String, _ field: String, money: Bool = false) -> CapViolation? {
        guard let value, let cap, value > cap else { return nil }
        let unit = money ? " nano-USD" : ""
        return CapViolation(cap: "\(level).\(field)", message: "\(what) \(value)\(unit) exceeds the \(level)'s \(field.split(separator: "_").joined(separator: " ")) cap \(cap)\(unit)")
    }
}
