-- What the live-usage reads share. They run after the prelude, so they read the limiter's clock
-- and drain buckets, cut windows and compute remaining values with the CHECK script's own
-- functions and formulas. Reads only: nothing is written.
-- A rate bucket as usage: {limit, used, remaining, reset_ms}. remaining and reset_ms are
-- CHECK's (SPEC 13.2); used is the level in whole units, rounded up, so that
-- used + remaining = limit while the bucket is within capacity. Without a limit no bucket
-- is kept: {false, 0, false, 0}.
-- `pair` is a parsed pair (`parse_pair`), `i` the bucket in it (1: RPM, 3: TPM).
local function rate_usage(pair, i, rate)
  if not rate then return {false, 0, false, 0} end
  local level = drained(pair[i], pair[i + 1], rate)
  local rem = math.floor((rate * SCALE - level) / SCALE)
  if rem < 0 then rem = 0 end
  return {rate, math.ceil(level / SCALE), rem, math.ceil(level / rate / 1000)}
end
-- The level a CHECK_RESULT describes (SPEC 7.1): of the key's and the project's bucket, the
-- one with the smaller remaining, on a tie the smaller limit; the key's first.
local function tighter_level(a, b)
  local best = nil
  for _, st in ipairs({a, b}) do
    if st[1] then
      if best == nil or st[3] < best[3] or (st[3] == best[3] and st[1] < best[1]) then best = st end
    end
  end
  return best or {false, 0, false, 0}
end
-- A key's effective limits, exactly as CHECK reads them: from its compiled record (its own
-- caps tightened by its creator's grant, and its project's), or, for a key no CHECK has compiled
-- yet, the record `derive_record` would write (nothing is written here). nil when the key does
-- not exist.
local function key_limits(kid)
  local k = rcall('HMGET', P .. NAME.key .. kid, 'project', 'period', 'name', 'x')
  if not k[1] then return nil end
  local gate, _, rpm, tpm, bud, prpm, ptpm = compiled(k[4])
  if not gate then _, _, rpm, tpm, bud, prpm, ptpm = compiled(derive_record(kid)) end
  local period = k[2]
  if period ~= 'daily' and period ~= 'weekly' and period ~= 'lifetime' then period = 'monthly' end
  return {pid = k[1], rpm = rpm, tpm = tpm, budget = bud, prpm = prpm, ptpm = ptpm, period = period, name = k[3] or ''}
end
local function push(out, t) for _, v in ipairs(t) do out[#out + 1] = v end end
