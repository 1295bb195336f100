import BursarLimits
import BursarRedis
import BursarWire

/// The Lua of bursar's atomic steps. It lives in `.lua` files beside this one (`Lua/`), compiled
/// into the binary (SwiftPM `embedInCode`), so a deployment is one file and a reader sees real
/// Lua, not Swift strings. A script is some of these files joined, in order.
///
/// What Swift and the Lua must agree on is defined once, in Swift, and put into the Lua when a
/// script is loaded: `NAME.<segment>` becomes the key-name piece of `Keyspace.Segment` as a
/// string literal, `DENY.<reason>` the number of `DenyReason`, `OUTCOME.<outcome>` of
/// `CheckOutcome`, `STATUS.<status>` of `ReservationStatus`, `BUCKET.scale` and `BUCKET.max_level`
/// the rate buckets' arithmetic of `MinuteBucket`, and `CLOCK.test` whether the script reads the
/// test clock (`ScriptClock`). A name none of them defines stops the load: a typo in
/// the Lua fails every test that runs a script, never a request.
enum LuaFile: String, CaseIterable, Sendable {
    case org, values, prelude
    case compiledRecord = "compiled-record", compile
    case checkHelpers = "check-helpers", check, undeliveredNow = "undelivered-now", undeliveredBatched = "undelivered-batched"
    case history, reservation, settle, void, sweep, heartbeat
    case mainSingle = "main-single", mainBatch = "main-batch"
    case usageCommon = "usage-common", usageKey = "usage-key", usageProject = "usage-project", usageOrg = "usage-org", usageTop = "usage-top"
    case setOrgRole = "set-org-role", tokenUsed = "token-used", rewrapSecret = "rewrap-secret"

    /// The file's bytes, as compiled in.
    var bytes: [UInt8] {
        switch self {
        case .org: PackageResources.org_lua
        case .values: PackageResources.values_lua
        case .prelude: PackageResources.prelude_lua
        case .compiledRecord: PackageResources.compiled_record_lua
        case .compile: PackageResources.compile_lua
        case .checkHelpers: PackageResources.check_helpers_lua
        case .check: PackageResources.check_lua
        case .undeliveredNow: PackageResources.undelivered_now_lua
        case .undeliveredBatched: PackageResources.undelivered_batched_lua
        case .history: PackageResources.history_lua
        case .reservation: PackageResources.reservation_lua
        case .settle: PackageResources.settle_lua
        case .void: PackageResources.void_lua
        case .sweep: PackageResources.sweep_lua
        case .heartbeat: PackageResources.heartbeat_lua
        case .mainSingle: PackageResources.main_single_lua
        case .mainBatch: PackageResources.main_batch_lua
        case .usageCommon: PackageResources.usage_common_lua
        case .usageKey: PackageResources.usage_key_lua
        case .usageProject: PackageResources.usage_project_lua
        case .usageOrg: PackageResources.usage_org_lua
        case .usageTop: PackageResources.usage_top_lua
        case .setOrgRole: PackageResources.set_org_role_lua
        case .tokenUsed: PackageResources.token_used_lua
        case .rewrapSecret: PackageResources.rewrap_secret_lua
        }
    }

    /// The file's name in `Lua/`.
    var fileName: String { rawValue + ".lua" }
}

/// Loads scripts from `LuaFile`s (see there).
enum LuaSource {
    /// The files joined, in order, with the shared names put in.
    static func script(_ files: [LuaFile], clock: ScriptClock = .redis, history: HistoryRetention = .standard) -> String {
        let text = files.map { "-- \($0.fileName)\n" + String(decoding: $0.bytes, as: UTF8.self) }.joined(separator: "\n")
        do {
            return try expand(text, clock: clock, history: history)
        } catch {
            preconditionFailure("\(files.map(\.fileName)): \(error)")
        }
    }

