-- Usage of the organization. ARGV: prefix. Reply: {now_us, metered 0|1, credits, requests used,
-- tokens used, spent this month, month start, month end}: the minute and the month summed over
-- its projects.
start_call(ARGV)
local o = rcall('HMGET', P .. NAME.org, 'metered')
local credits = tonumber(rcall('GET', P .. NAME.credits)) or 0
local pws, pwe = window('monthly')
local rq, tk, spent = 0, 0, 0
for _, pid in ipairs(rcall('SMEMBERS', P .. NAME.projects)) do
  local p = rcall('HMGET', P .. NAME.project .. pid, 'rpm', 'tpm')
  local c = rcall('MGET', P .. NAME.project_spend .. pid .. ':' .. int(pws), P .. NAME.project_buckets .. pid)
  local pb = parse_pair(c[2])
  spent = spent + (tonumber(c[1]) or 0)
  rq = rq + rate_usage(pb, 1, num(p[1]))[2]
  tk = tk + rate_usage(pb, 3, num(p[2]))[2]
end
return {now_us, o[1] == '1' and 1 or 0, credits, rq, tk, spent, pws, pwe}
