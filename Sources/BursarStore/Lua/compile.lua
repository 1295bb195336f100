-- COMPILE: recompiles the compiled records of one organization's keys (compiled-record.lua).
-- KEYS[1] = the organization hash (it names the slot). ARGV: prefix, scope, then for `keys` the
-- key ids, for `project` the project id, for `user` the user id; `org` takes none. `project`
-- compiles the keys in the project's key set; `user` and `org` every key of every project of the
-- organization (`user` only those the user holds). Reply: how many it compiled.
bind_lua()
P = ARGV[1]
local scope = ARGV[2]
local n = 0
if scope == 'keys' then
  for i = 3, #ARGV do compile_key(ARGV[i]); n = n + 1 end
  return n
end
local projects
if scope == 'project' then projects = {ARGV[3]} else projects = rcall('SMEMBERS', P .. NAME.projects) end
for _, pid in ipairs(projects) do
  for _, kid in ipairs(rcall('SMEMBERS', P .. NAME.project .. pid .. NAME.keys)) do
    if scope ~= 'user' or rcall('HGET', P .. NAME.key .. kid, 'user') == ARGV[3] then
      compile_key(kid)
      n = n + 1
    end
  end
end
return n
