-- Usage history (SPEC §13.13): what CHECK, SETTLE, RELEASE, VOID and SWEEP moved, kept per UTC day,
-- key and model, written in the same atomic step as the counters it mirrors, so for every day a
-- key's and a project's history equals what their spend windows were debited for that day.
--
-- One record per (day, key, model): `h:<day>:<key>:<model>`, day = days since 1970-01-01 UTC. A
-- string of signed 64-bit big-endian slots (HistorySlot): admitted, settled, released, settled
-- tokens, settled spend, open requests, open tokens, open spend, then the denials of reason r at
-- slot 7 + r (DenyReason 1…15): 64 bytes without denials. A step that admits or finishes a request
-- moves the first eight from the value its MGET read and writes the record back with one SET
-- (`history_add`); a denial moves its slot with one BITFIELD, which grows the string only to the
-- highest slot written. A request belongs to the day of its CHECK;
-- its SETTLE or RELEASE moves that day's record however much later it comes, as the spend
-- windows do. Open means admitted and neither settled nor released: an expired reservation
-- stays open, as its estimate stays in the spend windows.
--
-- The day's index `hx:<day>` holds each record's "<project>:<key>:<model>"; record and index
-- expire HISTORY.retention_ms after the day ends. Both are written when a record's admitted or
-- a denial slot becomes 1, so a day's first request of a key and model pays two more calls.
-- The first eight slots, as Redis's `struct` library reads and writes them: one C call each way,
-- no string made per slot. Lua's numbers hold whole numbers exactly up to 2^53 − 1, as the
-- steps' money does (a request's cost is at most that, SPEC §13.12): a record's slot is exact up
-- to 9,007,199 USD of one key and model on one day.
local SLOTS8 = '>i8i8i8i8i8i8i8i8'
local ZERO_SLOTS = nil
-- Moves the first eight slots of `record`, which this step's MGET read as `v` (false: new), by
-- the deltas (admitted, settled, released, tokens, spend, open, open tokens, open spend), and
-- writes it with one SET that keeps its expiry; the denial slots after them are kept as they are.
-- A BITFIELD of four to seven INCRBYs did this before: Redis moves a bitfield bit by bit, and
-- each of its arguments crosses the bridge.
local function history_add(record, v, a, s, r, t, sp, o, ot, os)
  if not v then
    ZERO_SLOTS = ZERO_SLOTS or string.rep('\0', 64)
    v = ZERO_SLOTS
  elseif #v < 64 then
    v = v .. string.rep('\0', 64 - #v)
  end
  local a0, s0, r0, t0, sp0, o0, ot0, os0 = struct.unpack(SLOTS8, v)
  local slots = struct.pack(SLOTS8, a0 + a, s0 + s, r0 + r, t0 + t, sp0 + sp, o0 + o, ot0 + ot, os0 + os)
  if #v > 64 then slots = slots .. string.sub(v, 65) end
  rcall('SET', record, slots, 'KEEPTTL')
end
-- The record and the index of `day` (decimal text) for a key and model. Every step reads the
-- record in the MGET that reads its counters, before it writes anything, so on a cluster node
-- whose slot is migrating it is refused before it writes (SPEC §13.10); an absent record is new,
-- and its index is read then too (`history_read_new`).
local function history_record(day, kid, model)
  return P .. NAME.history .. day .. ':' .. kid .. ':' .. model
end
local function history_names(day, kid, model)
  return history_record(day, kid, model), P .. NAME.history_index .. day
end
-- The day of Unix µs `us` (days since 1970-01-01 UTC).
local function history_day(us) return math.floor(us / 86400000000) end
-- Today (the call's now) and its index, made once per call (`start_call` forgets them).
local function history_today()
  if not TODAY then
    TODAY_NUM = history_day(now_us)
    TODAY = int(TODAY_NUM)
    TODAY_INDEX = P .. NAME.history_index .. TODAY
  end
  return TODAY, TODAY_INDEX
end
-- A record the step's MGET found absent is new, and its first write is also its index's: both
-- are read now, before anything is written, in a multi-key read (a node whose slot is migrating
-- or importing refuses one that lacks a key, where it would serve a single-key read of it).
local function history_read_new(record, index)
  rcall('MGET', record, index)
end
-- Indexes a new record and sets both expiries.
local function history_index(day, pid, kid, model, record, index)
  local until_ms = int((tonumber(day) + 1) * 86400000 + HISTORY.retention_ms)
  rcall('SADD', index, pid .. ':' .. kid .. ':' .. model)
  rcall('PEXPIREAT', index, until_ms)
  rcall('PEXPIREAT', record, until_ms)
end
-- A CHECK admitted `tokens` and `cost` (numbers) now into `record` of `day`
-- (history_names; `existed`: what the MGET read of it).
local function history_admit(day, record, index, existed, pid, kid, model, tokens, cost)
  history_add(record, existed, 1, 0, 0, 0, 0, 1, tokens, cost)
  if not existed then history_index(day, pid, kid, model, record, index) end
end
-- A CHECK denied for `reason` now, `record` of `day` read as `existed` (history_names).
local function history_denied(day, record, index, existed, pid, kid, model, reason)
  rcall('BITFIELD', record, 'INCRBY', 'i64', '#' .. (7 + reason), '1')
  if not existed then history_index(day, pid, kid, model, record, index) end
end
-- A CHECK denied for `reason` before it read its counters: the record is read here. A model the
-- key may not use is not kept (its name is the caller's): such denials are recorded under the
-- empty model.
local function history_deny(pid, kid, model, reason)
  if reason == DENY.model_not_allowed then model = '' end
  local day, index = history_today()
  local record = history_record(day, kid, model)
  history_denied(day, record, index, rcall('MGET', record, index)[1], pid, kid, model, reason)
end
-- The record of reservation `r` (read_reservation): the day of its CHECK, the record and the
-- index; nil for a record of a reservation made before 2026-12-05 (no model: its CHECK wrote no
-- history, so neither does what follows it).
local function history_of(r)
  if not r.model then return nil end
  local today, index = history_today()
  local day = history_day(r.at)
  -- Mostly today's: its names are made once per call.
  if day == TODAY_NUM then return {today, history_record(today, r.kid, r.model), index} end
  day = int(day)
  local record
  record, index = history_names(day, r.kid, r.model)
  return {day, record, index}
end
-- Reservation `r` with history `h` (history_of; `existed`: the MGET's read of its record) was
-- settled (`mode` 'settle', actual `tokens` and `cost`), released, or given back (`mode`
-- 'void'). Swept before (its counters given back, SPEC §13.7), a SETTLE or RELEASE admits it again.
local function history_finish(r, h, existed, mode, tokens, cost)
  if not h then return end
  local record = h[2]
  if r.st == 'swept' then
    if mode == 'settle' then
      history_add(record, existed, 1, 1, 0, tokens, cost, 0, 0, 0)
    else
      history_add(record, existed, 1, 0, 1, 0, 0, 0, 0, 0)
    end
  else
    local otok, ocost = -r.tok, -r.cost
    if mode == 'settle' then
      history_add(record, existed, 0, 1, 0, tokens, cost, -1, otok, ocost)
    elseif mode == 'release' then
      history_add(record, existed, 0, 0, 1, 0, 0, -1, otok, ocost)
    else
      history_add(record, existed, -1, 0, 0, 0, 0, -1, otok, ocost)
    end
  end
  if not existed then history_index(h[1], r.pid, r.kid, r.model, record, h[3]) end
end

-- Budget alerts (SPEC §13.13): a key's or a project's window spend reaching 50, 80 or 100 % of
-- its budget is recorded once per window: a marker `<window counter>:a<pct>` holding when
-- (it expires with the window's counter) and an audit entry by `bursard`. The crossings are
-- planned before anything is written and their markers read then (SPEC §13.10); the step's
-- reply carries them as bits: 1, 2, 4 for the key's 50/80/100 %; 8, 16, 32 for the project's.
local ALERT_PCT = {50, 80, 100}
-- The crossings of a spend moving from `before` to `after` against `budget` (nil: none), as a
-- plan {counter, pct, bit, target} appended to `plan`, the target `kind .. id` (made only for a
-- crossing); nothing is read or written.
local function plan_alerts(plan, counter, budget, before, after, kind, id, shift)
  if not budget or budget <= 0 or after <= before then return plan end
  for i = 1, 3 do
    local p = ALERT_PCT[i]
    if after * 100 >= budget * p and before * 100 < budget * p then
      plan = plan or {}
      plan[#plan + 1] = {counter, p, 2 ^ (shift + i - 1), kind .. id}
    end
  end
  return plan
end
-- Reads the plan's markers and the audit log (before any write): the entries not recorded yet.
local function read_alerts(plan)
  if not plan then return nil end
  local names = {P .. NAME.audit}
  for i = 1, #plan do names[i + 1] = plan[i][1] .. ':a' .. plan[i][2] end
  local seen = rcall('MGET', unpack(names))
  local due = {}
  for i = 1, #plan do
    if not seen[i + 1] then due[#due + 1] = plan[i] end
  end
  return due
end
-- Records the due alerts (read_alerts); `expire_at`: when each counter's own expiry falls, by
-- counter name (absent: counter_expiry; 0: never). Returns their bits.
local function write_alerts(due, expire_at)
  if not due then return 0 end
  local bits = 0
  for i = 1, #due do
    local a = due[i]
    local at = expire_at and expire_at[a[1]] or counter_expiry(a[1])
    local marker = a[1] .. ':a' .. a[2]
    if at > 0 then
      rcall('SET', marker, int(now_ms), 'PXAT', int(at))
    else
      rcall('SET', marker, int(now_ms))
    end
    rcall('XADD', P .. NAME.audit, 'MAXLEN', '~', AUDIT.capacity, '*', 'actor', 'bursard',
      'action', 'budget.' .. a[2], 'target', a[4], 'outcome', 'ok')
    bits = bits + a[3]
  end
  return bits
end
