-- The prelude of every limiter and usage step: the organization's prefix, the clock (one TIME
-- per call, read by `start_call`), integer formatting, the calendar windows, the rate buckets'
-- arithmetic and the price table's (MinuteBucket's, in the same integers). `NAME.x`, `DENY.x`,
-- `OUTCOME.x`, `STATUS.x`, `BUCKET.x` and `CLOCK.test` are replaced by their values when the
-- script is loaded (LuaSource), from the one Swift definition of each (Keyspace.Segment,
-- DenyReason, CheckOutcome, ReservationStatus, MinuteBucket, ScriptClock).
--
-- The top level of every file a library is made of only defines: constants, tables and
-- functions, and the call's state as locals that `start_call` sets. A library's top level runs
-- once, at FUNCTION LOAD, where only `redis` is in scope (not even `string`), and each FCALL runs
-- its `main` (main-single.lua, main-batch.lua; LuaSource.library). A script's top level runs on
-- every call (EVALSHA): the file that does its work (void.lua, sweep.lua, usage-*.lua) begins
-- with `start_call(ARGV)`. Either way a call begins so before it reads any of that state.
local SCALE = BUCKET.scale
local LEVEL_MAX = BUCKET.max_level
-- The call's clock: Redis's TIME in µs and ms, read once per call.
local now_us, now_ms
-- A frozen clock does not move with real time, but key expiry does: under a frozen clock a
-- drained-empty bucket must not vanish early in real time, so its expiry gets a floor.
local EXPIRY_FLOOR_MS = 0
-- A whole number as decimal text. Every number a step hands to rcall or puts in a key
-- name goes through it: Redis turns a Lua number argument into text with "%.17g" and Lua
-- concatenation with "%.14g", both floating-point printing, several times the cost of an
-- integer format, on every call. (`string.format`, taken by `start_call`: a library's top level
-- cannot read `string`.)
local sfmt
local function int(x) return sfmt('%d', x) end

