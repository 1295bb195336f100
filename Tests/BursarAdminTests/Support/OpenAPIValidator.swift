import BursarAPI
import Foundation

// A small JSON-instance validator for the subset of OpenAPI 3.1 / JSON Schema 2020-12 that
// proto/openapi.json uses. It refuses (rather than ignores) any schema keyword it does not
// implement, so a document that outgrows it fails loudly instead of validating too little.

// MARK: JSON values

/// A JSON number, kept exact: integers as 64-bit integers, everything else as a double.
enum JSONNumber: Sendable, CustomStringConvertible {
    case signed(Int64)
    case unsigned(UInt64)
    case real(Double)

    /// JSON Schema's "integer": any number with a zero fractional part (so `2.0` is one).
    var isInteger: Bool {
        switch self {
        case .signed, .unsigned: true
        case .real(let d): d.isFinite && d.rounded(.towardZero) == d
        }
    }

    var doubleValue: Double {
        switch self {
        case .signed(let i): Double(i)
        case .unsigned(let u): Double(u)
        case .real(let d): d
        }
    }

    var description: String {
        switch self {
        case .signed(let i): String(i)
        case .unsigned(let u): String(u)
        case .real(let d): String(d)
        }
    }

    /// Numeric order across representations (exact between integers).
    static func compare(_ a: JSONNumber, _ b: JSONNumber) -> ComparisonResult {
        func order<T: Comparable>(_ x: T, _ y: T) -> ComparisonResult {
            x < y ? .orderedAscending : (x > y ? .orderedDescending : .orderedSame)
        }
        switch (a, b) {
        case let (.signed(x), .signed(y)): return order(x, y)
        case let (.unsigned(x), .unsigned(y)): return order(x, y)
        case let (.signed(x), .unsigned(y)): return x < 0 ? .orderedAscending : order(UInt64(x), y)
        case let (.unsigned(x), .signed(y)): return y < 0 ? .orderedDescending : order(x, UInt64(y))
        default: return order(a.doubleValue, b.doubleValue)
        }
    }
}

/// A parsed JSON value in which booleans and numbers are distinct (JSONSerialization hands back
/// `NSNumber` for both; see `init(foundation:)`).
enum JSONValue: Sendable, Equatable, CustomStringConvertible {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Parses JSON text (any top-level value).
    static func parse(_ data: Data) throws -> JSONValue {
        try JSONValue(foundation: JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]))
    }

    /// The class JSONSerialization uses for `true`/`false` (`__NSCFBoolean` on Linux and Darwin).
    /// `value is Bool` cannot be used: on Linux an NSNumber holding the integer 0 or 1 also casts
    /// to Bool, and on Darwin so does every NSNumber.
    private static let booleanClass = ObjectIdentifier(type(of: NSNumber(value: true)))

    /// Converts a JSONSerialization result.
    init(foundation value: Any) throws {
        switch value {
        case is NSNull:
            self = .null
        case let n as NSNumber:
            self = try JSONValue.convert(n)
        case let s as String:
            self = .string(s)
        case let a as [Any]:
            self = .array(try a.map { try JSONValue(foundation: $0) })
        case let o as [String: Any]:
            self = .object(try o.mapValues { try JSONValue(foundation: $0) })
        default:
            throw OpenAPIDocumentError("unexpected JSONSerialization value of type \(type(of: value))")
        }
    }

    private static func convert(_ n: NSNumber) throws -> JSONValue {
        if ObjectIdentifier(type(of: n)) == booleanClass {
            return .bool(n.boolValue)
        }
        if n is NSDecimalNumber {
            // JSONSerialization falls back to NSDecimalNumber for values it cannot hold otherwise.
            let text = n.stringValue
            if let i = Int64(text) { return .number(.signed(i)) }
            if let u = UInt64(text) { return .number(.unsigned(u)) }
            return .number(.real(Double(text) ?? n.doubleValue))
        }
        switch String(cString: n.objCType) {
        case "c", "s", "i", "l", "q": return .number(.signed(n.int64Value))
        case "C", "S", "I", "L", "Q": return .number(.unsigned(n.uint64Value))
        case "f", "d": return .number(.real(n.doubleValue))
        case let other: throw OpenAPIDocumentError("NSNumber of unexpected objCType \(other)")
        }
    }

    /// The JSON Schema type name of this value (`integer` for integral numbers).
    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .number(let n): n.isInteger ? "integer" : "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { o[key] } else { nil }
    }

    var objectValue: [String: JSONValue]? { if case .object(let o) = self { o } else { nil } }
    var arrayValue: [JSONValue]? { if case .array(let a) = self { a } else { nil } }
    var stringValue: String? { if case .string(let s) = self { s } else { nil } }

    var description: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return String(b)
        case .number(let n): return n.description
        case .string(let s): return "\"\(s)\""
        case .array(let a): return "[" + a.map(\.description).joined(separator: ",") + "]"
        case .object(let o): return "{" + o.keys.sorted().map { "\"\($0)\":\(o[$0]!)" }.joined(separator: ",") + "}"
        }
    }

    static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): true
        case let (.bool(x), .bool(y)): x == y
        case let (.number(x), .number(y)): JSONNumber.compare(x, y) == .orderedSame
        case let (.string(x), .string(y)): x == y
        case let (.array(x), .array(y)): x == y
        case let (.object(x), .object(y)): x == y
        default: false
        }
    }
}

