import BursarRedis

/// The metadata store's own atomic steps, where a rule spans several keys of one organization.
enum MetadataLua {
    /// Changes or removes a user's organization role, refusing to leave the org without an Owner
    /// (set-org-role.lua).
    static let setOrgRole = RedisScript(source: LuaSource.script([.setOrgRole]))

    /// Records a token's last use on its user, only while it is still the user's token
    /// (token-used.lua).
    static let tokenUsed = RedisScript(source: LuaSource.script([.tokenUsed]))

    /// Replaces a sealed provider secret by its rewrap, only if it is unchanged (rewrap-secret.lua).
    static let rewrapSecret = RedisScript(source: LuaSource.script([.rewrapSecret]))

    /// Every script, for `RedisClient.register`.
    static let all = [setOrgRole, tokenUsed, rewrapSecret]
}