local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end
local function civil_from_days(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end
-- The calendar window of `period` holding now: start and end in Unix ms (0, 0 = lifetime).
local function window_now(period)
  local day = math.floor(now_ms / 86400000)
  if period == 'daily' then return day * 86400000, (day + 1) * 86400000 end
  if period == 'weekly' then
    local monday = day - ((day + 3) % 7)
    return monday * 86400000, (monday + 7) * 86400000
  end
  if period == 'monthly' then
    local y, m = civil_from_days(day)
    local s = days_from_civil(y, m, 1)
    local e
    if m == 12 then e = days_from_civil(y + 1, 1, 1) else e = days_from_civil(y, m + 1, 1) end
    return s * 86400000, e * 86400000
  end
  return 0, 0
end
-- `window_now`, and the start as decimal text (a window counter's name ends with it),
-- worked out once per call (`start_call` empties it): every step of a batch runs at the same now.
local WINDOWS = {}
local function window(period)
  local w = WINDOWS[period]
  if not w then
    local s, e = window_now(period)
    w = {s, e, int(s)}
    WINDOWS[period] = w
  end
  return w[1], w[2], w[3]
end
-- A bucket's scaled level at now, drained at `rate` units per minute.
local function drained(level, updated, rate)
  local el = now_us - updated
  if el <= 0 then return level end
  local drain = el * rate
  if drain >= level then return 0 end
  return level - drain
end
-- A key's (or a project's) two rate buckets are one string, "rpm_level:rpm_updated_us:
-- tpm_level:tpm_updated_us:drained_at_us" (absent = both empty), so a step reads and writes
-- each scope's buckets with one key: s[1], s[2] the RPM bucket, s[3], s[4] the TPM bucket,
-- s[5] when the later of them drains empty at the rate it was last written with. %d keeps
-- all 16 digits (tostring would keep 14). Read with a set pattern and Lua's own coercion (`+ 0`):
-- in Redis's Lua, `%d` and `tonumber` cost twice as much, on every step.
local function parse_pair(v)
  if not v then return {0, now_us, 0, now_us, 0} end
  local a, b, c, d, e = string.match(v, '^([^:]+):([^:]+):([^:]+):([^:]+):([^:]+)$')
  return {a + 0, b + 0, c + 0, d + 0, e + 0}
end
-- The pair of a scope with neither rate (check.lua): nothing to parse; never written.
local NO_PAIR = {0, 0, 0, 0, 0}
-- Sets the bucket at s[i] (1: RPM, 3: TPM) to `level` now, draining at `rate`.
local function set_level(s, i, level, rate)
  if level > LEVEL_MAX then level = LEVEL_MAX end
  if level < 0 then level = 0 end
  s[i], s[i + 1] = level, now_us
  local e = now_us + math.ceil(level / rate)
  if e > s[5] then s[5] = e end
end
-- Writes a pair; it expires when both buckets have drained empty (never earlier: a bucket
-- not moved keeps the drain time it was written with). Both empty: deleted.
local function write_pair(bkey, s)
  if s[1] == 0 and s[3] == 0 then
    rcall('DEL', bkey)
    return
  end
  rcall('SET', bkey, sfmt('%d:%d:%d:%d:%d', s[1], s[2], s[3], s[4], s[5]),
    'PX', int(math.max(math.ceil((s[5] - now_us) / 1000) + 1000, 1000, EXPIRY_FLOOR_MS)))
end
-- The rate buckets' pairs, written behind within one script call as the money counters are
-- (below, and SPEC §13.11): in a batch (`PAIRS` on, main-batch.lua) a pair a step stores is kept
-- here, by name, and written once by `flush_counters` after the call's last step; a later step
-- of the call reads it from here (`read_pair`), not from its own MGET. A pair stored empty is
-- kept as `false`, and reads as an absent one, as it would after its DEL. Every step of a call
-- runs at the same now, so the one write leaves what step-by-step writes would have left, its
-- expiry included. Off (nil) in every other call: a pair is written at once. (`PAIRS` is
-- declared in org.lua: compiled-record.lua reads it, in scripts without this file too.)
local PAIR_NAMES = nil
-- The pair `bkey` at now, which this step's MGET read as `v`: an earlier step's of this call
-- (a copy: a step changes the table it is given), or the stored one.
local function read_pair(bkey, v)
  local e = PAIRS and PAIRS[bkey]
  if e == nil then return parse_pair(v) end
  if not e then return parse_pair(nil) end
  return {e[1], e[2], e[3], e[4], e[5]}
end
-- Stores pair `s` under `bkey`: at once, or behind (`PAIRS`).
local function store_pair(bkey, s)
  if not PAIRS then return write_pair(bkey, s) end
  if PAIRS[bkey] == nil then PAIR_NAMES[#PAIR_NAMES + 1] = bkey end
  if s[1] == 0 and s[3] == 0 then PAIRS[bkey] = false else PAIRS[bkey] = s end
end
-- The money counters (spend windows and credits), written behind within one script call
-- (SPEC §13.11). Several steps of one organization in one call mostly move the same few
-- counters (its credits, its projects' windows); main-batch.lua turns `WB` on, and each counter
-- a step moves is then kept here and written once, by `flush_counters` after the call's last
-- step, as one INCRBY of the call's net amount. Nothing else can run between the steps of one
-- call, so what Redis holds at its end is what step-by-step writes would have left, and each
-- step reads a counter an earlier step moved from here, not from its own MGET. A step that
-- raised an error keeps what it had moved, as its immediate writes would. Off (nil) in every
-- other call (`start_call` turns it off): a write goes to Redis at once.
local WB, WB_NAMES = nil, nil
-- Names every step of a call shares, made once per call (`start_call`): the organization's
-- credits counter, and today's day of the usage history (history.lua: `history_today`).
local CREDITS, TODAY, TODAY_INDEX, TODAY_NUM
-- A step's argument `A[i]`, or nil past its last one, `A[last]` (check.lua's `step`): in a batch
-- the next request's arguments follow.
local function arg(A, i, last)
  if i <= last then return A[i] end
end
-- Begins a call: the organization's prefix (`argv[1]`), the clock, and no state left from an
-- earlier call of the same library.
local function start_call(argv)
  bind_lua()
  sfmt = string.format
  P = argv[1]
  CREDITS = P .. NAME.credits
  TODAY, TODAY_INDEX = nil, nil
  local t = rcall('TIME')
  now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  EXPIRY_FLOOR_MS = 0
  if CLOCK.test then
    -- Tests only (ScriptClock.testFrozen): the time in µs stored at the org's test clock key.
    now_us = tonumber(rcall('GET', P .. NAME.test_clock)) or now_us
    EXPIRY_FLOOR_MS = 600000
  end
  now_ms = math.floor(now_us / 1000)
  WINDOWS = {}
  WB, WB_NAMES = nil, nil
  PAIRS, PAIR_NAMES = nil, nil
end
-- A counter's value now: an earlier step's of this call, or what this step's MGET read (`read`).
local function counter(name, read)
  local e = WB and WB[name]
  if e then return e.v end
  return tonumber(read) or 0
end
-- Adds `amount` (a whole number) to counter `name`, which this step's MGET read as `read`
-- (nil: absent), and returns its new value. A counter it creates expires at `expire_at` (ms;
-- 0: never).
local function add_counter(name, read, amount, expire_at)
  if WB then
    local e = WB[name]
    if not e then
      e = {v = tonumber(read) or 0, d = 0, new = not read, at = expire_at}
      WB[name] = e
      WB_NAMES[#WB_NAMES + 1] = name
    end
    e.v, e.d = e.v + amount, e.d + amount
    return e.v
  end
  local v = rcall('INCRBY', name, int(amount))
  if not read and expire_at > 0 then rcall('PEXPIREAT', name, int(expire_at)) end
  return v
end
-- When counter `name` expires (ms; 0: never), for a marker that must expire with it: set by
-- this call if it made the counter, else read with PTTL.
local function counter_expiry(name)
  local e = WB and WB[name]
  if e and e.new then return e.at end
  local pttl = rcall('PTTL', name)
  return pttl > 0 and now_ms + pttl or 0
end
-- Writes what `WB` and `PAIRS` hold (main-batch.lua, after the last step).
local function flush_counters()
  if PAIRS then
    for i = 1, #PAIR_NAMES do
      local name = PAIR_NAMES[i]
      write_pair(name, PAIRS[name] or NO_PAIR)
    end
  end
  if not WB then return end
  for i = 1, #WB_NAMES do
    local name = WB_NAMES[i]
    local e = WB[name]
    if e.d ~= 0 or e.new then
      rcall('INCRBY', name, int(e.d))
      if e.new and e.at > 0 then rcall('PEXPIREAT', name, int(e.at)) end
    end
  end
end
-- A price table's price (SPEC §13.12): ⌈tokens × per_million / 10⁶⌉ nano-USD, at most
-- 2^53 − 1 (ModelPrice.part). tokens × r stays below 2^53, so the division is exact enough
-- for ceil.
local MAX_COST = 9007199254740991
local function price_part(tokens, per_million)
  if tokens <= 0 or per_million <= 0 then return 0 end
  local q = math.floor(per_million / 1000000)
  local r = per_million - q * 1000000
  local v = tokens * q + math.ceil(tokens * r / 1000000)
  if v > MAX_COST then return MAX_COST end
  return v
end
-- A request's cost: each kind of token priced on its own, summed (ModelPrice.cost).
local function price_cost(input, output, cached, pin, pout, pcached)
  local v = price_part(input, pin) + price_part(output, pout) + price_part(cached, pcached)
  if v > MAX_COST then return MAX_COST end
  return v
end
-- A reservation record (`ReservationRecord`, SPEC §13.1), as the CHECK writes it and every step
-- on it rewrites it: `RESERVATION_MARK`, then its fields packed by Redis's `struct` library, one
-- C call each way, every number read as a number (no string made per field, no pattern):
--   status (B: `RESERVATION_STATUS`), flags (B: 1 = it has a model, and so a usage history
--   record), expiry (Unix ms), reserved tokens, reserved cost, metered (B: 1/0), the key's and
--   the project's TPM and RPM at the CHECK (0: none), made at (Unix µs), the actual tokens and
--   cost once settled (−1: not yet), the prices a CHECK priced from the table used, input,
--   output and cached input (−1: not priced from the table), the key's and the project's budget
--   at the CHECK (−1: none), all signed 64-bit big-endian; then the key id, the project id, the
--   key's and the project's spend-window counters (full names) and the model, each a 16-bit
--   length and its bytes.
-- The mark is two words an older bursard reads as a status it does not know and an expiry that
-- is not a number: its SETTLE and RELEASE raise an error (a store error; the gateway retries
-- with the same reservation id, SPEC §11.4) rather than misread the bytes. No text record
-- begins with 'p' (reservation.lua reads those too).
-- `RESERVATION_PACK` writes the mark and the fields; `RESERVATION_FIELDS` reads the fields after it.
local RESERVATION_MARK = 'packed - '
-- `RESERVATION_HEAD`: the fields from the status to the actual cost, the part of a record a step
-- on it changes (reservation.lua: `write_reservation`), bytes 9…91, right after the mark.
local RESERVATION_HEAD = 'BBi8i8i8Bi8i8i8i8i8i8i8'
local RESERVATION_BODY = RESERVATION_HEAD .. 'i8i8i8i8i8Hc0Hc0Hc0Hc0Hc0'
local RESERVATION_HEAD_PACK = '>' .. RESERVATION_HEAD
-- Where the head (its status byte first) begins, 0-based as SETRANGE counts: after the mark. Text,
-- as every number a step hands to rcall is (`int`); `..` works at a library's top level.
local RESERVATION_STATUS_AT = '' .. #RESERVATION_MARK
local RESERVATION_FIELDS = '>' .. RESERVATION_BODY
local RESERVATION_PACK = '>c9' .. RESERVATION_BODY
local RESERVATION_STATUS = {open = 1, settled = 2, released = 3, expired = 4, swept = 5, void = 6}
local RESERVATION_STATUS_NAME = {'open', 'settled', 'released', 'expired', 'swept', 'void'}
