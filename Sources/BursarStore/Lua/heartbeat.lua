-- HEARTBEAT: KEYS[1] = the registry's heartbeats, KEYS[2] = its leases (one slot). ARGV: epoch,
-- mode (register | beat | leave), this instance's lease ms. On Redis's own clock (never a test
-- clock: it is global). Each instance is judged by its own lease, so bursards configured
-- differently never sweep one another early. Reply for register and leave: {1, now_ms}. For
-- beat: {registered (0 if a sweep already took this epoch for dead), now_ms, then epoch, lease
-- for up to 16 epochs whose last heartbeat is older than their lease}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch, mode, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])
if mode == 'register' then
  redis.call('ZADD', KEYS[1], now, epoch)
  redis.call('HSET', KEYS[2], epoch, lease)
  return {1, now}
end
if mode == 'leave' then
  redis.call('ZREM', KEYS[1], epoch)
  redis.call('HDEL', KEYS[2], epoch)
  return {1, now}
end
if not redis.call('ZSCORE', KEYS[1], epoch) then return {0, now} end
redis.call('ZADD', KEYS[1], now, epoch)
local reply = {1, now}
local beats = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #beats, 2 do
  local e, last = beats[i], tonumber(beats[i + 1])
  local l = tonumber(redis.call('HGET', KEYS[2], e)) or lease
  if now - last > l and #reply < 34 then
    reply[#reply + 1] = e
    reply[#reply + 1] = l
  end
end
return reply
