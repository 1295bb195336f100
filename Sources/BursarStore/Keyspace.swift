import BursarRedis

/// Every Redis key name bursar uses, in one place.
///
/// Everything one atomic step touches lives under the organization's hash tag `{o<orgId>}`, so on
/// Redis Cluster it all shares one slot (and one master). The consequence: an organization's
/// decisions cannot be spread over several masters. Only the digest index (`br:d:<hex>`) and the
/// id sequences sit outside any org slot; each is read or written by a single command.
public enum Keyspace {
    /// The pieces of an organization's key names that the scripts build too: the one definition
    /// of each, read by the functions below and, as `NAME.<luaName>`, by the Lua
    /// (`LuaSource` puts each in as a string literal when a script is loaded).
    public enum Segment: String, CaseIterable, Sendable {
        /// The organization hash (after the prefix).
        case org = "org"
        /// The credit balance.
        case credits = "credits"
        /// A user hash: `u:<user>`.
        case user = "u:"
        /// A project hash: `p:<project>`.
        case project = "p:"
        /// The set of the organization's projects.
        case projects = "projects"
        /// A membership hash: `m:<project>:<user>`.
        case membership = "m:"
        /// A key hash: `k:<key>`.
        case key = "k:"
        /// A reservation: `r:<sequence>`.
        case reservation = "r:"
        /// A key's spend in a window: `s:k:<key>:<window start ms | life>`.
        case keySpend = "s:k:"
        /// A project's spend in a month: `s:p:<project>:<month start ms>`.
        case projectSpend = "s:p:"
        /// The window of a lifetime budget.
        case lifetime = "life"
        /// A key's rate buckets: `b:k:<key>`.
        case keyBuckets = "b:k:"
        /// A project's rate buckets: `b:p:<project>`.
        case projectBuckets = "b:p:"
        /// A model's price: `price:<model>`.
        case price = "price:"
        /// The undelivered admissions.
        case undelivered = "uds"
        /// The frozen test time.
        case testClock = "testclock"
        /// A usage-history record: `h:<day>:<key>:<model>` (day: days since 1970-01-01 UTC).
        case history = "h:"
        /// A day's index of history records: `hx:<day>`, members `<project>:<key>:<model>`.
        case historyIndex = "hx:"
        /// The audit log (a stream).
        case audit = "audit"
        /// After a key, project or membership: its model list.
        case models = ":models"
        /// After a project: its member set.
        case members = ":members"
        /// After a project: its key set.
        case keys = ":keys"

        /// Its name in the Lua (`NAME.key_spend`): the case name in snake case.
        public var luaName: String { LuaSource.snakeCase(String(describing: self)) }
    }

    /// `br:{o<org>}:` — the prefix of every key of one organization.
    public static func org(_ org: UInt64) -> String { orgOpen + String(org) + orgClose }
    /// The pieces of the per-request key names, shared by the `String` forms here and the
    /// in-place forms (`append(org:to:)` …) the limiter writes into its commands.
    static let orgOpen = "br:{o", orgClose = "}:", keySegment = Segment.key.rawValue, reservationSegment = Segment.reservation.rawValue
    /// Digest → "org:key" index (global).
    public static func digestIndex(_ hex: String) -> String { "br:d:\(hex)" }
    /// Global id sequences: organizations; before 2026-12-04 also projects, keys, users, BYOK
    /// keys and MCP servers (what is left of those seeds the per-organization ones).
    public static func sequence(_ kind: String) -> String { "br:seq:\(kind)" }
    /// An organization's own id sequence for projects, keys, BYOK keys and MCP servers: one
    /// organization's ids tell nothing of how many another made.
    public static func orgSequence(_ org: UInt64, _ kind: String) -> String { self.org(org) + "seq:\(kind)" }
    /// The set of all organization ids.
    public static let orgs = "br:orgs"
    /// Set once, by the first bootstrap: the store is no longer empty.
    public static let bootstrapped = "br:bootstrapped"
    /// Token digest → principal (`u:<user>` or `op`) (global).
    public static func token(_ hex: String) -> String { "br:tok:\(hex)" }
    /// Global user hash: email, name, token (the digest of their personal access token).
    public static func globalUser(_ user: UInt64) -> String { "br:user:\(user)" }
    /// Set of the organizations a user belongs to.
    public static func userOrgs(_ user: UInt64) -> String { "br:user:\(user):orgs" }
    /// A web console session, by the SHA-256 of its cookie value (global; expires with the session).
    public static func consoleSession(_ hex: String) -> String { "br:console:s:\(hex)" }
    /// A one-time console sign-in link, by the SHA-256 of its code (global; expires unused).
    public static func consoleLink(_ hex: String) -> String { "br:console:l:\(hex)" }
    /// Lowercased e-mail → user id.
    public static func email(_ email: String) -> String { "br:email:\(email)" }

