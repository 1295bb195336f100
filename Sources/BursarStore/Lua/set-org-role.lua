-- Changes or removes a user's organization role, refusing to leave the org without an Owner.
-- KEYS: u:<user>, owners, users, u:<user>:projects. ARGV: org prefix, user id, new role or "" to
-- remove. Reply: "ok", "missing" or "last_owner".
local role = redis.call('HGET', KEYS[1], 'role')
if not role then return 'missing' end
local new = ARGV[3]
if role == 'owner' and new ~= 'owner' and redis.call('SCARD', KEYS[2]) <= 1 then return 'last_owner' end
if new == '' then
  local P, uid = ARGV[1], ARGV[2]
  for _, pid in ipairs(redis.call('SMEMBERS', KEYS[4])) do
    local m = P .. NAME.membership .. pid .. ':' .. uid
    redis.call('DEL', m, m .. NAME.models)
    redis.call('SREM', P .. NAME.project .. pid .. NAME.members, uid)
  end
  redis.call('DEL', KEYS[1], KEYS[4])
  redis.call('SREM', KEYS[3], uid)
  redis.call('SREM', KEYS[2], uid)
  return 'ok'
end
redis.call('HSET', KEYS[1], 'role', new)
if new == 'owner' then redis.call('SADD', KEYS[2], ARGV[2]) else redis.call('SREM', KEYS[2], ARGV[2]) end
return 'ok'