// MARK: Errors

/// The document itself is unusable (missing, not JSON, or using what the validator cannot check).
struct OpenAPIDocumentError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One thing that did not conform, and where.
struct ValidationFailure: Sendable, Equatable, CustomStringConvertible {
    enum Kind: Sendable, Equatable {
        /// No path template matches the concrete path.
        case unknownPath
        /// The path exists but has no operation for the method.
        case unknownMethod
        /// The operation does not document this status.
        case undocumentedStatus
        /// A query parameter the operation does not declare.
        case unknownParameter
        /// A required parameter or request body is absent.
        case missing
        /// A body is present where none is documented (e.g. a 204, or a request without requestBody).
        case unexpectedBody
        /// The body is not JSON.
        case notJSON
        /// The value's type is not among the allowed ones.
        case type
        /// A required property is absent (`name`).
        case required(String)
        /// A property not in `properties` under `additionalProperties: false` (`name`).
        case additionalProperty(String)
        case enumeration
        case minimum
        case maximum
        case minLength
        case maxLength
        case pattern
        case minItems
        /// None of `anyOf`'s schemas matched.
        case anyOf
        /// The schema under `not` matched.
        case not
        /// An error body whose `code` does not belong to the response's status.
        case errorCodeStatus
        /// The schema is broken or uses something this validator does not implement.
        case schema
    }

    /// Where in the message the failure is.
    enum Location: Sendable, Equatable, CustomStringConvertible {
        /// The operation as a whole.
        case operation
        /// A JSON pointer into the body (`""` is the whole body).
        case body(String)
        /// A path or query parameter.
        case parameter(in: String, name: String)

        var description: String {
            switch self {
            case .operation: "operation"
            case .body(let p): "body at \(p.isEmpty ? "\"\" (root)" : p)"
            case .parameter(let place, let name): "\(place) parameter \(name)"
            }
        }
    }

    var kind: Kind
    var location: Location
    /// The schema keyword that failed, as a JSON pointer into the document (`#/components/schemas/KeyBody/properties/rpm/type`).
    var schemaPath: String
    var message: String

    /// The body pointer, when the failure is inside a body.
    var pointer: String? { if case .body(let p) = location { p } else { nil } }

    var description: String {
        "\(location)\(schemaPath.isEmpty ? "" : " (schema \(schemaPath))"): \(message)"
    }
}

/// A request or response that does not conform to the document: every failure found.
struct OpenAPIValidationError: Error, CustomStringConvertible {
    /// e.g. `GET /v1/orgs/3 → 200`.
    var context: String
    var failures: [ValidationFailure]

    var description: String {
        "\(context) does not conform to proto/openapi.json:\n" + failures.map { "  - \($0)" }.joined(separator: "\n")
    }

    func contains(_ kind: ValidationFailure.Kind, at pointer: String? = nil) -> Bool {
        failures.contains { $0.kind == kind && (pointer == nil || $0.pointer == pointer) }
    }
}

// MARK: JSON pointers

enum JSONPointer {
    static func escape(_ token: String) -> String {
        token.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
    }

    static func appending(_ pointer: String, _ token: String) -> String { pointer + "/" + escape(token) }

    /// Resolves `#/a/b` (a URI fragment holding a JSON pointer) within `root`.
    static func resolve(_ reference: String, in root: JSONValue) -> JSONValue? {
        guard reference.hasPrefix("#") else { return nil }
        let pointer = String(reference.dropFirst()).removingPercentEncoding ?? ""
        if pointer.isEmpty { return root }
        guard pointer.hasPrefix("/") else { return nil }
        var current = root
        for raw in pointer.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            let token = raw.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
            switch current {
            case .object(let o):
                guard let next = o[token] else { return nil }
                current = next
            case .array(let a):
                guard let i = Int(token), a.indices.contains(i) else { return nil }
                current = a[i]
            default:
                return nil
            }
        }
        return current
    }
}

// MARK: Schema validation

/// Validates instances against schemas of one document.
struct SchemaValidator: Sendable {
    let root: JSONValue

    /// Keywords checked.
    static let assertions: Set<String> = [
        "$ref", "type", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern", "minItems", "anyOf", "not",
        "properties", "required", "additionalProperties", "items",
    ]
    /// Keywords that only annotate (validation ignores them, as JSON Schema does for `format` by default).
    static let annotations: Set<String> = [
        "format", "description", "title", "default", "examples", "deprecated", "readOnly", "writeOnly",
    ]
    static let typeNames: Set<String> = ["null", "boolean", "integer", "number", "string", "array", "object"]

