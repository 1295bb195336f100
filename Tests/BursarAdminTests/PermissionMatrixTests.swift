import BursarAPI
import BursarRBAC
import BursarStore
import Foundation
import Hummingbird
import Testing

/// The permission matrix, row by row, as the product states it.
struct MatrixRow: Sendable, CustomStringConvertible {
    let section: String
    let action: String
    /// Column (standing raw value) → "yes", "no" or "own".
    let cells: [String: String]
    var description: String { action }

    /// Reads ../shared/product/permissions.tsv when it is there (and requires it to equal the
    /// pinned copy proto/permissions.tsv, so drift is caught); otherwise the pinned copy.
    static func load() throws -> [MatrixRow] {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardizedFileURL
        let pinned = try String(contentsOf: repo.appendingPathComponent("proto/permissions.tsv"), encoding: .utf8)
        let shared = repo.appendingPathComponent("../shared/product/permissions.tsv").standardizedFileURL
        var text = pinned
        if let live = try? String(contentsOf: shared, encoding: .utf8) {
            guard live == pinned else {
                throw MatrixError("../shared/product/permissions.tsv changed; update proto/permissions.tsv and the policy to match it")
            }
            text = live
        }
        let lines = text.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("#") && !$0.isEmpty }
        let header = lines[0].split(separator: "\t").map(String.init)
        return lines.dropFirst().map { line in
            let f = line.split(separator: "\t").map(String.init)
            var cells: [String: String] = [:]
            for (i, column) in header.enumerated().dropFirst(2) { cells[column] = f[i] }
            return MatrixRow(section: f[0], action: f[1], cells: cells)
        }
    }
}

struct MatrixError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// What a probe did, and whether its effect is visible in the store afterwards.
struct Probe: Sendable {
    let reply: Reply
    let effect: Bool
    /// Whether the probe only reads (successful reads are not audited).
    let read: Bool
}

@Suite("The permission matrix holds through the admin API")
struct PermissionMatrixTests {
    static let rows: [MatrixRow] = (try? MatrixRow.load()) ?? []

