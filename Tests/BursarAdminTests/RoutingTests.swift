import BursarAPI
import Foundation
import HTTPTypes
import Testing

/// What the router answers outside the documented operations: a known path with a method it does
/// not have is 405 `method_not_allowed` with `Allow`; an unknown path is 404 `not_found`.
@Suite("Admin API: routing outside the document")
struct RoutingTests {
    @Test("a method a path does not have answers 405 with Allow naming exactly the path's methods")
    func methodNotAllowed() async throws {
        try await withAdmin { h in
            let owner = try await h.world().owner.token
            let cases: [(HTTPRequest.Method, String, String)] = [
                (.trace, "/v1/me", "GET"),
                (.delete, "/v1/orgs", "GET, POST"),
                (.put, "/v1/orgs/1", "GET"),
                (.post, "/v1/orgs/1/projects/2/members/3", "DELETE, PATCH"),
                (.put, "/v1/bootstrap", "POST"),
                // A literal segment beside a capture (`prices/import`, `prices/{name}`): the
                // literal's route is the resource, whichever order the routes were added in.
                (.options, "/v1/orgs/1/prices/import", "POST"),
                (.put, "/v1/orgs/1/prices/import", "POST"),
                (.post, "/v1/orgs/1/prices/gpt-5", "DELETE, PUT"),
            ]
            for (method, path, allow) in cases {
                let (reply, header) = try await h.api.undocumented(method, path, token: owner)
                #expect(reply.status == 405, "\(method) \(path): \(reply)")
                #expect(reply.code == "method_not_allowed", "\(method) \(path): \(reply)")
                #expect(header == allow, "\(method) \(path)")
            }
            // Not a route at all, whatever the method: 404, no Allow.
            for (method, path) in [(HTTPRequest.Method.get, "/v1/nope"), (.delete, "/v1/orgs/1/projects/2/keys/3"), (.get, "/v1/orgs/1/x/y")] {
                let (reply, header) = try await h.api.undocumented(method, path, token: owner)
                #expect(reply.status == 404 && reply.code == "not_found", "\(method) \(path): \(reply)")
                #expect(header == nil)
            }
        }
    }
}
