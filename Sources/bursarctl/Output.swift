import BursarAPI
import BursarLimits
import Foundation
import NIOCore

// Human output: aligned tables, `key: value` blocks, dollars from nano-USD, ISO-8601 UTC times,
// and the pretty-printer behind `--json`.

/// A table with a header row and left-aligned columns separated by two spaces.
struct Table {
    private let headers: [String]
    private var rows: [[String]] = []

    init(_ headers: String...) { self.headers = headers }

    init(columns: [String]) { self.headers = columns }

    mutating func add(_ cells: String...) { rows.append(cells) }

    mutating func add(row cells: [String]) { rows.append(cells) }

    /// Prints the table, or `empty` when it has no rows.
    func print(empty: String) {
        guard !rows.isEmpty else {
            Swift.print(empty)
            return
        }
        var widths = headers.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        for row in [headers] + rows {
            var line = ""
            for (i, cell) in row.enumerated() {
                let isLast = i == row.count - 1
                line += isLast ? cell : pad(cell, to: widths[i] + 2)
            }
            Swift.print(line)
        }
    }
}

/// Prints `key: value` lines with the values aligned. Nil values are left out.
func printBlock(_ pairs: [(String, String?)]) {
    let present = pairs.compactMap { pair in pair.1.map { (pair.0, $0) } }
    let width = (present.map(\.0.count).max() ?? 0) + 2
    for (key, value) in present {
        print(pad(key + ":", to: width) + value)
    }
}

/// `text` followed by spaces up to `width` characters.
private func pad(_ text: String, to width: Int) -> String {
    text + String(repeating: " ", count: max(0, width - text.count))
}

/// Writes a line to standard error (after what is already printed to standard output).
func printError(_ line: String) {
    fflush(nil)
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

// MARK: Values

/// Nano-USD as dollars (`Units.dollars`): `$200.00`, `$0.000000001`, `-$5.10`.
func dollars(_ nusd: Int64) -> String { Units.dollars(nusd) }

/// An optional amount; nil means no cap.
func dollars(_ nusd: Int64?, none: String = "none") -> String { nusd.map { dollars($0) } ?? none }

/// `1234567` as `1,234,567`.
func groupThousands(_ digits: String) -> String { Units.groupThousands(digits) }

/// A rate limit; nil means none.
func limit(_ value: Int64?, none: String = "none") -> String { value.map { groupThousands(String($0)) } ?? none }

/// A model list; empty means no restriction.
func models(_ list: [String]?, empty: String = "all") -> String {
    guard let list, !list.isEmpty else { return empty }
    return list.joined(separator: ",")
}

/// Unix ms as ISO-8601 UTC, `2026-12-31T00:00:00Z` (`Units.isoTime`).
func isoTime(_ ms: Int64) -> String { Units.isoTime(ms) }

/// An optional time; nil shows as `none`.
func isoTime(_ ms: Int64?, none: String = "never") -> String { ms.map { isoTime($0) } ?? none }

// MARK: --json

/// Re-indents JSON text without re-encoding it: numbers, escapes and key order stay exactly as
/// the server sent them (a 64-bit id never passes through a Double).
func prettyJSON(_ buffer: ByteBuffer) -> String {
    let text = String(buffer: buffer)
    var out = ""
    var depth = 0
    var inString = false
    var escaped = false
    var pendingOpen = false  // just after `{` or `[`: an immediate close keeps `{}` / `[]`
    func newline() { out += "\n" + String(repeating: "  ", count: depth) }
    for c in text {
        if inString {
            out.append(c)
            if escaped {
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else if c == "\"" {
                inString = false
            }
            continue
        }
        if c == " " || c == "\n" || c == "\t" || c == "\r" { continue }
        if pendingOpen {
            pendingOpen = false
            if c == "}" || c == "]" {
                depth -= 1
                out.append(c)
                continue
            }
            newline()
        }
        switch c {
        case "{", "[":
            out.append(c)
            depth += 1
            pendingOpen = true
        case "}", "]":
            depth -= 1
            newline()
            out.append(c)
        case ",":
            out.append(c)
            newline()
        case ":":
            out += ": "
        case "\"":
            inString = true
            out.append(c)
        default:
            out.append(c)
        }
    }
    return out
}