    /// The files joined, with the shared names put in, as a Redis Functions library whose one
    /// function, `main` (main-single.lua or main-batch.lua), is registered under the library's
    /// own name: `bursar_` and the SHA-1 of the library's code, so two builds whose Lua differs
    /// (or one build's scripts on different clocks or history retentions) never replace each
    /// other's, and the same code loaded twice is the same library.
    static func library(_ files: [LuaFile], clock: ScriptClock = .redis, history: HistoryRetention = .standard) -> RedisScript {
        let code = script(files, clock: clock, history: history)
        let name = "bursar_" + RedisScript(source: code).sha1
        return RedisScript(library: "#!lua name=\(name)\n" + code + "redis.register_function('\(name)', main)\n", function: name)
    }

    /// A name the Lua uses that Swift does not define.
    struct UnknownName: Error, CustomStringConvertible {
        /// The name as written, e.g. `DENY.key_rpn`.
        var name: String
        var description: String { "the Lua names \(name), which no Swift definition gives" }
    }

    /// Every `TABLE.name` the Lua may use, and its Lua literal.
    static func constants(clock: ScriptClock, history: HistoryRetention = .standard) -> [String: [String: String]] {
        func table<S: Sequence>(_ items: S, _ name: (S.Element) -> String, _ value: (S.Element) -> String) -> [String: String] {
            Dictionary(uniqueKeysWithValues: items.map { (name($0), value($0)) })
        }
        return [
            "NAME": table(Keyspace.Segment.allCases, \.luaName) { "'\($0.rawValue)'" },
            "DENY": table(DenyReason.allCases, \.description) { String($0.rawValue) },
            "OUTCOME": table(CheckOutcome.allCases, { snakeCase(String(describing: $0)) }) { String($0.rawValue) },
            "STATUS": table(ReservationStatus.allCases, \.description) { String($0.rawValue) },
            "CLOCK": ["test": clock == .testFrozen ? "true" : "false"],
            "BUCKET": ["scale": String(MinuteBucket.scale), "max_level": String(MinuteBucket.maxLevel)],
            "HISTORY": ["retention_ms": String(Int64(history.days) * 86_400_000)],
            "AUDIT": ["capacity": "'\(AuditLog.defaultCapacity)'"],
        ]
    }

    /// `text` with every `TABLE.name` of `constants` replaced by its literal. Lua comments are
    /// left as they are.
    static func expand(_ text: String, clock: ScriptClock, history: HistoryRetention = .standard) throws(UnknownName) -> String {
        let tables = constants(clock: clock, history: history)
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            // Only the code before a comment is expanded (no `--` appears inside a string literal here).
            let code: Substring
            let comment: Substring
            if let dash = line.firstRange(of: "--") {
                code = line[..<dash.lowerBound]
                comment = line[dash.lowerBound...]
            } else {
                code = line
                comment = ""
            }
            out += try expand(code: code, tables)
            out += comment
            out += "\n"
        }
        return out
    }

    private static func expand(code: Substring, _ tables: [String: [String: String]]) throws(UnknownName) -> String {
        var out = ""
        var i = code.startIndex
        func isWord(_ c: Character) -> Bool { c == "_" || (c.isASCII && (c.isLetter || c.isNumber)) }
        while i < code.endIndex {
            let c = code[i]
            guard c.isUppercase, i == code.startIndex || !isWord(code[code.index(before: i)]) else {
                out.append(c)
                i = code.index(after: i)
                continue
            }
            var j = i
            while j < code.endIndex, isWord(code[j]) { j = code.index(after: j) }
            let word = String(code[i..<j])
            guard let table = tables[word], j < code.endIndex, code[j] == "." else {
                out += word
                i = j
                continue
            }
            var k = code.index(after: j)
            while k < code.endIndex, isWord(code[k]) { k = code.index(after: k) }
            let member = String(code[code.index(after: j)..<k])
            guard let literal = table[member] else { throw UnknownName(name: "\(word).\(member)") }
            out += literal
            i = k
        }
        return out
    }

    /// `keySpend` → `key_spend`, `keyRPM` → `key_rpm`, `alreadyRecorded` → `already_recorded`.
    static func snakeCase(_ name: String) -> String {
        var out = ""
        var previousLower = false
        for c in name {
            if c.isUppercase {
                if previousLower { out.append("_") }
                out += c.lowercased()
                previousLower = false
            } else {
                out.append(c)
                previousLower = c.isLowercase || c.isNumber
            }
        }
        return out
    }
}