    /// A `pattern` as ICU reads it closest to ECMA-262 (what JSON Schema means): a closing `$` is
    /// the end of the string, not also the place before a final line terminator as in ICU.
    static func regex(_ pattern: String) -> NSRegularExpression? {
        let text = pattern.hasSuffix("$") && !pattern.hasSuffix("\\$") ? String(pattern.dropLast()) + "\\z" : pattern
        return try? NSRegularExpression(pattern: text)
    }

    func validate(_ instance: JSONValue, schema: JSONValue, schemaPath: String, pointer: String, location: (String) -> ValidationFailure.Location = { .body($0) }) -> [ValidationFailure] {
        var failures: [ValidationFailure] = []
        check(instance, schema, schemaPath, pointer, 0, location, &failures)
        return failures
    }

    /// Every problem the validator would have with this schema (and the schemas it contains), without an instance.
    func audit(_ schema: JSONValue, schemaPath: String, into problems: inout [String]) {
        guard case .object(let s) = schema else {
            if case .bool = schema { return }
            problems.append("\(schemaPath): a schema must be an object or a boolean")
            return
        }
        for key in s.keys.sorted() where !Self.assertions.contains(key) && !Self.annotations.contains(key) {
            problems.append("\(schemaPath): unsupported keyword \(key)")
        }
        if let ref = s["$ref"] {
            if let r = ref.stringValue, r.hasPrefix("#/components/schemas/"), JSONPointer.resolve(r, in: root) != nil {
            } else {
                problems.append("\(schemaPath)/$ref: \(ref) does not resolve to #/components/schemas/…")
            }
        }
        if let type = s["type"] {
            let names = type.stringValue.map { [$0] } ?? type.arrayValue?.compactMap(\.stringValue) ?? []
            if names.isEmpty || names.contains(where: { !Self.typeNames.contains($0) }) || (type.arrayValue.map { $0.count != names.count } ?? false) {
                problems.append("\(schemaPath)/type: \(type) is not a type name or an array of them")
            }
        }
        if let e = s["enum"], e.arrayValue == nil { problems.append("\(schemaPath)/enum: not an array") }
        for k in ["minimum", "maximum"] {
            if let v = s[k], case .number = v {} else if s[k] != nil { problems.append("\(schemaPath)/\(k): not a number") }
        }
        for k in ["minLength", "maxLength", "minItems"] {
            if let v = s[k], case .number(let n) = v, n.isInteger {} else if s[k] != nil {
                problems.append("\(schemaPath)/\(k): not an integer")
            }
        }
        if let p = s["pattern"] {
            if let text = p.stringValue, SchemaValidator.regex(text) != nil {} else {
                problems.append("\(schemaPath)/pattern: not a regular expression")
            }
        }
        if let any = s["anyOf"] {
            if let list = any.arrayValue, !list.isEmpty {
                for (i, sub) in list.enumerated() { audit(sub, schemaPath: schemaPath + "/anyOf/\(i)", into: &problems) }
            } else {
                problems.append("\(schemaPath)/anyOf: not a non-empty array")
            }
        }
        if let not = s["not"] { audit(not, schemaPath: schemaPath + "/not", into: &problems) }
        if let r = s["required"], r.arrayValue?.allSatisfy({ $0.stringValue != nil }) != true {
            problems.append("\(schemaPath)/required: not an array of strings")
        }
        if let props = s["properties"] {
            if let o = props.objectValue {
                for (name, sub) in o { audit(sub, schemaPath: JSONPointer.appending(schemaPath + "/properties", name), into: &problems) }
            } else {
                problems.append("\(schemaPath)/properties: not an object")
            }
        }
        if let ap = s["additionalProperties"] { audit(ap, schemaPath: schemaPath + "/additionalProperties", into: &problems) }
        if let items = s["items"] { audit(items, schemaPath: schemaPath + "/items", into: &problems) }
    }

