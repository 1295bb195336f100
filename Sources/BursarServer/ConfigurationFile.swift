import Foundation

/// Where a setting's value came from. Every start-up error names it.
public enum ConfigurationSource: Sendable, Hashable, CustomStringConvertible {
    /// The command line.
    case commandLine
    /// An environment variable.
    case environment(variable: String)
    /// A line of the config file.
    case file(path: String, line: Int)
    /// Nothing set it: the built-in default.
    case builtInDefault

    public var description: String {
        switch self {
        case .commandLine: "command line"
        case .environment(let variable): "environment variable \(variable)"
        case .file(let path, let line): "config file \(path):\(line)"
        case .builtInDefault: "built-in default"
        }
    }
}

/// A configuration that cannot be used; `message` names the setting and where it came from.
public struct ConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong, for the operator.
    public var message: String

    /// An error.
    public init(_ message: String) { self.message = message }

    public var description: String { message }
}

/// One setting as given, before it is parsed: the name as written (a flag name without `--`,
/// possibly an alias), the raw text and its source.
public struct ConfigurationEntry: Sendable, Hashable {
    /// The setting's name as written, e.g. `redis-connections` or the alias `stats`.
    public var name: String
    /// The value as written (surrounding blanks and one pair of double quotes removed).
    public var value: String
    /// Where it came from.
    public var source: ConfigurationSource

    /// An entry.
    public init(name: String, value: String, source: ConfigurationSource) {
        self.name = name
        self.value = value
        self.source = source
    }
}

/// bursard's config file: one `name = value` per line, where `name` is a flag's name without
/// `--` (`listen = 0.0.0.0:7420`, `redis-connections = 4`). Blank lines and lines whose first
/// non-blank character is `#` are ignored; a value may be wrapped in double quotes to keep
/// blanks or a leading `#`. Unknown names and a name set twice are errors that name the line.
public struct ConfigurationFile: Sendable, Hashable {
    /// The file's path as given.
    public var path: String
    /// Its settings, in file order.
    public var entries: [ConfigurationEntry]

    /// Parses `text` as the contents of `path`. Names are checked against `known` (canonical
    /// names and aliases); `config` itself cannot be set in a file.
    public static func parse(_ text: String, path: String, known: Set<String>) throws(ConfigurationError) -> ConfigurationFile {
        var entries: [ConfigurationEntry] = []
        var seen: [String: Int] = [:]
        for (index, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let number = index + 1
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let at = "config file \(path):\(number)"
            guard let equals = line.firstIndex(of: "=") else {
                throw ConfigurationError("\(at): expected 'name = value' (a flag name without '--'), found '\(line)'")
            }
            let name = line[..<equals].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2 && value.hasPrefix("\"") && value.hasSuffix("\"") {
                value = String(value.dropFirst().dropLast())
            }
            guard !name.isEmpty else { throw ConfigurationError("\(at): a setting name is missing before '='") }
            if name == "config" {
                throw ConfigurationError("\(at): 'config' cannot be set inside a config file (use --config or BURSARD_CONFIG)")
            }
            guard known.contains(name) else {
                throw ConfigurationError("\(at): unknown setting '\(name)'\(suggestion(for: name, among: known))")
            }
            if let first = seen[name] {
                throw ConfigurationError("\(at): '\(name)' is already set on line \(first)")
            }
            seen[name] = number
            entries.append(ConfigurationEntry(name: name, value: value, source: .file(path: path, line: number)))
        }
        return ConfigurationFile(path: path, entries: entries)
    }

    /// Reads and parses the file at `path`; `origin` says who named it (for the error message).
    public static func load(path: String, origin: ConfigurationSource, known: Set<String>) throws(ConfigurationError) -> ConfigurationFile {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let reason = (error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription
            throw ConfigurationError("--config '\(path)' (\(origin)): cannot read the file: \(reason)")
        }
        return try parse(text, path: path, known: known)
    }

    /// " (did you mean 'x'?)" when `name` differs from a known name only in case, `_` for `-` or a
    /// leading `--`; otherwise the list of names.
    static func suggestion(for name: String, among known: Set<String>) -> String {
        var normalized = name.lowercased().replacingOccurrences(of: "_", with: "-")
        while normalized.hasPrefix("-") { normalized.removeFirst() }
        if known.contains(normalized) { return " (did you mean '\(normalized)'?)" }
        let close = known.filter { $0.hasPrefix(normalized + "-") }.sorted()
        if close.count == 1 { return " (did you mean '\(close[0])'?)" }
        return "; settings are the flag names without '--': \(known.sorted().joined(separator: ", "))"
    }
}
