import BursarAPI
import BursarStore
import Foundation
import HTTPTypes
import Testing

// The rules proto/openapi.json states for requests and the server's, held together: each case is a
// mismatch schemathesis's positive_data_acceptance or negative_data_rejection found (deploy/api-fuzz.sh),
// with the exact status and error code the server now answers.

/// The document's `pattern` and length bounds of one string schema, as a predicate.
private func documented(_ schema: JSONValue?) throws -> (String) -> Bool {
    let schema = try #require(schema)
    let regex = try schema["pattern"]?.stringValue.map { try #require(SchemaValidator.regex($0)) }
    func bound(_ key: String) -> Int? {
        guard case .number(.signed(let n))? = schema[key] else { return nil }
        return Int(n)
    }
    let min = bound("minLength") ?? 0, max = bound("maxLength") ?? Int.max
    return { s in
        let n = s.unicodeScalars.count
        guard n >= min, n <= max else { return false }
        return regex.map { $0.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil } ?? true
    }
}

private var schemas: [String: JSONValue] { AdminHarness.document.root["components"]?["schemas"]?.objectValue ?? [:] }

@Suite("Admin API: request rules, document and server alike")
struct RequestRulesTests {
    // MARK: Pure: the document's patterns against the server's checks

    static let nameSamples = [
        "acme", "a", " x ", "Prod 2", "é", "e\u{301}", "日本語", String(repeating: "a", count: 128), String(repeating: "a", count: 129),
        String(repeating: "e\u{301}", count: 64), String(repeating: "e\u{301}", count: 65), "", " ", "   ", "\u{A0}", "\u{3000}", "\u{2003}x",
        "tab\there", "nl\n", "\u{7F}", "\u{85}x", "x\u{9F}", "👩‍👩‍👧", String(repeating: "👩‍👩‍👧", count: 26), String(repeating: "👩‍👩‍👧", count: 27),
    ]

    @Test("names: the document's pattern and maxLength (code points) accept exactly what the server's check accepts")
    func names() throws {
        let doc = try documented(schemas["CreateProjectRequest"]?["properties"]?["name"])
        for s in Self.nameSamples {
            let server = (try? MetadataStore.checkName(s, "name")) != nil
            #expect(doc(s) == server, "\(s.unicodeScalars.map { String($0.value, radix: 16) }): document \(doc(s)), server \(server)")
        }
        // 64 graphemes of two code points each are 128 code points: the limit, as JSON Schema counts.
        #expect(throws: Never.self) { try MetadataStore.checkName(String(repeating: "e\u{301}", count: 64), "name") }
        #expect(throws: StoreError.self) { try MetadataStore.checkName(String(repeating: "e\u{301}", count: 65), "name") }
    }

    @Test("model names: visible ASCII, 1…64, so bytes and code points agree; document and server alike")
    func models() throws {
        let doc = try documented(schemas["CreateKeyRequest"]?["properties"]?["models"]?["items"])
        let path = try documented(AdminHarness.document.root["components"]?["parameters"]?["modelName"]?["schema"])
        for s in ["gpt-4o", "a", "anthropic.claude-v2:1", "models/x", String(repeating: "m", count: 64), String(repeating: "m", count: 65),
                  "", "a b", "modèle", "é", "\u{7F}", "x\u{1F}y", "~!"] {
            let server = (try? MetadataStore.checkModel(s, "model")) != nil
            #expect(doc(s) == server && path(s) == server, "\(s): document \(doc(s)), server \(server)")
        }
    }

    @Test("e-mail addresses and MCP URLs: the document's patterns are the server's checks")
    func emailsAndURLs() throws {
        let email = try documented(schemas["InviteRequest"]?["properties"]?["email"])
        for s in ["ann@acme.test", "0@0", "a@b@c", "@x", "x@", "a b@c", "a@b\u{A0}", "\tann@acme.test", "A@B.TEST", "ü@ü",
                  String(repeating: "a", count: 250) + "@b.c", String(repeating: "a", count: 251) + "@b.c"] {
            let server = (try? MetadataStore.normalizedEmail(s)) != nil
            #expect(email(s) == server, "\(s): document \(email(s)), server \(server)")
        }
        let url = try documented(schemas["McpServerRequest"]?["properties"]?["url"])
        for s in ["https://mcp.acme.test/sse", "http://x", "WSS://x:1/y?z", "ws://[::1]:80", "ftp://x", "http:///x", "http://?x", "http://#",
                  "http://a b", "http://a\u{85}", "https://", "mailto:a@b",
                  // Found by schemathesis: the scheme's "/" and an emoji modifier are one Character.
                  "Http://\u{1F3FB}\u{7DB5}", "http://\u{301}x", "HTTP://\u{1F3FB}", "http://" + String(repeating: "a", count: 2041), "http://" + String(repeating: "a", count: 2042)] {
            let server = (try? MetadataStore.validURL(s)) != nil
            #expect(url(s) == server, "\(s.prefix(40)): document \(url(s)), server \(server)")
        }
    }

    @Test("every request body's wire fields are its schema's properties, nullable exactly where the schema allows null")
    func wireFields() throws {
        let bodies: [(String, WireFields)] = [
            ("BootstrapRequest", BootstrapRequest.wireFields), ("CreateOrgRequest", CreateOrgRequest.wireFields),
            ("CreateGatewayCredentialRequest", CreateGatewayCredentialRequest.wireFields),
            ("AcceptInvitationRequest", AcceptInvitationRequest.wireFields),
            ("InviteRequest", InviteRequest.wireFields), ("MemberRoleRequest", MemberRoleRequest.wireFields),
            ("CreateProjectRequest", CreateProjectRequest.wireFields), ("UpdateProjectRequest", UpdateProjectRequest.wireFields),
            ("GrantBody", GrantBody.wireFields), ("AddProjectMemberRequest", AddProjectMemberRequest.wireFields),
            ("UpdateProjectMemberRequest", UpdateProjectMemberRequest.wireFields), ("CreateKeyRequest", CreateKeyRequest.wireFields),
            ("UpdateKeyRequest", UpdateKeyRequest.wireFields), ("AddCreditsRequest", AddCreditsRequest.wireFields),
            ("CreateByokRequest", CreateByokRequest.wireFields), ("PutVirtualModelRequest", PutVirtualModelRequest.wireFields),
            ("PutPriceRequest", PutPriceRequest.wireFields),
            ("McpServerRequest", McpServerRequest.wireFields), ("PromptRequest", PromptRequest.wireFields),
            ("RotateTokenRequest", RotateTokenRequest.wireFields),
        ]
        #expect(Set(bodies.map(\.0)) == Set(schemas.keys.filter { $0.hasSuffix("Request") }).union(["GrantBody"]))
        for (name, fields) in bodies {
            let properties = try #require(schemas[name]?["properties"]?.objectValue, "\(name)")
            #expect(Set(fields.fields.keys) == Set(properties.keys), "\(name)")
            for (key, sub) in properties {
                let nullable = sub["type"]?.arrayValue?.contains(.string("null")) ?? false
                #expect(fields.fields[key]?.nullable == nullable, "\(name).\(key)")
                if let ref = sub["$ref"]?.stringValue {
                    #expect(fields.fields[key]?.object == GrantBody.wireFields && ref.hasSuffix("/GrantBody"), "\(name).\(key)")
                }
            }
        }
    }

    @Test("decodeRequest refuses unknown keys (nested too) and null where not nullable; accepts integral numbers written as 846.0 or 8.46e2")
    func decodeRequest() throws {
        func refusal<T: APIRequestBody>(_ type: T.Type, _ json: String) -> String? {
            do {
                _ = try APIJSON.decodeRequest(type, from: Data(json.utf8))
                return nil
            } catch let e as RequestBodyError {
                return e.message
            } catch {
                return "decoding: \(error)"
            }
        }
        #expect(refusal(CreateKeyRequest.self, #"{"name":"k","nmae":"x"}"#)?.hasPrefix("unknown field nmae") == true)
        #expect(refusal(CreateKeyRequest.self, #"{"name":"k","rpm":null}"#) == "rpm must not be null (leave it out instead)")
        #expect(refusal(UpdateKeyRequest.self, #"{"rpm":null,"expires_at_ms":null,"max_spend_nusd":null}"#) == nil)
        #expect(refusal(UpdateKeyRequest.self, #"{"name":null}"#) == "name must not be null (leave it out instead)")
        #expect(refusal(AddProjectMemberRequest.self, #"{"user_id":1,"grant":{"rpm":5,"burst":1}}"#)?.hasPrefix("unknown field grant.burst") == true)
        #expect(refusal(AddProjectMemberRequest.self, #"{"user_id":1,"grant":{"rpm":null}}"#) == "grant.rpm must not be null (leave it out instead)")
        // JSON Schema counts 846.0 as an integer; so does the server. 846.5 is not one.
        for json in [#"{"name":"k","rpm":846.0}"#, #"{"name":"k","rpm":8.46e2}"#, #"{"name":"k","rpm":846}"#] {
            #expect(try APIJSON.decodeRequest(CreateKeyRequest.self, from: Data(json.utf8)).rpm == 846, "\(json)")
        }
        #expect(refusal(CreateKeyRequest.self, #"{"name":"k","rpm":846.5}"#)?.hasPrefix("decoding") == true)
        #expect(try APIJSON.decodeRequest(CreateKeyRequest.self, from: Data(#"{"name":"k","user_id":18446744073709551615}"#.utf8)).userId == .max)
        #expect(refusal(CreateKeyRequest.self, #"{"name":"k","user_id":18446744073709551616}"#)?.hasPrefix("decoding") == true)
    }

    // MARK: Over HTTP: status and code for each rule

    @Test("path ids: up to 18446744073709551615 is an id (404 when there is none), one more is 400 invalid")
    func pathIds() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            let max = try await h.api.get("/v1/orgs/\(w.org)/projects/18446744073709551615", w.owner.token)
            #expect(max.status == 404 && max.code == "not_found", "\(max)")
            let above = try await h.api.get("/v1/orgs/\(w.org)/projects/18446744073709551616", w.owner.token)
            #expect(above.status == 400 && above.code == "invalid", "\(above)")
        }
    }

    @Test("path names: a model or prompt name that breaks the document's pattern is 400 invalid, never 404; a valid unknown one is 404")
    func pathNames() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            // Percent-encoded as a client sends them: a space, a tab, only spaces, too long.
            let model65 = String(repeating: "m", count: 65)
            let prompt129 = String(repeating: "p", count: 129)
            let cases: [(HTTPRequest.Method, String)] = [
                (.get, "virtual-models/a%20b"), (.get, "virtual-models/a%09b"), (.get, "virtual-models/%20%20"),
                (.get, "virtual-models/\(model65)"), (.delete, "virtual-models/a%20b"), (.delete, "prices/a%09b"),
                (.delete, "prices/\(model65)"), (.delete, "prices/%C3%A9"),
                (.get, "prompts/a%09b"), (.get, "prompts/%20%20%20"), (.get, "prompts/\(prompt129)"), (.delete, "prompts/a%0Ab"),
            ]
            for (method, path) in cases {
                let r = try await h.api.call(method, "/v1/orgs/\(w.org)/\(path)", token: w.owner.token)
                #expect(r.status == 400 && r.code == "invalid", "\(method) \(path): \(r)")
            }
            // Within the pattern: 404 (there is none), including a prompt name with a space.
            for (method, path) in [(HTTPRequest.Method.get, "virtual-models/\(String(repeating: "m", count: 64))"), (.get, "prompts/a%20b"),
                                   (.get, "prompts/\(String(repeating: "p", count: 128))"), (.delete, "prices/gpt-none")] {
                let r = try await h.api.call(method, "/v1/orgs/\(w.org)/\(path)", token: w.owner.token)
                #expect(r.status == 404 && r.code == "not_found", "\(method) \(path): \(r)")
            }
            // Authentication still comes first.
            let anonymous = try await h.api.call(.get, "/v1/orgs/\(w.org)/virtual-models/a%20b", token: nil)
            #expect(anonymous.status == 401, "\(anonymous)")
        }
    }

    @Test("path names holding '%' and hex: a name is the percent-decoded segment, once; 'a%A5b' and 'a%41b' are names of their own (api-fuzz cannot carry them through its links)")
    func percentInNames() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            let o = "/v1/orgs/\(w.org)"
            // '%' is visible ASCII: a model name may hold it, sent as %25.
            #expect(try await h.api.call(.put, "\(o)/virtual-models/a%25A5b", token: w.owner.token, json: #"{"targets":["gpt-mini"]}"#).status == 200)
            #expect(try await h.api.call(.put, "\(o)/prices/p%2541", token: w.owner.token,
                                         json: #"{"input_per_million_nusd":1,"output_per_million_nusd":2}"#).status == 200)
            let prompt = try await h.api.call(.post, "\(o)/prompts", token: w.owner.token, json: #"{"name":"q%41","text":"t"}"#)
            #expect(prompt.status == 201, "\(prompt)")
            let vm = try await h.api.get("\(o)/virtual-models/a%25A5b", w.owner.token)
            #expect(vm.status == 200 && String(decoding: vm.body, as: UTF8.self).contains(#""name":"a%A5b""#), "\(vm)")
            #expect(try await h.api.get("\(o)/prompts/q%2541", w.owner.token).status == 200)
            // Decoded once, not twice: the names their escapes would spell are other names.
            #expect(try await h.api.get("\(o)/prompts/qA", w.owner.token).status == 404)
            #expect(try await h.api.call(.delete, "\(o)/prices/pA", token: w.owner.token).status == 404)
            // An escape that is not UTF-8 is not a name.
            #expect(try await h.api.get("\(o)/virtual-models/a%A5b", w.owner.token).status == 400)
            #expect(try await h.api.call(.delete, "\(o)/prices/p%2541", token: w.owner.token).status == 204)
        }
    }

    @Test("bodies: each schema rule the server checks answers 400 invalid; schema-valid bodies refused by state answer 409 conflict")
    func bodies() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            let o = "/v1/orgs/\(w.org)"
            let t = w.owner.token
            func expect(_ method: HTTPRequest.Method, _ path: String, _ json: String?, _ status: Int, _ code: String?, sourceLocation: SourceLocation = #_sourceLocation) async throws {
                let r = try await h.api.call(method, path, token: t, json: json)
                #expect(r.status == status && (code == nil || r.code == code), "\(method) \(path) \(json) → \(r)", sourceLocation: sourceLocation)
            }
            // Unknown fields and misplaced nulls.
            try await expect(.post, "\(o)/projects", #"{"name":"p1","colour":"red"}"#, 400, "invalid")
            try await expect(.post, "\(o)/projects/\(w.p)/keys", #"{"name":"k","rpm":null}"#, 400, "invalid")
            try await expect(.post, "\(o)/projects/\(w.q)/members", #"{"user_id":\#(w.spare),"grant":{"rpm":5,"x":1}}"#, 400, "invalid")
            // Integral floats are integers.
            try await expect(.post, "\(o)/projects", #"{"name":"p2","rpm":846.0}"#, 201, nil)
            try await expect(.post, "\(o)/projects", #"{"name":"p3","rpm":846.5}"#, 400, "invalid")
            // Ranges the document now states.
            try await expect(.post, "\(o)/projects", #"{"name":"p4","rpm":0}"#, 400, "invalid")
            try await expect(.post, "\(o)/projects", #"{"name":"p5","rpm":100000000,"monthly_budget_nusd":9007199254740991}"#, 201, nil)
            try await expect(.post, "\(o)/projects", #"{"name":"p6","rpm":100000001}"#, 400, "invalid")
            try await expect(.post, "\(o)/projects", #"{"name":"p7","monthly_budget_nusd":9007199254740992}"#, 400, "invalid")
            try await expect(.post, "\(o)/projects/\(w.q)/keys", #"{"name":"k","expires_in_days":3650}"#, 201, nil)
            try await expect(.post, "\(o)/projects/\(w.q)/keys", #"{"name":"k","expires_in_days":3651}"#, 400, "invalid")
            try await expect(.post, "\(o)/projects/\(w.q)/keys", #"{"name":"k","expires_at_ms":-1}"#, 400, "invalid")
            try await expect(.post, "\(o)/projects/\(w.q)/keys", #"{"name":"k","expires_at_ms":1000}"#, 409, "conflict")
            try await expect(.post, "\(o)/projects/\(w.q)/keys", #"{"name":"k","expires_at_ms":9000000000000,"expires_in_days":1}"#, 400, "invalid")
            // Names count code points; blank and control characters are refused.
            let graphemes64 = String(repeating: "e\u{301}", count: 64), graphemes65 = String(repeating: "e\u{301}", count: 65)
            try await expect(.post, "\(o)/projects", #"{"name":"\#(graphemes64)"}"#, 201, nil)
            try await expect(.post, "\(o)/projects", #"{"name":"\#(graphemes65)"}"#, 400, "invalid")
            try await expect(.post, "\(o)/projects", #"{"name":"\u3000"}"#, 400, "invalid")
            // Model names: visible ASCII.
            try await expect(.post, "\(o)/projects", #"{"name":"p8","models":["modèle"]}"#, 400, "invalid")
            try await expect(.post, "\(o)/projects", #"{"name":"p9","models":["a b"]}"#, 400, "invalid")
            try await expect(.put, "\(o)/virtual-models/fast", #"{"targets":[]}"#, 400, "invalid")
            try await expect(.put, "\(o)/virtual-models/fast", #"{"targets":["fast"]}"#, 409, "conflict")
            // Who a project member is: user_id or email.
            try await expect(.post, "\(o)/projects/\(w.q)/members", #"{"role":"member"}"#, 400, "invalid")
            try await expect(.post, "\(o)/projects/\(w.q)/members", #"{"user_id":\#(w.spare),"email":"not an email"}"#, 400, "invalid")
            // E-mail, URL, secret and prompt text lengths as documented.
            try await expect(.post, "\(o)/members", #"{"email":"a@b@c"}"#, 400, "invalid")
            try await expect(.post, "\(o)/mcp-servers", #"{"name":"m","url":"ftp://x"}"#, 400, "invalid")
            try await expect(.post, "\(o)/mcp-servers", #"{"name":"m","url":"HTTP://x"}"#, 201, nil)
            try await expect(.post, "\(o)/byok", #"{"provider":"p","name":"n","secret":"ééééééé"}"#, 400, "invalid")
            // Eight code points, four grapheme clusters: long enough, as JSON Schema counts.
            try await expect(.post, "\(o)/byok", #"{"provider":"p","name":"n","secret":"e\u0301e\u0301e\u0301e\u0301"}"#, 201, nil)
            let longText = String(repeating: "é", count: 65_536)
            try await expect(.post, "\(o)/prompts", #"{"name":"long","text":"\#(longText)"}"#, 201, nil)
            try await expect(.post, "\(o)/prompts", #"{"name":"longer","text":"\#(longText)x"}"#, 400, "invalid")
            try await expect(.post, "\(o)/prompts/long/versions", #"{"name":" ","text":"v2"}"#, 400, "invalid")
            // State: an archived project, a revoked key.
            try await expect(.patch, "\(o)/projects/\(w.q)", #"{"status":"archived"}"#, 200, nil)
            try await expect(.post, "\(o)/projects/\(w.q)/keys", #"{"name":"k"}"#, 409, "conflict")
            try await expect(.post, "\(o)/keys/\(w.tessKey)/revoke", nil, 200, nil)
            let rotate = try await h.api.call(.post, "\(o)/keys/\(w.tessKey)/rotate", token: t)
            #expect(rotate.status == 409 && rotate.code == "conflict", "\(rotate)")
        }
    }
}
