-- What the steps on an existing reservation share (SETTLE/RELEASE, VOID, SWEEP): reading it and
-- its counters, moving them back or forth, voiding an attempt. Kept out of the CHECK script,
-- which runs on every request and needs none of it.
-- Moves one scope's pair of buckets (`name`, read as `v`) by `requests` and `tokens` units
-- (negative gives back) at the rates `rr` and `tr` (0: no limit, not moved). Untouched
-- unless one of them moves.
local function move_pair(name, v, rr, tr, requests, tokens)
  local mr, mt = rr > 0 and requests ~= 0, tr > 0 and tokens ~= 0
  if not (mr or mt) then return end
  local s = read_pair(name, v)
  if mr then set_level(s, 1, drained(s[1], s[2], rr) + requests * SCALE, rr) end
  if mt then set_level(s, 3, drained(s[3], s[4], tr) + tokens * SCALE, tr) end
  store_pair(name, s)
end
-- Moves the rate buckets of reservation `r` by `requests` and `tokens` units, from the
-- key's and the project's pairs read in `cur` (read_counters: at cur.kb and cur.pb, nil for a
-- scope without a rate). The buckets drain at the rates in force when the reservation was made
-- (its fields 10–13).
local function move_buckets(r, cur, requests, tokens)
  if cur.kb then move_pair(P .. NAME.key_buckets .. r[3], cur[cur.kb], tonumber(r[12]) or 0, tonumber(r[10]) or 0, requests, tokens) end
  if cur.pb then move_pair(P .. NAME.project_buckets .. r[4], cur[cur.pb], tonumber(r[13]) or 0, tonumber(r[11]) or 0, requests, tokens) end