    /// Organization hash: name, status, metered.
    public static func orgHash(_ org: UInt64) -> String { self.org(org) + Segment.org.rawValue }
    /// Organization credit balance, nano-USD.
    public static func credits(_ org: UInt64) -> String { self.org(org) + Segment.credits.rawValue }
    /// User hash: name, role.
    public static func user(_ org: UInt64, _ user: UInt64) -> String { self.org(org) + Segment.user.rawValue + String(user) }
    /// Set of the org's user ids.
    public static func users(_ org: UInt64) -> String { self.org(org) + "users" }
    /// Set of the org's Owner ids (never emptied: the last Owner cannot leave).
    public static func owners(_ org: UInt64) -> String { self.org(org) + "owners" }
    /// Set of the projects a user has a role in.
    public static func userProjects(_ org: UInt64, _ user: UInt64) -> String { self.user(org, user) + ":projects" }
    /// Project hash: name, status, rpm, tpm, budget.
    public static func project(_ org: UInt64, _ project: UInt64) -> String { self.org(org) + Segment.project.rawValue + String(project) }
    /// Set of the org's project ids.
    public static func projects(_ org: UInt64) -> String { self.org(org) + Segment.projects.rawValue }
    /// Project model list (empty = all models).
    public static func projectModels(_ org: UInt64, _ project: UInt64) -> String { self.project(org, project) + Segment.models.rawValue }
    /// Set of a project's member user ids.
    public static func projectMembers(_ org: UInt64, _ project: UInt64) -> String { self.project(org, project) + Segment.members.rawValue }
    /// Set of a project's key ids.
    public static func projectKeys(_ org: UInt64, _ project: UInt64) -> String { self.project(org, project) + Segment.keys.rawValue }
    /// Membership hash: role and grants.
    public static func membership(_ org: UInt64, _ project: UInt64, _ user: UInt64) -> String { self.org(org) + Segment.membership.rawValue + "\(project):\(user)" }
    /// Member grant model list (empty = no narrowing).
    public static func membershipModels(_ org: UInt64, _ project: UInt64, _ user: UInt64) -> String { membership(org, project, user) + Segment.models.rawValue }
    /// Key hash.
    public static func key(_ org: UInt64, _ key: UInt64) -> String { self.org(org) + keySegment + String(key) }
    /// Key model list (empty = no narrowing).
    public static func keyModels(_ org: UInt64, _ key: UInt64) -> String { self.key(org, key) + Segment.models.rawValue }
    /// Reservation hash.
    public static func reservation(_ org: UInt64, _ sequence: UInt64) -> String { self.org(org) + reservationSegment + String(sequence) }
    /// Key spend in the window starting at `startMs` (lifetime: "life").
    public static func keySpend(_ org: UInt64, _ key: UInt64, window: String) -> String { self.org(org) + Segment.keySpend.rawValue + "\(key):\(window)" }
    /// Project spend in the month starting at `startMs`.
    public static func projectSpend(_ org: UInt64, _ project: UInt64, window: String) -> String { self.org(org) + Segment.projectSpend.rawValue + "\(project):\(window)" }
    /// A key's or a project's two rate buckets, RPM and TPM, as one string (`RateBuckets`):
    /// `scope` is "k" or "p".
    public static func buckets(_ org: UInt64, scope: String, id: UInt64) -> String {
        self.org(org) + (scope == "k" ? Segment.keyBuckets : Segment.projectBuckets).rawValue + String(id)
    }
    /// Hash of virtual models: alias → its real models joined by U+001F.
    public static func virtualModels(_ org: UInt64) -> String { self.org(org) + "vms" }
    /// A model's price (SPEC §13.12): "input output cached", nano-USD per million tokens. A
    /// string, so the CHECK script reads it in the MGET that reads its counters.
    public static func price(_ org: UInt64, _ model: String) -> String { self.org(org) + Segment.price.rawValue + model }
    /// Set of the models the price table holds.
    public static func priceSet(_ org: UInt64) -> String { self.org(org) + "prices" }
    /// Set of BYOK ids; `byok(org, id)` is each one's hash.
    public static func byokSet(_ org: UInt64) -> String { self.org(org) + "byok" }
    /// An external provider key.
    public static func byok(_ org: UInt64, _ id: UInt64) -> String { self.org(org) + "byok:\(id)" }
    /// Set of MCP server ids.
    public static func mcpSet(_ org: UInt64) -> String { self.org(org) + "mcp" }
    /// An MCP server.
    public static func mcp(_ org: UInt64, _ id: UInt64) -> String { self.org(org) + "mcp:\(id)" }
    /// Set of prompt names.
    public static func promptSet(_ org: UInt64) -> String { self.org(org) + "prompts" }
    /// A prompt's versions, oldest first (list; version n is element n-1).
    public static func prompt(_ org: UInt64, _ name: String) -> String { self.org(org) + "prompt:\(name)" }
    /// The organization's audit log (a stream).
    /// A pending invitation to the organization (a hash; expires with the invitation).
    public static func invitation(_ org: UInt64, _ id: UInt64) -> String { self.org(org) + "inv:\(id)" }
    /// The organization's pending invitation ids (a set).
    public static func invitations(_ org: UInt64) -> String { self.org(org) + "invs" }
    /// An invitation's one-time acceptance token, by its SHA-256: "org:id" (global; expires).
    public static func invitationToken(_ hex: String) -> String { "br:invtok:\(hex)" }
    public static func audit(_ org: UInt64) -> String { self.org(org) + Segment.audit.rawValue }
    /// The org's undelivered admissions (a set): each admission a CHECK script made is a member
    /// (its reservation sequence, decimal, which holds the epoch of the bursard that sent it),
    /// until that bursard confirms the answer was handed to the client or voids it. What remains of
    /// a bursard that died is voided by a sweep (SPEC §13.7). The sequences are integers below
    /// 2^63, so Redis keeps a set of up to 512 of them as a sorted array of integers (an intset):
    /// adding and removing one is a binary search.
    public static func undelivered(_ org: UInt64) -> String { self.org(org) + Segment.undelivered.rawValue }
    /// The undelivered admissions of releases before 2026-12-03 (a sorted set: sequence scored
    /// by epoch). Nothing adds to it any more; a sweep still voids what a dead bursard of such a
    /// release left in it.
    public static func legacyUndelivered(_ org: UInt64) -> String { self.org(org) + "ud" }
    /// The gateway credentials (a hash: SHA-256 hex of the secret → the credential as JSON,
    /// `GatewayCredential`); one slot, read once per data-plane connection that sends AUTH.
    public static let gatewayCredentials = "br:{gw}:creds"
    /// The installation's reservation key (SPEC §5): base64 of 32 random bytes, written once by
    /// the first bursard (`SET … NX`), read by every other; never expires (global).
    public static let reservationKey = "br:ridkey"
    /// The counter every bursard takes its instance epoch from, at start (global).
    public static let instanceEpochs = "br:seq:instance"
    /// The live bursard instances (a sorted set): epoch → the Redis time, ms, of its last
    /// heartbeat (global). An epoch whose heartbeat is older than its lease is swept.
    public static let instances = "br:{inst}:beats"
    /// Each live instance's lease, ms (a hash: epoch → lease); in the registry's slot.
    public static let instanceLeases = "br:{inst}:leases"
    /// Held by the one bursard sweeping what the dead instance `epoch` left (global; expires).
    public static func sweepClaim(_ epoch: UInt64) -> String { "br:sweep:\(epoch)" }
    /// The frozen test time (Unix µs) read only by scripts built with `ScriptClock.testFrozen`.
    /// The usage-history record of one key and model on `day` (days since 1970-01-01 UTC).
    public static func history(_ org: UInt64, day: Int64, key: UInt64, model: String) -> String {
        self.org(org) + Segment.history.rawValue + "\(day):\(key):" + model
    }
    /// The index of `day`'s usage-history records.
    public static func historyIndex(_ org: UInt64, day: Int64) -> String { self.org(org) + Segment.historyIndex.rawValue + String(day) }
    /// The marker of a budget alert: the spend-window counter's name and the percentage.
    public static func budgetAlert(window: String, percent: Int) -> String { window + ":a\(percent)" }
    public static func testClock(_ org: UInt64) -> String { self.org(org) + Segment.testClock.rawValue }
}

// MARK: Written in place, for the per-request commands

extension Keyspace {
    /// Appends `org(org)` to `command` as one argument, written in place (no String built).
    static func append(org: UInt64, to command: inout RedisCommand) {
        command.append(orgOpen)
        command.extendLast(decimal: org)
        command.extendLast(orgClose)
    }

    /// Appends `key(org, key)` to `command` as one argument, written in place.
    static func append(key: UInt64, org: UInt64, to command: inout RedisCommand) {
        append(org: org, to: &command)
        command.extendLast(keySegment)
        command.extendLast(decimal: key)
    }

    /// Appends `reservation(org, sequence)` to `command` as one argument, written in place.
    static func append(reservation sequence: UInt64, org: UInt64, to command: inout RedisCommand) {
        append(org: org, to: &command)
        command.extendLast(reservationSegment)
        command.extendLast(decimal: sequence)
    }
}
