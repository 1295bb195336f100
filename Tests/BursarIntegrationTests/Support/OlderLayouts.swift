import BursarStore

/// The layouts of a reservation that bursards before the packed layout wrote (ReservationRecord), made
/// from a record, so a test can leave one open across an upgrade.
extension ReservationRecord {
    /// The fourteen fields every admission's text record begins with, in order (the hash of the
    /// layout before 2026-12-02 had them under these names: `textFieldNames`).
    var textFields: [String] {
        [status, String(expiresAtMs ?? 0), String(keyID ?? 0), String(projectID ?? 0), String(tokens), String(cost),
         keyWindow ?? "", projectWindow ?? "", metered ? "1" : "0", String(keyTPM), String(projectTPM),
         String(keyRPM), String(projectRPM), String(createdAtUs ?? 0)]
    }

    static let textFieldNames = ["st", "exp", "kid", "pid", "tok", "cost", "kw", "pw", "met", "ktr", "ptr", "krr", "prr", "at"]

    /// The text layout of 2026-12-05: the fields, the actuals (`-` while unknown) and prices of a
    /// CHECK priced from the table, then ` |`, the budgets (`-`: none) and the model.
    var textLayout: String {
        var f = textFields
        if let p = prices {
            f += [actualTokens.map(String.init) ?? "-", actualCost.map(String.init) ?? "-", String(p.input), String(p.output), String(p.cached)]
        } else if let t = actualTokens, let c = actualCost {
            f += [String(t), String(c)]
        }
        return f.joined(separator: " ") + " |" + (keyBudget.map(String.init) ?? "-") + " " + (projectBudget.map(String.init) ?? "-") + " " + (model ?? "")
    }
}
