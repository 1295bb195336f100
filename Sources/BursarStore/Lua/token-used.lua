-- Records a token's last use on its user, only while it is still the user's token.
-- KEYS: the global user hash. ARGV: the token's digest, now (ms).
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then redis.call('HSET', KEYS[1], 'token_used', ARGV[2]) end
return 0
