-- Usage of one project. ARGV: prefix, project id. Reply: false when the project does not exist,
-- else {now_us, rq x4, tk x4, spent, month start, month end, budget|false}.
start_call(ARGV)
local pid = ARGV[2]
local p = rcall('HMGET', P .. NAME.project .. pid, 'status', 'rpm', 'tpm', 'budget')
if not p[1] then return false end
local pws, pwe = window('monthly')
local c = rcall('MGET', P .. NAME.project_spend .. pid .. ':' .. int(pws), P .. NAME.project_buckets .. pid)
local pb = parse_pair(c[2])
local out = {now_us}
push(out, rate_usage(pb, 1, num(p[2])))
push(out, rate_usage(pb, 3, num(p[3])))
push(out, {tonumber(c[1]) or 0, pws, pwe, num(p[4]) or false})
return out
