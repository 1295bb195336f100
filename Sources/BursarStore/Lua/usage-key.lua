-- Usage of one key. ARGV: prefix, key id. Reply: false when the key does not exist, else
-- {now_us, project, period, key rq x4, key tk x4, tighter rq x4, tighter tk x4, spent, window
-- start, window end, budget|false}.
start_call(ARGV)
local kid = ARGV[2]
local k = key_limits(kid)
if not k then return false end
local prpm, ptpm = k.prpm, k.ptpm
local kws, kwe = window(k.period)
local kwkey = P .. NAME.key_spend .. kid .. ':' .. (k.period == 'lifetime' and NAME.lifetime or int(kws))
local c = rcall('MGET', kwkey, P .. NAME.key_buckets .. kid, P .. NAME.project_buckets .. k.pid)
local kb, pb = parse_pair(c[2]), parse_pair(c[3])
local krq, ktk = rate_usage(kb, 1, k.rpm), rate_usage(kb, 3, k.tpm)
local prq, ptk = rate_usage(pb, 1, prpm), rate_usage(pb, 3, ptpm)
local out = {now_us, k.pid, k.period}
push(out, krq)
push(out, ktk)
push(out, tighter_level(krq, prq))
push(out, tighter_level(ktk, ptk))
push(out, {tonumber(c[1]) or 0, kws, kwe, k.budget or false})
return out
