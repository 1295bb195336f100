public import BursarAPI
public import BursarRBAC
import BursarStore

/// The caps a new key of one user in one project must stay within, in the order the admin API
/// checks them (`project`, then the user's `grant`), and the models the key may name.
public struct KeyCapLevels: Sendable {
    /// `(level, caps)`: `project`, and `grant` unless the key's user is an Owner.
    public var levels: [(name: String, caps: Caps)]
    /// The models a key may be limited to; empty = any model (neither level restricts them).
    public var grantableModels: [String]

    /// The tightest of the levels' caps for one field (nil = no cap), with the level that sets it.
    public func tightest(_ field: KeyPath<Caps, Int64?>) -> (value: Int64, cap: String)? {
        var best: (Int64, String)?
        for (name, caps) in levels {
            guard let v = caps[keyPath: field] else { continue }
            if best == nil || v < best!.0 { best = (v, name) }
        }
        return best
    }
}

extension AdminService {
    /// How long a `console-link` stays valid, unused.
    public static let consoleLinkTTLSeconds = 600

    // MARK: The web console's questions

    /// What a key the caller creates for `user` (default: themselves) in `project` may be: the
    /// same levels `createKey` checks, read with the same permission (create_and_manage_own_keys,
    /// or manage_all_keys_in_project for someone else's key).
    public func keyCapLevels(_ actor: Actor, _ org: UInt64, _ project: UInt64, user: UInt64? = nil) async throws -> KeyCapLevels {
        let (standing, p) = try await standing(actor, org, project: project)
        let userID = user ?? actor.userID!
        let own = userID == actor.userID
        try require(Policy.keyVerdict(standing, actorIsOwner: own), own ? .createAndManageOwnKeys : .manageAllKeysInProject, target: "project \(project)")
        var levels: [(name: String, caps: Caps)] = [("project", Caps(project: p))]
        let grant = try await keyUserGrant(org, project: project, user: userID)
        if let grant { levels.append(("grant", Caps(grant: grant))) }
        // The narrowest list of names a key may pick from: the grant's (already within the
        // project's when it was given), else the project's.
        let models = grant?.models.flatMap { $0.isEmpty ? nil : $0 } ?? p.models
        return KeyCapLevels(levels: levels, grantableModels: models)
    }

    /// Records a web console sign-in (`console.sign_in`, by token or by link) in the audit log of
    /// every organization the user belongs to, so Owners see who opened the console.
    public func recordConsoleSignIn(_ actor: Actor, via method: String) async {
        guard let user = actor.userID, let orgs = try? await store.memberships(of: user) else { return }
        for (org, _) in orgs { await record(org.id, actor, "console.sign_in", "user:\(user) (\(method))", "ok") }
    }

    /// A single-use link that signs the caller in to the web console (`bursarctl console-link`):
    /// the path to open on the ops port, valid `ttlSeconds`. Users only: the operator has no
    /// console.
    public func consoleLink(_ actor: Actor, ttlSeconds: Int) async throws -> ConsoleLinkResponse {
        guard let user = actor.userID else {
            throw APIError(.forbidden, "the operator has no web console; sign in with a user's token")
        }
        do {
            let code = try await store.createConsoleLink(user: user, ttlSeconds: ttlSeconds)
            return ConsoleLinkResponse(path: "/console/link/\(code)", expiresInSeconds: Int64(ttlSeconds))
        } catch {
            throw APIError.from(error)
        }
    }
}
