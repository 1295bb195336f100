import BursarRBAC
import Foundation
import Testing

@Suite("The policy, without I/O")
struct PolicyTests {
    /// permissions.tsv (the pinned copy in proto/), as action → column → cell.
    static func matrix() throws -> [String: [String: String]] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../proto/permissions.tsv")
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map(String.init).filter { !$0.hasPrefix("#") }
        let header = lines[0].split(separator: "\t").map(String.init)
        var result: [String: [String: String]] = [:]
        for line in lines.dropFirst() {
            let f = line.split(separator: "\t").map(String.init)
            result[f[1]] = Dictionary(uniqueKeysWithValues: zip(header.dropFirst(2), f.dropFirst(2)))
        }
        return result
    }

    @Test("Policy.permits agrees with every cell of permissions.tsv ('own' is implied by the standing)")
    func agreesWithMatrix() throws {
        let m = try Self.matrix()
        #expect(Set(m.keys) == Set(Action.allCases.map(\.rawValue)))
        for action in Action.allCases {
            for standing in Standing.allCases {
                let cell = try #require(m[action.rawValue]?[standing.rawValue])
                #expect(Policy.permits(action, standing) == (cell != "no"), "\(action.rawValue) × \(standing.rawValue) = \(cell)")
            }
        }
    }

    @Test("refusals of project-scoped actions to a member with no role in the project are invisible; everything of another org is invisible")
    func verdicts() {
        #expect(Policy.verdict(.viewProject, .orgMemberNoProject) == .invisible)
        #expect(Policy.verdict(.manageAllKeysInProject, .orgMemberNoProject) == .invisible)
        #expect(Policy.verdict(.viewProjectMembers, .projectMember) == .refused)
        #expect(Policy.verdict(.createProject, .orgMemberNoProject) == .refused)
        #expect(Policy.verdict(.billingAndCredits, .projectAdmin) == .refused)
        for action in Action.allCases { #expect(Policy.verdict(action, nil) == .invisible) }
        #expect(Policy.keyVerdict(.projectMember, actorIsOwner: true) == .allowed)
        #expect(Policy.keyVerdict(.projectMember, actorIsOwner: false) == .refused)
        #expect(Policy.keyVerdict(.projectAdmin, actorIsOwner: false) == .allowed)
    }

    @Test("standing from roles: Owners stand as org_owner whatever their project role")
    func standing() {
        #expect(Standing(orgRole: .owner, projectRole: nil) == .orgOwner)
        #expect(Standing(orgRole: .owner, projectRole: .member) == .orgOwner)
        #expect(Standing(orgRole: .member, projectRole: .admin) == .projectAdmin)
        #expect(Standing(orgRole: .member, projectRole: .member) == .projectMember)
        #expect(Standing(orgRole: .member, projectRole: nil) == .orgMemberNoProject)
        #expect(Standing(orgRole: nil, projectRole: .admin) == nil)
        #expect(Standing.orgOwner.effectiveProjectRole == .admin)
    }
}

@Suite("Caps: a key's limits lie within the project's caps and the grant")
struct CapTests {
    let project = Caps(models: ["gpt-5.5", "claude", "fast"], rpm: 600, tpm: 120_000, spend: 2_000)
    let grant = Caps(models: ["gpt-5.5", "mini"], rpm: 60, tpm: 20_000, spend: 200)
    let aliases: @Sendable (String) -> [String] = { $0 == "fast" ? ["mini", "haiku"] : [$0] }

    func violation(_ key: Caps) -> CapViolation? {
        CapCheck.violation(of: key, subject: "key", within: [("project", project), ("grant", grant)], expand: aliases)
    }

    @Test("within every cap, or unset (inheriting): no violation")
    func within() {
        #expect(violation(Caps(models: ["gpt-5.5"], rpm: 60, tpm: 20_000, spend: 200)) == nil)
        #expect(violation(Caps()) == nil)
        #expect(violation(Caps(models: ["mini"])) == nil, "mini is behind the project's alias fast, and in the grant")
    }

    @Test("the first cap exceeded is named, project before grant", arguments: [
        (Caps(rpm: 601), "project.rpm"), (Caps(tpm: 120_001), "project.tpm"), (Caps(spend: 2_001), "project.monthly_budget"),
        (Caps(models: ["o5"]), "project.models"), (Caps(rpm: 61), "grant.rpm"), (Caps(tpm: 20_001), "grant.tpm"),
        (Caps(spend: 201), "grant.max_key_spend"), (Caps(models: ["claude"]), "grant.models"),
        (Caps(models: ["fast"]), "grant.models"),
    ])
    func exceeded(_ key: Caps, _ cap: String) {
        let v = violation(key)
        #expect(v?.cap == cap, "\(String(describing: v))")
        #expect(v?.message.isEmpty == false)
    }
}
