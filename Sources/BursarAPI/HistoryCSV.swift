/// Usage history as CSV (RFC 4180, `\r\n` line ends): the grouped dimensions, then every sum, the
/// denials one column per reason. Money stays integer nano-USD. A text cell a spreadsheet would
/// read as a formula (`=`, `+`, `-`, `@`, tab or CR first) is prefixed with `'`.
public enum HistoryCSV {
    /// The deny reasons a history records, in column order (what the limiter's scripts decide).
    public static let reasons = [
        "key_revoked", "key_expired", "creator_lost_access", "project_inactive", "org_suspended", "model_not_allowed",
        "key_rpm", "key_tpm", "project_rpm", "project_tpm", "key_budget", "project_budget", "org_credits",
        "request_too_large", "price_unknown",
    ]

    /// The sums' columns.
    public static let sumColumns = [
        "requests_admitted", "requests_settled", "requests_released", "requests_open", "requests_denied",
        "tokens_settled", "tokens_open", "tokens", "spend_settled_nusd", "spend_open_nusd", "spend_nusd",
    ]

    /// The document.
    public static func render(_ h: HistoryResponse) -> String {
        var header: [String] = []
        for d in h.groupBy {
            switch d {
            case "day": header.append("day")
            case "project": header += ["project_id", "project_name"]
            case "key": header += ["key_id", "key_name"]
            case "model": header.append("model")
            default: continue
            }
        }
        header += sumColumns + reasons.map { "denied_\($0)" }
        var out = header.joined(separator: ",") + "\r\n"
        for r in h.rows {
            var cells: [String] = []
            for d in h.groupBy {
                switch d {
                case "day": cells.append(r.day ?? "")
                case "project": cells += [r.projectId.map(String.init) ?? "", text(r.projectName ?? "")]
                case "key": cells += [r.keyId.map(String.init) ?? "", text(r.keyName ?? "")]
                case "model": cells.append(text(r.model ?? ""))
                default: continue
                }
            }
            cells += sums(r).map(String.init)
            out += cells.joined(separator: ",") + "\r\n"
        }
        return out
    }

    /// A row's sums in `sumColumns` order, then its denials by `reasons`.
    public static func sums(_ r: HistoryRowBody) -> [Int64] {
        [
            r.requestsAdmitted, r.requestsSettled, r.requestsReleased, r.requestsOpen, r.requestsDenied,
            r.tokensSettled, r.tokensOpen, r.tokens, r.spendSettledNusd, r.spendOpenNusd, r.spendNusd,
        ] + reasons.map { r.denied[$0] ?? 0 }
    }

    /// A text cell: quoted when it holds a comma, quote or line break; defused when a
    /// spreadsheet would take it for a formula.
    static func text(_ s: String) -> String {
        var v = s
        if let f = v.first, "=+-@\t\r".contains(f) { v = "'" + v }
        if v.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
            var quoted = "\""
            for c in v {
                if c == "\"" { quoted.append("\"") }
                quoted.append(c)
            }
            v = quoted + "\""
        }
        return v
    }
}