end
-- A reservation is one string of space-separated fields (`ReservationRecord`): st exp kid
-- pid tok cost kw pw met ktr ptr krr prr at [atok acost [pin pout pcached]]; a CHECK priced
-- from the table writes '-' for atok and acost and the prices it used. Absent: an empty
-- table.
-- Fields are matched as `[^ ]+`, not `%S+`: a set costs Redis's Lua half what a class does.
local RECORD14 = '^([^ ]+) ([^ ]+) ([^ ]+) ([^ ]+) ([^ ]+) ([^ ]+) ([^ ]+) ([^ ]+) ([^ ]+) ([^ ]+) ([^ ]+) ([^ ]+) ([^ ]+) ([^ ]+)(.*)$'
-- A record from 2026-12-05 on, in one match: the 14 fields, what follows them up to the first
-- ' |' (actuals, prices), then the key's and the project's budget and the model.
local RECORD_TAILED = '^([^ ]+) ([^ ]+) ([^ ]+) ([^ ]+) ([^ ]+) ([^ ]+) ([^ ]+) ([^ ]+) ([^ ]+) ([^ ]+) ([^ ]+) ([^ ]+) ([^ ]+) ([^ ]+)(.-) |([^ ]+) ([^ ]+) (.*)$'
local OLD_FIELDS = {'st', 'exp', 'kid', 'pid', 'tok', 'cost', 'kw', 'pw', 'met', 'ktr', 'ptr', 'krr', 'prr', 'at', 'atok', 'acost'}
local function read_reservation(rkey)
  local r = {}
  local v = rpcall('GET', rkey)
  if type(v) == 'table' and v.err then
    -- Written as a hash by a bursard from before records were one string (an upgrade
    -- while it was open): the same fields, read by name; rewritten as a string.
    local h = rcall('HMGET', rkey, unpack(OLD_FIELDS))
    if h[1] and #h[1] > 0 then
      for i = 1, #OLD_FIELDS do
        if not h[i] then break end
        r[i] = h[i]
      end
    end
  elseif v then
    r = {string.match(v, RECORD_TAILED)}
    if r[1] then
      local rest, kb, pb, model = r[15], r[16], r[17], r[18]
      r[15], r[16], r[17], r[18] = nil, nil, nil, nil
      if rest ~= '' then
        for f in string.gmatch(rest, '[^ ]+') do r[#r + 1] = f end
      end
      r.tkb, r.tpb, r.model, r.kbudget, r.pbudget = kb, pb, model, tonumber(kb), tonumber(pb)
      return r
    end
    -- After the first ' |' (records from 2026-12-05 on): the key's and the project's budget
    -- at the CHECK and the model, kept as written. (A record that did not match above: a fence,
    -- or one from before 2026-12-05.)
    local bar = string.find(v, ' |', 1, true)
    local tail
    if bar then v, tail = string.sub(v, 1, bar - 1), string.sub(v, bar + 2) end
    -- The 14 fields every record of an admission has, in one match; then what follows.
    -- A fence ('void') does not match: its one field is read as the rest.
    r = {string.match(v, RECORD14)}
    local rest = v
    if r[1] then
      rest = r[15]
      r[15] = nil
    else
      r = {}
    end
    if rest ~= '' then
      for f in string.gmatch(rest, '[^ ]+') do r[#r + 1] = f end
    end
    if tail and r[1] then
      local kb, pb, model = string.match(tail, '^([^ ]+) ([^ ]+) (.*)$')
      if kb then
        r.tkb, r.tpb, r.model, r.kbudget, r.pbudget = kb, pb, model, tonumber(kb), tonumber(pb)
      else
        r.rawtail = tail
      end
    end
  end
  return r
end
-- Rewrites reservation `r` with status `st`, keeping its expiry.
local function write_reservation(rkey, r, st)
  r[1] = st
  local text = table.concat(r, ' ')
  if r.model then
    text = text .. ' |' .. r.tkb .. ' ' .. r.tpb .. ' ' .. r.model
  elseif r.rawtail then
    text = text .. ' |' .. r.rawtail
  end
  rcall('SET', rkey, text, 'KEEPTTL')
end
-- Everything a step on reservation `r` may write, read in one MGET before any write, so that on
-- a cluster node whose slot is migrating the step is refused before it writes (SPEC §13.10):
-- its spend windows and the credits (cur[1], cur[2], cur[3]), its history record (cur[4], when
-- `h`: history_of), and the key's and the project's rate buckets when the reservation moves
-- them at a rate (at cur[cur.kb] and cur[cur.pb]; a scope without one has none to move); a
-- history record not there yet, with its index (`history_read_new`).
local function read_counters(r, h)
  local names, n, kb, pb = {r[7], r[8], CREDITS}, 3, nil, nil
  if h then n = 4; names[4] = h[2] end
  if r[10] ~= '0' or r[12] ~= '0' then n = n + 1; names[n] = P .. NAME.key_buckets .. r[3]; kb = n end
  if r[11] ~= '0' or r[13] ~= '0' then n = n + 1; names[n] = P .. NAME.project_buckets .. r[4]; pb = n end
  local cur = rcall('MGET', unpack(names, 1, n))
  if h and not cur[4] then history_read_new(h[2], h[3]) end
  cur.kb, cur.pb = kb, pb
  return cur
end
-- Moves spend windows and credits by `amount` nano-USD (negative gives back); `cur`: what
-- read_counters read. A window counter it creates (one expired since) does not expire.
local function move_spend(r, cur, amount)
  if amount == 0 then return end
  add_counter(r[7], cur[1], amount, 0)
  add_counter(r[8], cur[2], amount, 0)
  if r[9] == '1' then add_counter(CREDITS, cur[3], -amount, 0) end
end
-- Voids the attempt under reservation sequence `seq` (SPEC §13.7): its client was told it
-- was refused, or never got an answer. If the CHECK ran and admitted, every counter it
-- moved is given back, its request included, and the reservation takes `state` ('void',
-- or 'swept' when a sweep did it for a dead bursard: a SETTLE may still come). If it has not
-- run, a fence is left under its id so that it never will (it finds the id taken). Settled
-- and released reservations stay as they are. Idempotent. Returns 1 if counters moved.
local function void_attempt(seq, state, fence_ms)
  local rkey = P .. NAME.reservation .. seq
  local r = read_reservation(rkey)
  local moved = 0
  if not r[1] then
    rcall('SET', rkey, 'void', 'PX', int(fence_ms))
  elseif r[1] == 'open' then
    local h = history_of(r)
    local cur = read_counters(r, h)
    move_buckets(r, cur, -1, -tonumber(r[5]))
    move_spend(r, cur, -tonumber(r[6]))
    history_finish(r, h, cur[4], 'void')
    write_reservation(rkey, r, state)
    moved = 1
  end
  rcall('SREM', P .. NAME.undelivered, seq)
  return moved
end