    @Test("permissions.tsv loads, and its rows and columns are exactly the policy's actions and standings")
    func coverage() throws {
        let rows = try MatrixRow.load()
        #expect(Set(rows.map(\.action)) == Set(Action.allCases.map(\.rawValue)))
        #expect(rows.count == Action.allCases.count)
        for row in rows {
            #expect(Set(row.cells.keys) == Set(Standing.allCases.map(\.rawValue)), "columns of \(row.action)")
            for value in row.cells.values { #expect(["yes", "no", "own"].contains(value), "cell '\(value)' of \(row.action)") }
        }
    }

    @Test("every cell: the action through HTTP as that standing is allowed, refused (403) or invisible (404), with its effect and audit record", arguments: rows)
    func cell(_ row: MatrixRow) async throws {
        let action = try #require(Action(rawValue: row.action))
        try await withAdmin { h in
            for standing in Standing.allCases {
                let w = try await h.world()
                let cell = try #require(row.cells[standing.rawValue])
                let probe = try await Self.probe(action, as: standing, in: w, h)
                let targetsProject = Self.targetsProject(action)
                let context = "\(row.action) as \(standing.rawValue) (cell '\(cell)'): \(probe.reply)"
                switch cell {
                case "yes", "own":
                    #expect((200..<300).contains(probe.reply.status), "\(context)")
                    #expect(probe.effect, "the effect of \(context) is missing")
                case "no" where targetsProject && standing == .orgMemberNoProject:
                    #expect(probe.reply.status == 404 && probe.reply.code == "not_found", "\(context)")
                    #expect(!probe.effect, "\(context) changed something")
                default:
                    #expect(probe.reply.status == 403 && probe.reply.code == "forbidden", "\(context)")
                    #expect(!probe.effect, "\(context) changed something")
                }
                // Every mutation and every refused attempt is in the audit log, newest first.
                let allowed = (200..<300).contains(probe.reply.status)
                if !(allowed && probe.read) {
                    let last = try #require(try await h.service.audit.read(org: w.org, limit: 1).first, "no audit record for \(context)")
                    #expect(last.actor == "user:\(w.id(standing))", "\(context)")
                    #expect(last.outcome == (allowed ? "ok" : probe.reply.code ?? "?"), "\(context): audit says \(last.outcome)")
                }
            }
        }
    }

    /// Whether the row's probe targets project P (so a stranger to P must not learn it exists).
    static func targetsProject(_ action: Action) -> Bool { action.isProjectScoped }

    /// Performs the row's action on world `w` as `standing`.
    static func probe(_ action: Action, as standing: Standing, in w: World, _ h: AdminHarness) async throws -> Probe {
        let t = w.token(standing)
        let o = "/v1/orgs/\(w.org)"
        let s = h.store
        switch action {
        case .createProject:
            let r = try await h.api.call(.post, "\(o)/projects", token: t, json: #"{"name":"Staging","models":["m"],"rpm":10}"#)
            return Probe(reply: r, effect: try await s.projects(org: w.org).contains { $0.name == "Staging" }, read: false)
        case .viewProject:
            let r = try await h.api.get("\(o)/projects/\(w.p)", t)
            return Probe(reply: r, effect: (try? r.decode(ProjectBody.self))?.id == w.p, read: true)
        case .editProjectSettings:
            let r = try await h.api.call(.patch, "\(o)/projects/\(w.p)", token: t, json: #"{"rpm":599}"#)
            return Probe(reply: r, effect: try await s.project(org: w.org, w.p)?.rpm == 599, read: false)
        case .deleteProject:
            let r = try await h.api.call(.delete, "\(o)/projects/\(w.p)", token: t)
            return Probe(reply: r, effect: try await s.project(org: w.org, w.p) == nil, read: false)
        case .viewProjectMembers:
            let r = try await h.api.get("\(o)/projects/\(w.p)/members", t)
            let ids = Set(((try? r.decode(ProjectMemberListResponse.self))?.members ?? []).map(\.userId))
            return Probe(reply: r, effect: ids.isSuperset(of: [w.admin.id, w.member.id, w.tess.id, w.owner.id]), read: true)
        case .addProjectMembers:
            let r = try await h.api.call(.post, "\(o)/projects/\(w.p)/members", token: t, json: #"{"user_id":\#(w.spare),"role":"member"}"#)
            return Probe(reply: r, effect: try await s.membership(org: w.org, project: w.p, user: w.spare) != nil, read: false)
        case .editMemberRoles:
            let r = try await h.api.call(.patch, "\(o)/projects/\(w.p)/members/\(w.tess.id)", token: t, json: #"{"role":"admin"}"#)
            return Probe(reply: r, effect: try await s.membership(org: w.org, project: w.p, user: w.tess.id)?.role == .admin, read: false)
        case .createAndManageOwnKeys:
            let r = try await h.api.call(.post, "\(o)/projects/\(w.p)/keys", token: t, json: #"{"name":"mine","rpm":60}"#)
            guard let created = try? r.decode(KeySecretResponse.self) else {
                let mine = try await s.keys(org: w.org, project: w.p).contains { $0.name == "mine" }
                return Probe(reply: r, effect: mine, read: false)
            }
            // Managing it: revoke the key just made.
            let revoke = try await h.api.call(.post, "\(o)/keys/\(created.key.id)/revoke", token: t)
            let key = try await s.key(org: w.org, created.key.id)
            return Probe(reply: revoke, effect: key?.userID == w.id(standing) && key?.status == .revoked, read: false)
        case .manageAllKeysInProject:
            let r = try await h.api.call(.post, "\(o)/keys/\(w.tessKey)/revoke", token: t)
            return Probe(reply: r, effect: try await s.key(org: w.org, w.tessKey)?.status == .revoked, read: false)
        case .manageKeysAcrossAllProjects:
            let r = try await h.api.get("\(o)/keys", t)
            let ids = Set(((try? r.decode(KeyListResponse.self))?.keys ?? []).map(\.id))
            return Probe(reply: r, effect: ids.isSuperset(of: [w.tessKey, w.memberKey]), read: true)
        case .billingAndCredits:
            let r = try await h.api.call(.post, "\(o)/credits", token: t, json: #"{"amount_nusd":5000000000}"#)
            return Probe(reply: r, effect: try await s.credits(w.org) == 5_000_000_000, read: false)
        case .manageOrganizationMembers:
            let r = try await h.api.call(.post, "\(o)/members", token: t, json: #"{"email":"newbie-\#(w.org)@example.test","role":"member"}"#)
            // An invitation, pending until the person accepts.
            return Probe(reply: r, effect: try await s.invitations(org: w.org).contains { $0.email == "newbie-\(w.org)@example.test" }, read: false)
        case .externalKeysBYOK:
            let r = try await h.api.call(.post, "\(o)/byok", token: t, json: #"{"provider":"openai","name":"prod","secret":"sk-provider-secret-1234"}"#)
            return Probe(reply: r, effect: !(try await s.providerKeys(org: w.org)).isEmpty, read: false)
        case .virtualModels:
            let r = try await h.api.call(.put, "\(o)/virtual-models/fast", token: t, json: #"{"targets":["gpt-5.5"]}"#)
            return Probe(reply: r, effect: try await s.virtualModels(org: w.org)["fast"] != nil, read: false)
        case .mcpServers:
            let r = try await h.api.call(.post, "\(o)/mcp-servers", token: t, json: #"{"name":"search","url":"https://mcp.example.test/sse"}"#)
            return Probe(reply: r, effect: !(try await s.mcpServers(org: w.org)).isEmpty, read: false)
        case .promptManagement:
            let r = try await h.api.call(.post, "\(o)/prompts", token: t, json: #"{"name":"greeting","text":"Hello"}"#)
            return Probe(reply: r, effect: !(try await s.prompts(org: w.org)).isEmpty, read: false)
        }
    }
}
