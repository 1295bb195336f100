import BursarRedis

/// The metadata store's own atomic steps, where a rule spans several keys of one organization.
enum MetadataLua {
    /// Changes or removes a user's organization role, refusing to leave the org without an Owner.
    /// KEYS: u:<user>, owners, users, u:<user>:projects. ARGV: org prefix, user id, new role or "" to remove.
    /// Reply: "ok", "missing" or "last_owner".
    static let setOrgRole = RedisScript(source: """
        local role = redis.call('HGET', KEYS[1], 'role')
        if not role then return 'missing' end
        local new = ARGV[3]
        if role == 'owner' and new ~= 'owner' and redis.call('SCARD', KEYS[2]) <= 1 then return 'last_owner' end
        if new == '' then
          local P, uid = ARGV[1], ARGV[2]
          for _, pid in ipairs(redis.call('SMEMBERS', KEYS[4])) do
            redis.call('DEL', P .. 'm:' .. pid .. ':' .. uid, P .. 'm:' .. pid .. ':' .. uid .. ':models')
            redis.call('SREM', P .. 'p:' .. pid .. ':members', uid)
          end
          redis.call('DEL', KEYS[1], KEYS[4])
          redis.call('SREM', KEYS[3], uid)
          redis.call('SREM', KEYS[2], uid)
          return 'ok'
        end
        redis.call('HSET', KEYS[1], 'role', new)
        if new == 'owner' then redis.call('SADD', KEYS[2], ARGV[2]) else redis.call('SREM', KEYS[2], ARGV[2]) end
        return 'ok'
        """)

    /// Records a token's last use on its user, only while it is still the user's token.
    /// KEYS: the global user hash. ARGV: the token's digest, now (ms).
    static let tokenUsed = RedisScript(source: """
        if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then redis.call('HSET', KEYS[1], 'token_used', ARGV[2]) end
        return 0
        """)

    /// Every script, for `RedisClient.register`.
    static let all = [setOrgRole, tokenUsed]
}
