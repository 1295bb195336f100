-- SWEEP: voids up to `limit` admissions of one organization that a dead bursard (epoch) made and
-- never confirmed delivered (SPEC §13.7). KEYS[1] = the org's undelivered set, KEYS[2] its sorted
-- set of an earlier release (Keyspace.legacyUndelivered). ARGV: prefix, epoch, fence TTL ms,
-- limit, then the first and the last sequence of the epoch (19 decimal digits each,
-- ReservationSequence.range(epoch:)): the set's members of the epoch are those between them.
-- Compared as text, never as Lua numbers (they pass 2^53): every sequence bursard chooses has 19
-- digits, so text order is number order. Reply: how many it voided (fewer than `limit`: none left).
start_call(ARGV)
local limit, fence = tonumber(ARGV[4]), tonumber(ARGV[3])
local first, last = ARGV[5], ARGV[6]
local n = 0
for _, seq in ipairs(rcall('ZRANGEBYSCORE', KEYS[2], ARGV[2], ARGV[2], 'LIMIT', 0, limit)) do
  void_attempt(seq, 'swept', fence)
  rcall('ZREM', KEYS[2], seq)
  n = n + 1
end
if n >= limit then return n end
for _, seq in ipairs(rcall('SMEMBERS', KEYS[1])) do
  if #seq == #first and seq >= first and seq <= last then
    void_attempt(seq, 'swept', fence)
    n = n + 1
    if n >= limit then break end
  end
end
return n
