import BursarAPI
import BursarStore
import Foundation
import HTTPTypes
import Testing

/// The audit log belongs to its organization: outsiders' refusals are not written into it, an
/// Owner pages through all of it with a cursor and filters, and its text is shown as data.
@Suite("Admin API: the audit log")
struct AuditTests {
    @Test("1,000 refused requests by a member of A at B's URLs leave B's audit log as it was; they are counted for the operator")
    func outsidersDoNotWrite() async throws {
        try await withAdmin { h in
            let a = try await h.world("a")
            let b = try await h.world("b")
            _ = try await h.api.call(.post, "/v1/orgs/\(b.org)/projects", token: b.owner.token, json: #"{"name":"b-own"}"#)
            let before = try await h.service.audit.read(org: b.org, limit: 1000)
            #expect(!before.isEmpty)
            let counted = h.service.counters.outsiderRefusals.load(ordering: .relaxed)
            let paths: [(HTTPRequest.Method, String, String?)] = [
                (.post, "/v1/orgs/\(b.org)/projects", #"{"name":"forged\u202E\u000Aentry"}"#),
                (.post, "/v1/orgs/\(b.org)/members", #"{"email":"x@forged.test","name":"Forged Name"}"#),
                (.get, "/v1/orgs/\(b.org)/audit", nil), (.post, "/v1/orgs/\(b.org)/keys/1/revoke", nil),
            ]
            for i in 0..<1000 {
                let (method, path, json) = paths[i % paths.count]
                let r = try await h.api.call(method, path, token: i % 2 == 0 ? a.owner.token : a.member.token, json: json)
                #expect(r.status == 404 || r.status == 400, "\(method) \(path): \(r)")
            }
            #expect(try await h.service.audit.read(org: b.org, limit: 1000) == before, "B's log unchanged")
            #expect(h.service.counters.outsiderRefusals.load(ordering: .relaxed) - counted == 1000)
            // B's own members' refusals still are B's business.
            let refused = try await h.api.call(.post, "/v1/orgs/\(b.org)/projects", token: b.member.token, json: #"{"name":"nope"}"#)
            #expect(refused.status == 403)
            #expect(try await h.service.audit.read(org: b.org, limit: 1).first?.outcome == "forbidden")
        }
    }

    @Test("an Owner pages through the whole log with the cursor, newest first, nothing twice or missed; filters by actor, action and time")
    func paging() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            // 250 entries by two actors, then what the world's set-up wrote.
            for i in 0..<250 {
                try await h.service.audit.record(org: w.org, AuditEntry(
                    actor: i % 5 == 0 ? "user:\(w.admin.id)" : "user:\(w.owner.id)", action: i % 2 == 0 ? "key.revoke" : "project.update",
                    target: "n:\(i)", outcome: "ok"))
            }
            let everything = try await h.service.audit.read(org: w.org, limit: 1000)
            #expect(everything.count >= 250)
            var seen: [AuditEntryBody] = []
            var cursor: String?
            var pages = 0
            repeat {
                let path = "/v1/orgs/\(w.org)/audit?limit=100" + (cursor.map { "&before=\($0)" } ?? "")
                let page = try await h.api.get(path, w.owner.token).decode(AuditResponse.self)
                seen += page.entries
                cursor = page.nextBefore
                pages += 1
            } while cursor != nil && pages < 20
            // The reads themselves are not mutations: nothing was added while paging.
            #expect(seen.map(\.id) == everything.map(\.id))
            #expect(Set(seen.map(\.id)).count == seen.count)
            func order(_ id: String) -> [UInt64] { id.split(separator: "-").map { UInt64($0)! } }
            #expect(zip(seen, seen.dropFirst()).allSatisfy { order($0.0.id).lexicographicallyPrecedes(order($0.1.id)) == false }, "newest first")

            // Filters, with paging through the filtered set.
            let admin = "user:\(w.admin.id)"
            var filtered: [AuditEntryBody] = []
            cursor = nil
            repeat {
                let path = "/v1/orgs/\(w.org)/audit?limit=7&actor=\(admin)&action=key.revoke" + (cursor.map { "&before=\($0)" } ?? "")
                let page = try await h.api.get(path, w.owner.token).decode(AuditResponse.self)
                filtered += page.entries
                cursor = page.nextBefore
            } while cursor != nil
            let expected = everything.filter { $0.actor == admin && $0.action == "key.revoke" }
            #expect(filtered.map(\.id) == expected.map(\.id) && expected.count == 25)
            let newest = try #require(everything.first), oldest = try #require(everything.last)
            let window = try await h.api.get("/v1/orgs/\(w.org)/audit?limit=1000&from_ms=\(newest.timeMs)&to_ms=\(newest.timeMs)", w.owner.token)
                .decode(AuditResponse.self)
            #expect(window.entries.allSatisfy { $0.timeMs == newest.timeMs } && window.entries.contains { $0.id == newest.id })
            let after = try await h.api.get("/v1/orgs/\(w.org)/audit?limit=1000&after=\(oldest.id)", w.owner.token).decode(AuditResponse.self)
            #expect(after.entries.count == everything.count - 1 && after.nextBefore == nil)

            // Schema-valid cursors at the edges: nothing older than 0-0, nothing newer than the
            // largest id; a part past 64 bits is saturated, never a store error.
            for (edge, count) in [("before=0-0", 0), ("after=18446744073709551615-18446744073709551615", 0),
                                  ("before=99999999999999999999-0&limit=1000", everything.count), ("after=0-0&limit=1000", everything.count)] {
                let r = try await h.api.get("/v1/orgs/\(w.org)/audit?\(edge)", w.owner.token)
                let shown = r.status == 200 ? try r.decode(AuditResponse.self).entries.count : -1
                #expect(shown == count, "\(edge): \(r)")
            }
            // An empty window, or a cursor pair that leaves nothing between: an empty page, not an
            // error (the request is what the document allows).
            for empty in ["from_ms=5&to_ms=4", "after=\(newest.id)&before=\(oldest.id)"] {
                let r = try await h.api.get("/v1/orgs/\(w.org)/audit?\(empty)", w.owner.token)
                let shown = r.status == 200 ? try r.decode(AuditResponse.self).entries.count : -1
                #expect(shown == 0, "\(empty): \(r)")
            }
            for bad in ["before=12", "before=a-b", "after=1-2-3", "from_ms=-1", "to_ms=x", "limit=0"] {
                let r = try await h.api.get("/v1/orgs/\(w.org)/audit?\(bad)", w.owner.token)
                #expect(r.status == 400 && r.code == "invalid", "\(bad): \(r)")
            }
        }
    }

    @Test("entry text is stored as data and shown escaped: U+202E, a newline and a backslash in the API's JSON and on the console's audit page")
    func escaped() async throws {
        try await withAdmin { h in
            let w = try await h.world()
            let name = "invoice\u{202E}fdp.exe\nforged line \\u{202E}"
            let r = try await h.api.call(.post, "/v1/orgs/\(w.org)/projects", token: w.owner.token, body: CreateProjectRequest(name: name))
            #expect(r.status == 400, "a newline is a control character: \(r)")
            let stored = try #require(try await h.service.audit.read(org: w.org, limit: 1).first)
            #expect(stored.target == "name:\(name)", "stored as given")
            let reply = try await h.api.get("/v1/orgs/\(w.org)/audit?limit=1", w.owner.token)
            let raw = String(decoding: reply.body, as: UTF8.self)
            #expect(!raw.unicodeScalars.contains("\u{202E}"), "no raw bidi override in the JSON: \(raw)")
            let shown = try reply.decode(AuditResponse.self).entries[0].target
            #expect(shown == #"name:invoice\u{202E}fdp.exe\nforged line \\u{202E}"#, "\(shown)")
            #expect(!shown.unicodeScalars.contains { $0.properties.generalCategory == .format || $0.properties.generalCategory == .control })

            var b = Browser(client: h.api.client)
            #expect(try await b.signIn(w.owner.token).status == 303)
            let page = try await b.get("/console/o/\(w.org)/audit")
            #expect(page.status == 200)
            #expect(!page.html.unicodeScalars.contains("\u{202E}"), "no raw bidi override on the page")
            #expect(page.html.contains(#"name:invoice\u{202E}fdp.exe\nforged line \\u{202E}"#), "the escaped text is shown")
        }
    }
}
