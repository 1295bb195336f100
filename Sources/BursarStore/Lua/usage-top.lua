-- The minute buckets of some keys and projects. ARGV: prefix, key count n, n key ids, then
-- project ids. Reply: {now_us, n', n' x {key, project, name, project name, rq used, tk used},
-- m x {project, name, rq used, tk used}} (keys and projects that no longer exist are left out).
start_call(ARGV)
local n = tonumber(ARGV[2])
local keys, projects = {}, {}
for i = 3, 2 + n do
  local kid = ARGV[i]
  local k = key_limits(kid)
  if k then
    local kb = parse_pair(rcall('GET', P .. NAME.key_buckets .. kid))
    push(keys, {kid, k.pid, k.name, rcall('HGET', P .. NAME.project .. k.pid, 'name') or '',
      rate_usage(kb, 1, k.rpm)[2], rate_usage(kb, 3, k.tpm)[2]})
  end
end
for i = 3 + n, #ARGV do
  local pid = ARGV[i]
  local p = rcall('HMGET', P .. NAME.project .. pid, 'name', 'rpm', 'tpm')
  if p[1] then
    local pb = parse_pair(rcall('GET', P .. NAME.project_buckets .. pid))
    push(projects, {pid, p[1], rate_usage(pb, 1, num(p[2]))[2], rate_usage(pb, 3, num(p[3]))[2]})
  end
end
local out = {now_us, #keys / 6}
push(out, keys)
push(out, projects)
return out