    private func check(
        _ v: JSONValue, _ schema: JSONValue, _ sp: String, _ ptr: String, _ depth: Int,
        _ location: (String) -> ValidationFailure.Location, _ out: inout [ValidationFailure]
    ) {
        func fail(_ kind: ValidationFailure.Kind, _ keyword: String, _ message: String, at p: String? = nil) {
            out.append(ValidationFailure(kind: kind, location: location(p ?? ptr), schemaPath: keyword.isEmpty ? sp : sp + "/" + keyword, message: message))
        }
        guard depth < 64 else { return fail(.schema, "", "schema nesting deeper than 64 (a $ref cycle?)") }
        let s: [String: JSONValue]
        switch schema {
        case .bool(true): return
        case .bool(false): return fail(.schema, "", "the schema `false` allows nothing")
        case .object(let o): s = o
        default: return fail(.schema, "", "a schema must be an object or a boolean, found \(schema.typeName)")
        }
        for key in s.keys.sorted() where !Self.assertions.contains(key) && !Self.annotations.contains(key) {
            fail(.schema, key, "the validator does not implement the keyword \(key)")
        }

        if let ref = s["$ref"] {
            // 2020-12: $ref applies alongside its sibling keywords.
            guard let r = ref.stringValue, let target = JSONPointer.resolve(r, in: root) else {
                return fail(.schema, "$ref", "unresolvable $ref \(ref)")
            }
            check(v, target, r, ptr, depth + 1, location, &out)
        }

        if let type = s["type"] {
            let allowed = type.stringValue.map { [$0] } ?? type.arrayValue?.compactMap(\.stringValue) ?? []
            guard !allowed.isEmpty else { return fail(.schema, "type", "malformed type \(type)") }
            let matches = allowed.contains { name in
                switch (name, v) {
                case ("null", .null), ("boolean", .bool), ("number", .number), ("string", .string), ("array", .array), ("object", .object): true
                case ("integer", .number(let n)): n.isInteger
                default: false
                }
            }
            if !matches {
                let expected = allowed.count == 1 ? allowed[0] : "one of " + allowed.joined(separator: ", ")
                // The other keywords would only add noise about a value of the wrong type.
                return fail(.type, "type", "expected \(expected), found \(v.typeName) \(v)")
            }
        }

        if let e = s["enum"] {
            guard let options = e.arrayValue else { return fail(.schema, "enum", "enum is not an array") }
            if !options.contains(v) {
                fail(.enumeration, "enum", "\(v) is not one of \(options.map(\.description).joined(separator: ", "))")
            }
        }

        if case .number(let n) = v {
            if let m = s["minimum"] {
                if case .number(let bound) = m {
                    if JSONNumber.compare(n, bound) == .orderedAscending { fail(.minimum, "minimum", "\(n) is less than the minimum \(bound)") }
                } else { fail(.schema, "minimum", "minimum is not a number") }
            }
            if let m = s["maximum"] {
                if case .number(let bound) = m {
                    if JSONNumber.compare(n, bound) == .orderedDescending { fail(.maximum, "maximum", "\(n) is greater than the maximum \(bound)") }
                } else { fail(.schema, "maximum", "maximum is not a number") }
            }
        }

        if case .string(let str) = v, let m = s["minLength"] {
            if case .number(let bound) = m, bound.isInteger {
                // JSON Schema counts code points.
                let length = str.unicodeScalars.count
                if JSONNumber.compare(.signed(Int64(length)), bound) == .orderedAscending {
                    fail(.minLength, "minLength", "\(v) has \(length) characters, fewer than the minimum \(bound)")
                }
            } else { fail(.schema, "minLength", "minLength is not an integer") }
        }

        if case .string(let str) = v, let m = s["maxLength"] {
            if case .number(let bound) = m, bound.isInteger {
                let length = str.unicodeScalars.count
                if JSONNumber.compare(.signed(Int64(length)), bound) == .orderedDescending {
                    fail(.maxLength, "maxLength", "\(v) has \(length) characters, more than the maximum \(bound)")
                }
            } else { fail(.schema, "maxLength", "maxLength is not an integer") }
        }

        if case .string(let str) = v, let p = s["pattern"] {
            if let text = p.stringValue, let regex = SchemaValidator.regex(text) {
                let range = NSRange(str.startIndex..., in: str)
                if regex.firstMatch(in: str, range: range) == nil { fail(.pattern, "pattern", "\(v) does not match \(text)") }
            } else { fail(.schema, "pattern", "pattern is not a regular expression") }
        }

        if case .array(let a) = v, let m = s["minItems"] {
            if case .number(let bound) = m, bound.isInteger {
                if JSONNumber.compare(.signed(Int64(a.count)), bound) == .orderedAscending { fail(.minItems, "minItems", "\(a.count) items, fewer than \(bound)") }
            } else { fail(.schema, "minItems", "minItems is not an integer") }
        }

        if let any = s["anyOf"] {
            guard let list = any.arrayValue, !list.isEmpty else { return fail(.schema, "anyOf", "anyOf is not a non-empty array") }
            let matches = list.enumerated().contains { i, sub in
                var inner: [ValidationFailure] = []
                check(v, sub, sp + "/anyOf/\(i)", ptr, depth + 1, location, &inner)
                return inner.isEmpty
            }
            if !matches { fail(.anyOf, "anyOf", "matches none of anyOf's \(list.count) schemas") }
        }

        if let not = s["not"] {
            var inner: [ValidationFailure] = []
            check(v, not, sp + "/not", ptr, depth + 1, location, &inner)
            if inner.isEmpty { fail(.not, "not", "matches the schema under not") }
        }

        if case .object(let o) = v {
            let properties = s["properties"]?.objectValue ?? [:]
            if s["properties"] != nil, s["properties"]?.objectValue == nil { fail(.schema, "properties", "properties is not an object") }
            if let required = s["required"] {
                guard let names = required.arrayValue?.compactMap(\.stringValue) else { return fail(.schema, "required", "required is not an array") }
                for name in names where o[name] == nil {
                    fail(.required(name), "required", "missing required property \"\(name)\"")
                }
            }
            for name in o.keys.sorted() {
                let childPtr = JSONPointer.appending(ptr, name)
                if let sub = properties[name] {
                    check(o[name]!, sub, JSONPointer.appending(sp + "/properties", name), childPtr, depth + 1, location, &out)
                } else if let ap = s["additionalProperties"] {
                    if case .bool(false) = ap {
                        fail(.additionalProperty(name), "additionalProperties", "property \"\(name)\" is not allowed (additionalProperties: false)", at: childPtr)
                    } else {
                        check(o[name]!, ap, sp + "/additionalProperties", childPtr, depth + 1, location, &out)
                    }
                }
            }
        }

        if case .array(let a) = v, let items = s["items"] {
            for (i, element) in a.enumerated() {
                check(element, items, sp + "/items", ptr + "/\(i)", depth + 1, location, &out)
            }
        }
    }
}

