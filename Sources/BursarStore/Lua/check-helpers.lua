-- What every CHECK of a script call shares, made once per call rather than once per request:
-- the model-list test, a rate bucket's levels and the rate-limit header.
-- Model lists: the compiled record counts a list's members ('nm'), so an unrestricted list costs
-- no call.
local function permits(set, model) return rcall('SISMEMBER', set, model) == 1 end
-- A bucket at `rate` (nil: no limit, all nil): its level now, its level after `units`
-- more, and the retry hint in ms when that is over its capacity (nil when it fits).
local function bucket(level, updated, rate, units)
  if not rate then return nil, nil, nil end
  local now_level = drained(level, updated, rate)
  local after = now_level + units * SCALE
  if after > rate * SCALE then return now_level, after, math.ceil((after - rate * SCALE) / rate / 1000) end
  return now_level, after, nil
end
-- A bucket's remaining units and ms until empty, at the level the answer reports.
local function headroom(rate, before, after, admitted)
  local level = admitted and after or before
  local rem = math.floor((rate * SCALE - level) / SCALE)
  if rem < 0 then rem = 0 end
  return rem, math.ceil(level / rate / 1000)
end
-- The rate-limit header of two buckets (rate, level before, level after; rate nil = no
-- limit): the one with the fewest remaining, the lower rate on a tie.
local function header(ra, la, aa, rb, lb, ab, admitted)
  local br, brem, breset
  if ra then
    br = ra
    brem, breset = headroom(ra, la, aa, admitted)
  end
  if rb then
    local rem, reset = headroom(rb, lb, ab, admitted)
    if br == nil or rem < brem or (rem == brem and rb < br) then br, brem, breset = rb, rem, reset end
  end
  if br == nil then return 0, 0, 0 end
  return br, brem, breset
end
