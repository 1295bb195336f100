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
-- scope without a rate). The buckets drain at the rates in force when the reservation was made.
local function move_buckets(r, cur, requests, tokens)
  if cur.kb then move_pair(P .. NAME.key_buckets .. r.kid, cur[cur.kb], r.krr, r.ktr, requests, tokens) end
  if cur.pb then move_pair(P .. NAME.project_buckets .. r.pid, cur[cur.pb], r.prr, r.ptr, requests, tokens) end
end
-- A reservation, read (`read_reservation`) as a table of named fields: st (status word), exp,
-- kid, pid (text), tok, cost, kw, pw (the spend windows' names), met (boolean), ktr, ptr, krr,
-- prr (rates, 0: none), at, atok, acost (nil: not settled), pin, pout, pcached (nil: not priced
-- from the table), kbudget, pbudget (nil: none) and model (nil: a record from before 2026-12-05,
-- which keeps no history). Absent: an empty table; a fence: only st = 'void'.
-- Records are written packed (prelude.lua: RESERVATION_PACK). The text layouts of earlier
-- releases are read too (an upgrade with reservations open), and rewritten packed: one string
-- of space-separated fields, st exp kid pid tok cost kw pw met ktr ptr krr prr at [atok acost
-- [pin pout pcached]] (a CHECK priced from the table wrote '-' for atok and acost), from
-- 2026-12-05 on followed by ' |', the key's and the project's budget ('-': none) and the model;
-- before 2026-12-02, a hash of the same fields.
local function unpacked(v)
  local st, fl, exp, tok, cost, met, ktr, ptr, krr, prr, at, atok, acost, pin, pout, pc, kb, pb, kid, pid, kw, pw, model =
    struct.unpack(RESERVATION_FIELDS, v, 10)
  return {packed = true, fl = fl, st = RESERVATION_STATUS_NAME[st], exp = exp, kid = kid, pid = pid, tok = tok, cost = cost, kw = kw,
    pw = pw, met = met == 1, ktr = ktr, ptr = ptr, krr = krr, prr = prr, at = at,
    atok = atok >= 0 and atok or nil, acost = acost >= 0 and acost or nil,
    pin = pin >= 0 and pin or nil, pout = pout >= 0 and pout or nil, pcached = pc >= 0 and pc or nil,
    kbudget = kb >= 0 and kb or nil, pbudget = pb >= 0 and pb or nil, model = fl % 2 == 1 and model or nil}
end
-- The fields of a text record (or a hash's), f[1]…, as `unpacked` has them; `model` and the
-- budgets from its tail (nil: none).
local function from_fields(f, kb, pb, model)
  if not f[2] then return {st = f[1]} end
  return {st = f[1], exp = tonumber(f[2]), kid = f[3], pid = f[4], tok = tonumber(f[5]), cost = tonumber(f[6]),
    kw = f[7], pw = f[8], met = f[9] == '1', ktr = num(f[10]) or 0, ptr = num(f[11]) or 0, krr = num(f[12]) or 0,
    prr = num(f[13]) or 0, at = tonumber(f[14]), atok = tonumber(f[15]), acost = tonumber(f[16]),
    pin = tonumber(f[17]), pout = tonumber(f[18]), pcached = tonumber(f[19]),
    kbudget = tonumber(kb), pbudget = tonumber(pb), model = model}
end
local OLD_FIELDS = {'st', 'exp', 'kid', 'pid', 'tok', 'cost', 'kw', 'pw', 'met', 'ktr', 'ptr', 'krr', 'prr', 'at', 'atok', 'acost'}
local function read_reservation(rkey)
  local v = rpcall('GET', rkey)
  if not v then return {} end
  if type(v) == 'string' then
    if string.byte(v, 1) == 112 then return unpacked(v) end
    local tail, kb, pb, model
    local bar = string.find(v, ' |', 1, true)
    if bar then
      v, tail = string.sub(v, 1, bar - 1), string.sub(v, bar + 2)
      kb, pb, model = string.match(tail, '^([^ ]+) ([^ ]+) (.*)$')
    end
    local f = {}
    for x in string.gmatch(v, '[^ ]+') do f[#f + 1] = x end
    return from_fields(f, kb, pb, model)
  end
  if not v.err then return {} end
  -- Written as a hash by a bursard from before records were one string (an upgrade while it
  -- was open): the same fields, read by name.
  local h = rcall('HMGET', rkey, unpack(OLD_FIELDS))
  if not h[1] or #h[1] == 0 then return {} end
  local f = {}
  for i = 1, #OLD_FIELDS do
    if not h[i] then break end
    f[i] = h[i]
  end
  return from_fields(f)
end
-- Gives reservation `r` status `st`, keeping its expiry; `actuals`: its actual tokens and cost
-- (r.atok, r.acost) are new too (a SETTLE). A packed record changes in place with one SETRANGE:
-- its status byte, or with `actuals` the fields from the status to the actual cost
-- (RESERVATION_HEAD, 83 bytes) — where rewriting it made the whole record again, its names
-- included, and sent all of it to the AOF and the replicas. A record of an earlier layout is
-- rewritten whole, packed.
local function write_reservation(rkey, r, st, actuals)
  r.st = st
  if r.packed then
    if actuals then
      rcall('SETRANGE', rkey, RESERVATION_STATUS_AT, struct.pack(RESERVATION_HEAD_PACK, RESERVATION_STATUS[st], r.fl,
        r.exp, r.tok, r.cost, r.met and 1 or 0, r.ktr, r.ptr, r.krr, r.prr, r.at, r.atok, r.acost))
    else
      rcall('SETRANGE', rkey, RESERVATION_STATUS_AT, string.char(RESERVATION_STATUS[st]))
    end
    return
  end
  local model = r.model or ''
  rcall('SET', rkey, struct.pack(RESERVATION_PACK, RESERVATION_MARK, RESERVATION_STATUS[st], r.model and 1 or 0,
    r.exp, r.tok, r.cost, r.met and 1 or 0, r.ktr, r.ptr, r.krr, r.prr, r.at, r.atok or -1, r.acost or -1,
    r.pin or -1, r.pout or -1, r.pcached or -1, r.kbudget or -1, r.pbudget or -1,
    #r.kid, r.kid, #r.pid, r.pid, #r.kw, r.kw, #r.pw, r.pw, #model, model), 'KEEPTTL')
end
-- Everything a step on reservation `r` may write, read in one MGET before any write, so that on
-- a cluster node whose slot is migrating the step is refused before it writes (SPEC §13.10):
-- its spend windows and the credits (cur[1], cur[2], cur[3]), its history record (cur[4], when
-- `h`: history_of), and the key's and the project's rate buckets when the reservation moves
-- them at a rate (at cur[cur.kb] and cur[cur.pb]; a scope without one has none to move); a
-- history record not there yet, with its index (`history_read_new`).
local function read_counters(r, h)
  local names, n, kb, pb = {r.kw, r.pw, CREDITS}, 3, nil, nil
  if h then n = 4; names[4] = h[2] end
  if r.ktr ~= 0 or r.krr ~= 0 then n = n + 1; names[n] = P .. NAME.key_buckets .. r.kid; kb = n end
  if r.ptr ~= 0 or r.prr ~= 0 then n = n + 1; names[n] = P .. NAME.project_buckets .. r.pid; pb = n end
  local cur = rcall('MGET', unpack(names, 1, n))
  if h and not cur[4] then history_read_new(h[2], h[3]) end
  cur.kb, cur.pb = kb, pb
  return cur
end
-- Moves spend windows and credits by `amount` nano-USD (negative gives back); `cur`: what
-- read_counters read. A window counter it creates (one expired since) does not expire.
local function move_spend(r, cur, amount)
  if amount == 0 then return end
  add_counter(r.kw, cur[1], amount, 0)
  add_counter(r.pw, cur[2], amount, 0)
  if r.met then add_counter(CREDITS, cur[3], -amount, 0) end
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
  if not r.st then
    rcall('SET', rkey, 'void', 'PX', int(fence_ms))
  elseif r.st == 'open' then
    local h = history_of(r)
    local cur = read_counters(r, h)
    move_buckets(r, cur, -1, -r.tok)
    move_spend(r, cur, -r.cost)
    history_finish(r, h, cur[4], 'void')
    write_reservation(rkey, r, state)
    moved = 1
  end
  rcall('SREM', P .. NAME.undelivered, seq)
  return moved
end