// MARK: The document

/// proto/openapi.json, loaded for validating the admin API's requests and responses.
struct OpenAPIDocument: Sendable, CustomStringConvertible {
    /// The whole document.
    let root: JSONValue
    private let schemas: SchemaValidator
    private let entries: [Entry]

    static let httpMethods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]

    /// One operation: its method, path template and (dereferenced) parameters.
    struct Entry: Sendable {
        var method: String
        var template: String
        var segments: [Segment]
        var operation: [String: JSONValue]
        var parameters: [Parameter]
    }

    enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
    }

    struct Parameter: Sendable {
        var name: String
        var place: String
        var required: Bool
        var schema: JSONValue
        var pointer: String
    }

    /// The repository's proto/openapi.json, located from this file.
    static func load() throws -> OpenAPIDocument {
        let url = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent() // Support/
            .deletingLastPathComponent() // BursarAdminTests/
            .deletingLastPathComponent() // Tests/
            .deletingLastPathComponent() // the package
            .appendingPathComponent("proto/openapi.json")
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw OpenAPIDocumentError("cannot read \(url.path): \(error)")
        }
        return try OpenAPIDocument(data: data)
    }

    /// A document from JSON text. Throws if it is not OpenAPI 3.1 or uses what the validator cannot check.
    init(data: Data) throws {
        let root: JSONValue
        do { root = try JSONValue.parse(data) } catch {
            throw OpenAPIDocumentError("proto/openapi.json is not JSON: \(error)")
        }
        guard let version = root["openapi"]?.stringValue, version.hasPrefix("3.1.") else {
            throw OpenAPIDocumentError("not an OpenAPI 3.1 document (openapi: \(root["openapi"]?.description ?? "absent"))")
        }
        self.root = root
        self.schemas = SchemaValidator(root: root)
        var entries: [Entry] = []
        var problems: [String] = []
        for (template, item) in (root["paths"]?.objectValue ?? [:]).sorted(by: { $0.key < $1.key }) {
            let base = "#/paths/" + JSONPointer.escape(template)
            let segments = Self.segments(of: template)
            if segments.contains(where: { if case .literal(let l) = $0 { l.contains("{") || l.contains("}") } else { false } }) {
                problems.append("\(base): only whole path segments may be templated")
            }
            let shared = Self.parameters(item["parameters"], root: root, at: base + "/parameters", problems: &problems)
            for method in Self.httpMethods {
                guard let operation = item[method]?.objectValue else { continue }
                let own = Self.parameters(operation["parameters"], root: root, at: "\(base)/\(method)/parameters", problems: &problems)
                // Operation-level parameters override path-level ones with the same name and location.
                var parameters = shared.filter { p in !own.contains { $0.name == p.name && $0.place == p.place } }
                parameters += own
                for case .parameter(let name) in segments where !parameters.contains(where: { $0.name == name && $0.place == "path" }) {
                    problems.append("\(base)/\(method): path parameter {\(name)} is not declared")
                }
                entries.append(Entry(method: method.uppercased(), template: template, segments: segments, operation: operation, parameters: parameters))
            }
        }
        self.entries = entries
        problems += Self.auditSchemas(root: root, validator: schemas)
        if !problems.isEmpty {
            throw OpenAPIDocumentError("proto/openapi.json cannot be checked:\n" + problems.joined(separator: "\n"))
        }
    }

    /// Short, so that a failed expectation does not print the whole document.
    var description: String { "OpenAPI document (\(entries.count) operations)" }

    /// Every operation of the document as (method, path template), e.g. `("GET", "/v1/orgs/{org}")`.
    var operations: [(method: String, template: String)] {
        entries.map { ($0.method, $0.template) }
    }

    /// The operation object for a method and template.
    func operation(method: String, template: String) -> [String: JSONValue]? {
        entries.first { $0.method == method.uppercased() && $0.template == template }?.operation
    }

    /// Follows a Reference Object (`{"$ref": "#/…"}`) to what it names; other values come back unchanged.
    func dereference(_ value: JSONValue) -> JSONValue? {
        var current = value
        for _ in 0..<16 {
            guard let ref = current["$ref"]?.stringValue else { return current }
            guard let next = JSONPointer.resolve(ref, in: root) else { return nil }
            current = next
        }
        return nil
    }

    // MARK: Validation

    /// Checks that `status` is documented for the operation `method path` and that `body` conforms
    /// to that response's schema (an empty body where no content is documented, e.g. 204).
    func validateResponse(method: String, path: String, status: Int, body: Data, contentType: String? = nil) throws {
        let context = "\(method.uppercased()) \(path) → \(status)"
        let entry = try match(method: method, path: path, context: context)
        let base = "#/paths/\(JSONPointer.escape(entry.template))/\(entry.method.lowercased())/responses"
        guard let declared = entry.operation["responses"]?[String(status)] else {
            let documented = (entry.operation["responses"]?.objectValue?.keys.sorted() ?? []).joined(separator: ", ")
            throw OpenAPIValidationError(context: context, failures: [
                ValidationFailure(kind: .undocumentedStatus, location: .operation, schemaPath: base,
                                  message: "status \(status) is not documented for \(entry.method) \(entry.template) (documented: \(documented))"),
            ])
        }
        guard let response = dereference(declared) else {
            throw OpenAPIValidationError(context: context, failures: [
                ValidationFailure(kind: .schema, location: .operation, schemaPath: "\(base)/\(status)", message: "unresolvable response $ref"),
            ])
        }
        let responsePath = declared["$ref"]?.stringValue ?? "\(base)/\(status)"
        var failures = checkBody(body, content: response["content"], contentPath: responsePath + "/content", contentType: contentType)
        if failures.isEmpty, status >= 400, response["content"]?["application/json"]?["schema"]?["$ref"]?.stringValue == "#/components/schemas/Error",
           let body = try? JSONValue.parse(body), let code = body["error"]?["code"]?.stringValue, let known = APIErrorCode(rawValue: code),
           known.status != status {
            failures.append(ValidationFailure(kind: .errorCodeStatus, location: .body("/error/code"), schemaPath: responsePath,
                                              message: "code \"\(code)\" belongs to status \(known.status), not \(status)"))
        }
        if !failures.isEmpty { throw OpenAPIValidationError(context: context, failures: failures) }
    }

    /// Checks a request: the path's parameters and query against their schemas, and `body` against
    /// the operation's request body (nil or empty when it has none).
    func validateRequest(method: String, path: String, body: Data?) throws {
        let context = "\(method.uppercased()) \(path) (request)"
        let entry = try match(method: method, path: path, context: context)
        var failures: [ValidationFailure] = []

        // Path parameters.
        let concrete = Self.split(path).segments
        for (segment, raw) in zip(entry.segments, concrete) {
            guard case .parameter(let name) = segment, let p = entry.parameters.first(where: { $0.name == name && $0.place == "path" }) else { continue }
            failures += check(parameter: p, raw: raw.removingPercentEncoding ?? raw)
        }
        // Query parameters.
        let query = Self.split(path).query
        for (name, raw) in query {
            guard let p = entry.parameters.first(where: { $0.name == name && $0.place == "query" }) else {
                failures.append(ValidationFailure(kind: .unknownParameter, location: .parameter(in: "query", name: name), schemaPath: "",
                                                  message: "\(entry.method) \(entry.template) declares no query parameter \(name)"))
                continue
            }
            failures += check(parameter: p, raw: raw)
        }
        for p in entry.parameters where p.place == "query" && p.required && !query.contains(where: { $0.0 == p.name }) {
            failures.append(ValidationFailure(kind: .missing, location: .parameter(in: "query", name: p.name), schemaPath: p.pointer, message: "required query parameter is absent"))
        }

        // Body.
        var base = "#/paths/\(JSONPointer.escape(entry.template))/\(entry.method.lowercased())/requestBody"
        if let declared = entry.operation["requestBody"] {
            guard let requestBody = dereference(declared) else {
                throw OpenAPIValidationError(context: context, failures: [
                    ValidationFailure(kind: .schema, location: .operation, schemaPath: base, message: "unresolvable requestBody $ref"),
                ])
            }
            base = declared["$ref"]?.stringValue ?? base
            // An optional request body may be absent.
            if !(body ?? Data()).isEmpty || requestBody["required"] == .bool(true) {
                failures += checkBody(body ?? Data(), content: requestBody["content"], contentPath: base + "/content")
            }
        } else if let body, !body.isEmpty {
            failures.append(ValidationFailure(kind: .unexpectedBody, location: .operation, schemaPath: base,
                                              message: "\(entry.method) \(entry.template) takes no request body, got \(body.count) bytes"))
        }
        if !failures.isEmpty { throw OpenAPIValidationError(context: context, failures: failures) }
    }

    /// Validates a JSON body against `#/components/schemas/<name>`.
    func validate(_ body: Data, againstSchemaNamed name: String) throws {
        let context = "a \(name) body"
        guard root["components"]?["schemas"]?[name] != nil else { throw OpenAPIDocumentError("no schema #/components/schemas/\(name)") }
        let value: JSONValue
        do { value = try JSONValue.parse(body) } catch {
            throw OpenAPIValidationError(context: context, failures: [
                ValidationFailure(kind: .notJSON, location: .body(""), schemaPath: "", message: "the body is not JSON: \(error)"),
            ])
        }
        let failures = failures(of: value, againstSchemaNamed: name)
        if !failures.isEmpty { throw OpenAPIValidationError(context: context, failures: failures) }
    }

    /// The failures of a parsed value against `#/components/schemas/<name>` (empty: it conforms).
    func failures(of value: JSONValue, againstSchemaNamed name: String) -> [ValidationFailure] {
        schemas.validate(value, schema: .object(["$ref": .string("#/components/schemas/\(name)")]), schemaPath: "", pointer: "")
    }

    // MARK: Internals

    /// `contentPath` points at the `content` object (for messages).
    private func checkBody(_ body: Data, content: JSONValue?, contentPath: String, contentType: String? = nil) -> [ValidationFailure] {
        let schemaPath = contentPath + "/application~1json/schema"
        guard let content else {
            if body.isEmpty { return [] }
            let preview = String(decoding: body.prefix(80), as: UTF8.self)
            return [ValidationFailure(kind: .unexpectedBody, location: .body(""), schemaPath: contentPath,
                                      message: "no content is documented, so the body must be empty; got \(body.count) bytes: \(preview)")]
        }
        // A text answer (CSV) in a media type the operation documents as a string: its form is
        // the operation's tests' business.
        if let contentType, !contentType.hasPrefix("application/json") {
            let media = String(contentType.prefix { $0 != ";" })
            guard content[media]?["schema"]?["type"]?.stringValue == "string" else {
                return [ValidationFailure(kind: .schema, location: .operation, schemaPath: contentPath,
                                          message: "the answer's media type \(media) is not documented as a string")]
            }
            return []
        }
        guard let schema = content["application/json"]?["schema"] else {
            return [ValidationFailure(kind: .schema, location: .operation, schemaPath: contentPath,
                                      message: "no application/json schema is documented")]
        }
        if body.isEmpty {
            return [ValidationFailure(kind: .missing, location: .body(""), schemaPath: schemaPath, message: "a JSON body is documented but the body is empty")]
        }
        let value: JSONValue
        do { value = try JSONValue.parse(body) } catch {
            return [ValidationFailure(kind: .notJSON, location: .body(""), schemaPath: schemaPath, message: "the body is not JSON: \(String(decoding: body.prefix(80), as: UTF8.self))")]
        }
        return schemas.validate(value, schema: schema, schemaPath: schemaPath, pointer: "")
    }

    private func check(parameter p: Parameter, raw: String) -> [ValidationFailure] {
        // A parameter is text; read it as the number its schema asks for when it looks like one.
        let types = p.schema["type"].map { $0.stringValue.map { [$0] } ?? $0.arrayValue?.compactMap(\.stringValue) ?? [] } ?? []
        var value = JSONValue.string(raw)
        if types.contains("integer") || types.contains("number") {
            if let i = Int64(raw) { value = .number(.signed(i)) } else if let u = UInt64(raw) { value = .number(.unsigned(u)) } else if types.contains("number"), let d = Double(raw), d.isFinite { value = .number(.real(d)) }
        }
        return schemas.validate(value, schema: p.schema, schemaPath: p.pointer + "/schema", pointer: "") { _ in .parameter(in: p.place, name: p.name) }
    }

    private func match(method: String, path: String, context: String) throws -> Entry {
        guard path.hasPrefix("/") else {
            throw OpenAPIValidationError(context: context, failures: [ValidationFailure(kind: .unknownPath, location: .operation, schemaPath: "#/paths", message: "\(path) is not an absolute path")])
        }
        let concrete = Self.split(path).segments
        let candidates = entries.filter { entry in
            entry.segments.count == concrete.count && zip(entry.segments, concrete).allSatisfy { segment, raw in
                switch segment {
                case .literal(let l): l == raw
                case .parameter: !raw.isEmpty
                }
            }
        }
        guard !candidates.isEmpty else {
            throw OpenAPIValidationError(context: context, failures: [ValidationFailure(kind: .unknownPath, location: .operation, schemaPath: "#/paths", message: "no path template matches \(path)")])
        }
        // As OpenAPI says: a concrete segment wins over a templated one (compared left to right).
        func literalMask(_ e: Entry) -> [Bool] { e.segments.map { if case .literal = $0 { true } else { false } } }
        let best = candidates.map(literalMask).max { a, b in a.lexicographicallyPrecedes(b) { !$0 && $1 } }!
        let template = candidates.first { literalMask($0) == best }!.template
        guard let entry = candidates.first(where: { $0.template == template && $0.method == method.uppercased() }) else {
            let methods = candidates.filter { $0.template == template }.map(\.method).joined(separator: ", ")
            throw OpenAPIValidationError(context: context, failures: [
                ValidationFailure(kind: .unknownMethod, location: .operation, schemaPath: "#/paths/\(JSONPointer.escape(template))",
                                  message: "\(template) has no \(method.uppercased()) operation (it has \(methods))"),
            ])
        }
        return entry
    }

    private static func segments(of template: String) -> [Segment] {
        split(template).segments.map { s in
            s.count > 2 && s.hasPrefix("{") && s.hasSuffix("}") && !s.dropFirst().dropLast().contains(where: { $0 == "{" || $0 == "}" })
                ? .parameter(String(s.dropFirst().dropLast())) : .literal(s)
        }
    }

    /// `/a/b?x=1&y` → segments `[a, b]` (empty ones kept, so a trailing slash does not match) and the query pairs.
    private static func split(_ path: String) -> (segments: [String], query: [(String, String)]) {
        let parts = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let segments = parts[0].dropFirst().split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        var query: [(String, String)] = []
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map { String($0).removingPercentEncoding ?? String($0) }
                query.append((kv[0], kv.count > 1 ? kv[1] : ""))
            }
        }
        return (segments, query)
    }

    private static func parameters(_ list: JSONValue?, root: JSONValue, at pointer: String, problems: inout [String]) -> [Parameter] {
        guard let list else { return [] }
        guard let items = list.arrayValue else {
            problems.append("\(pointer): not an array")
            return []
        }
        var result: [Parameter] = []
        for (i, item) in items.enumerated() {
            var p = item
            var location = "\(pointer)/\(i)"
            if let ref = item["$ref"]?.stringValue {
                guard let target = JSONPointer.resolve(ref, in: root) else {
                    problems.append("\(location): unresolvable $ref \(ref)")
                    continue
                }
                p = target
                location = ref
            }
            guard let name = p["name"]?.stringValue, let place = p["in"]?.stringValue, let schema = p["schema"] else {
                problems.append("\(location): a parameter needs name, in and schema")
                continue
            }
            guard place == "path" || place == "query" else {
                problems.append("\(location): \(place) parameters are not supported")
                continue
            }
            if place == "path", p["required"] != .bool(true) { problems.append("\(location): path parameters must be required") }
            result.append(Parameter(name: name, place: place, required: p["required"] == .bool(true), schema: schema, pointer: location))
        }
        return result
    }

    /// Audits every schema of the document: the component schemas, and the ones inside parameters, request bodies and responses.
    private static func auditSchemas(root: JSONValue, validator: SchemaValidator) -> [String] {
        var problems: [String] = []
        for (name, schema) in root["components"]?["schemas"]?.objectValue ?? [:] {
            validator.audit(schema, schemaPath: "#/components/schemas/" + JSONPointer.escape(name), into: &problems)
        }
        for (name, parameter) in root["components"]?["parameters"]?.objectValue ?? [:] {
            if let schema = parameter["schema"] { validator.audit(schema, schemaPath: "#/components/parameters/\(JSONPointer.escape(name))/schema", into: &problems) }
        }
        func auditContent(_ content: JSONValue?, at pointer: String) {
            for (type, media) in content?.objectValue ?? [:] {
                guard type == "application/json" else {
                    // A text answer (text/csv) is allowed beside JSON as a plain string.
                    if type.hasPrefix("text/"), media["schema"]?.objectValue == ["type": .string("string")] { continue }
                    problems.append("\(pointer)/\(JSONPointer.escape(type)): only application/json content (and text as a string) is supported")
                    continue
                }
                if let schema = media["schema"] { validator.audit(schema, schemaPath: pointer + "/application~1json/schema", into: &problems) }
            }
        }
        for (name, response) in root["components"]?["responses"]?.objectValue ?? [:] {
            auditContent(response["content"], at: "#/components/responses/\(JSONPointer.escape(name))/content")
        }
        for (template, item) in root["paths"]?.objectValue ?? [:] {
            for method in httpMethods {
                guard let operation = item[method] else { continue }
                let base = "#/paths/\(JSONPointer.escape(template))/\(method)"
                if let body = operation["requestBody"] { auditContent(body["content"], at: base + "/requestBody/content") }
                for (status, response) in operation["responses"]?.objectValue ?? [:] {
                    guard status.count == 3, Int(status) != nil else {
                        problems.append("\(base)/responses/\(status): only exact status codes are supported")
                        continue
                    }
                    if let ref = response["$ref"]?.stringValue, JSONPointer.resolve(ref, in: root) == nil {
                        problems.append("\(base)/responses/\(status): unresolvable $ref \(ref)")
                    }
                    auditContent(response["content"], at: "\(base)/responses/\(status)/content")
                }
            }
        }
        return problems.sorted()
    }
}
