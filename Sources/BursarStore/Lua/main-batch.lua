-- Several requests of one organization that reach Redis together, as one call (SPEC §13.11):
-- `start_call` reads the clock once, and each request's `step` runs after it, in order, in the
-- same atomic step. KEYS = each request's KEYS[1]; ARGV[1] = the organization's prefix (every
-- request's ARGV[1]), then for each request the count of its other arguments and those
-- arguments. Reply: one element per request, what its own call would have answered; a request
-- whose step raised an error gets that error as its element, and the others are unaffected.
-- `begin_batch` runs before the first request and `after_batch` after the last, then
-- `flush_counters` writes the money counters the steps moved (prelude.lua: written behind
-- within the call).
local function main(KEYS, ARGV)
  start_call(ARGV)
  begin_batch()
  WB, WB_NAMES = {}, {}
  PAIRS, PAIR_NAMES = {}, {}
  local out = {}
  local pos = 2
  for i = 1, #KEYS do
    local c = tonumber(ARGV[pos])
    -- Its arguments are ARGV[pos + 1 … pos + c], read by its step where they are: its ARGV[2] is
    -- the call's ARGV[pos + 1].
    local ok, res = pcall(step, KEYS[i], ARGV, pos - 1, pos + c)
    pos = pos + c + 1
    if ok then
      out[i] = res
    elseif type(res) == 'table' and res.err then
      out[i] = res
    else
      out[i] = {err = tostring(res)}
    end
  end
  after_batch()
  flush_counters()
  return out
end
