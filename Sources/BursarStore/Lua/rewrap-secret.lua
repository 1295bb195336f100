-- Replaces a sealed provider secret by its rewrap, only if the record is still there and
-- unchanged (a delete or another instance's rewrap in between wins). KEYS[1] = the BYOK hash.
-- ARGV: the sealed secret read, its rewrap. Reply: 1 if replaced, else 0.
if redis.call('HGET', KEYS[1], 'secret') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'secret', ARGV[2])
  return 1
end
return 0
