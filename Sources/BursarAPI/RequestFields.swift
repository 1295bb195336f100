public import Foundation

// What Codable's synthesized decoding lets through and the document (proto/openapi.json) does not:
// keys a body does not have (every request schema is `additionalProperties: false`) and `null`
// where a field is not nullable (an absent optional and an explicit `null` decode alike). Each
// request body lists its wire fields once; `APIJSON.decodeRequest` checks the raw JSON against
// them before decoding. OpenAPIDocumentTests holds each list to the document's schema.

/// The fields of a JSON request object as they appear on the wire (snake_case).
public struct WireFields: Sendable, Hashable {
    /// One field: whether `null` is allowed, and the fields of its value when it is an object.
    public struct Field: Sendable, Hashable {
        /// `null` is a value of this field (PATCH: it removes a limit).
        public var nullable: Bool
        /// The fields of the nested object, when the value is one.
        public var object: WireFields?
        /// A field.
        public init(nullable: Bool = false, object: WireFields? = nil) {
            self.nullable = nullable
            self.object = object
        }
    }

    /// Every field by wire name.
    public var fields: [String: Field]

    /// Fields by name; `nullable` lists those that take `null`, `objects` those holding an object.
    public init(_ names: [String], nullable: Set<String> = [], objects: [String: WireFields] = [:]) {
        fields = Dictionary(uniqueKeysWithValues: names.map { ($0, Field(nullable: nullable.contains($0), object: objects[$0])) })
    }
}

/// A request body the admin API decodes strictly: unknown keys and misplaced `null`s are refused.
public protocol APIRequestBody: Decodable {
    /// Its wire fields.
    static var wireFields: WireFields { get }
}

/// A request body refused before decoding: an unknown key or a `null` where none is allowed.
public struct RequestBodyError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong, naming the field (`grant.rpm`).
    public var message: String
    /// An error.
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension APIJSON {
    /// Decodes a request body after checking its keys and `null`s against `T.wireFields`.
    /// Throws `RequestBodyError`, or the decoder's `DecodingError`.
    public static func decodeRequest<T: APIRequestBody>(_ type: T.Type, from data: Data) throws -> T {
        // Malformed JSON and non-objects are left to the decoder, which names the problem.
        if let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) as? [String: Any] {
            try check(object, T.wireFields, path: "")
        }
        return try decoder().decode(T.self, from: data)
    }

    private static func check(_ object: [String: Any], _ fields: WireFields, path: String) throws {
        for key in object.keys.sorted() {
            let name = path.isEmpty ? key : path + "." + key
            guard let field = fields.fields[key] else {
                throw RequestBodyError("unknown field \(name); the body has only \(fields.fields.keys.sorted().joined(separator: ", "))")
            }
            let value = object[key]!
            if value is NSNull {
                guard field.nullable else { throw RequestBodyError("\(name) must not be null (leave it out instead)") }
            } else if let nested = field.object, let child = value as? [String: Any] {
                try check(child, nested, path: name)
            }
        }
    }
}

// MARK: Every request body's fields (proto/openapi.json, `…Request` and `GrantBody`)

extension BootstrapRequest: APIRequestBody {
    public static let wireFields = WireFields(["org", "owner_email", "owner_name"])
}

extension CreateOrgRequest: APIRequestBody {
    public static let wireFields = WireFields(["name", "owner_email", "owner_name"])
}

extension CreateGatewayCredentialRequest: APIRequestBody {
    public static let wireFields = WireFields(["name", "organizations"])
}

extension InviteRequest: APIRequestBody {
    public static let wireFields = WireFields(["email", "name", "role"])
}

extension AcceptInvitationRequest: APIRequestBody {
    public static let wireFields = WireFields(["token"])
}

extension MemberRoleRequest: APIRequestBody {
    public static let wireFields = WireFields(["role"])
}

extension CreateProjectRequest: APIRequestBody {
    public static let wireFields = WireFields(["name", "models", "rpm", "tpm", "monthly_budget_nusd"])
}

extension UpdateProjectRequest: APIRequestBody {
    public static let wireFields = WireFields(
        ["name", "status", "models", "rpm", "tpm", "monthly_budget_nusd"], nullable: ["rpm", "tpm", "monthly_budget_nusd"])
}

extension GrantBody: APIRequestBody {
    public static let wireFields = WireFields(["models", "max_key_spend_nusd", "rpm", "tpm"])
}

extension AddProjectMemberRequest: APIRequestBody {
    public static let wireFields = WireFields(["user_id", "email", "role", "grant"], objects: ["grant": GrantBody.wireFields])
}

extension UpdateProjectMemberRequest: APIRequestBody {
    public static let wireFields = WireFields(["role", "grant"], objects: ["grant": GrantBody.wireFields])
}

extension CreateKeyRequest: APIRequestBody {
    public static let wireFields = WireFields([
        "name", "user_id", "max_spend_nusd", "period", "rpm", "tpm", "models", "expires_at_ms", "expires_in_days", "content_logging_disabled",
    ])
}

extension UpdateKeyRequest: APIRequestBody {
    public static let wireFields = WireFields(
        ["name", "max_spend_nusd", "period", "rpm", "tpm", "models", "expires_at_ms", "expires_in_days", "content_logging_disabled"],
        nullable: ["max_spend_nusd", "rpm", "tpm", "expires_at_ms"])
}

extension RotateTokenRequest: APIRequestBody {
    public static let wireFields = WireFields(["expires_in_days"])
}

extension AddCreditsRequest: APIRequestBody {
    public static let wireFields = WireFields(["amount_nusd", "metered"])
}

extension CreateByokRequest: APIRequestBody {
    public static let wireFields = WireFields(["provider", "name", "secret"])
}

extension PutVirtualModelRequest: APIRequestBody {
    public static let wireFields = WireFields(["targets"])
}

extension PutPriceRequest: APIRequestBody {
    public static let wireFields = WireFields(["input_per_million_nusd", "output_per_million_nusd", "cached_input_per_million_nusd"])
}

extension McpServerRequest: APIRequestBody {
    public static let wireFields = WireFields(["name", "url"])
}

extension PromptRequest: APIRequestBody {
    public static let wireFields = WireFields(["name", "text"])
}
