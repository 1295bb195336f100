-- The key's compiled record (SPEC §13.1): everything a CHECK needs besides the key's digest,
-- derived from the key's own fields and the organization, project, user and membership hashes,
-- and written into the key hash as one field, `x`, so a CHECK reads one hash instead of five and,
-- of it, two fields (`digest`, `x`). Every metadata write that changes what it is derived from
-- recompiles the keys it concerns in the same MULTI/EXEC (MetadataStore.transaction(_:recompile:));
-- a key without `x` of this layout (written before compiled records existed, with the eleven `x…`
-- fields of the layout before 2026-12-03, or with the `2 …` record before 2026-12-05) is compiled
-- by its first CHECK, which drops the oldest fields.
--
-- `x` is the byte '4' and then, packed by Redis's `struct` library (one C call each way, every
-- number read as a number, no pattern and no string per field): gate and met (one byte each),
-- rpm, tpm, bud, prpm, ptpm, pbud, pnm, gnm, knm, expires (signed 64-bit big-endian; a limit of
-- −1: none), period (one byte: `PERIOD_CODE`), flags (signed 64-bit), then project and user (a
-- 16-bit length and the id's decimal text). `gate`: the deny reason of the first standing
-- condition of SPEC §9 steps 2 and 4-6 that fails, leaving out the key's expiry, which depends
-- on the time (key_revoked, org_suspended, project_inactive, creator_lost_access), or 0; `met`:
-- the org is metered (1/0); `rpm`/`tpm`/`bud`: the key's caps tightened by its creator's grant;
-- `prpm`/`ptpm`/`pbud`: the project's; `pnm`/`gnm`/`knm`: the sizes of the project's, the
-- grant's and the key's model lists (0 = no list); `expires`: the key's expiry (Unix ms, 0 =
-- none); `period`: its spend window; `flags`: its CHECK_RESULT flags; `project`, `user`: its
-- project and its creator. (Until the packed layout, `x` was the text "3 gate met rpm … user",
-- '-' for no limit; such a record is compiled anew by the key's next CHECK.)
-- `X_PACK` writes the byte '4' and the fields; `X_FIELDS` reads the fields after it.
local X_BODY = 'BBi8i8i8i8i8i8i8i8i8i8Bi8Hc0Hc0'
local X_PACK = '>c1' .. X_BODY
local X_FIELDS = '>' .. X_BODY
local PERIOD_CODE = {daily = 1, weekly = 2, monthly = 3, lifetime = 4}
local PERIOD_NAME = {'daily', 'weekly', 'monthly', 'lifetime'}
-- A packed limit: −1 is none (nil).
local function limit(v)
  if v >= 0 then return v end
end
-- The sixteen values of a compiled record `x` (the numbers as numbers, a limit nil for none,
-- the period as its name, project and user as text); nothing if there is none of this layout.
local function compiled(x)
  if not x or string.byte(x, 1) ~= 52 then return end
  local gate, met, rpm, tpm, bud, prpm, ptpm, pbud, pnm, gnm, knm, expires, period, flags, pid, uid = struct.unpack(X_FIELDS, x, 2)
  return gate, met, limit(rpm), limit(tpm), limit(bud), limit(prpm), limit(ptpm), limit(pbud), pnm, gnm, knm, expires,
    PERIOD_NAME[period] or 'monthly', flags, pid, uid
end
local OLD_COMPILED = {'xv', 'xgate', 'xmet', 'xrpm', 'xtpm', 'xbud', 'xprpm', 'xptpm', 'xpbud', 'xpnm', 'xgnm'}
local function count(v)
  return tonumber(v) or 0
end
-- The compiled record of key `kid` (its field `x`), derived from the key, the
-- organization, the project, the creator's role and member grant; nil if the key does not
-- exist. Then whether the key still carries the eleven `x…` fields of the earlier layout, and
-- its project.
-- The one place a key's caps are tightened by its creator's grant: CHECK reads the result,
-- the usage scripts read it too.
local function derive_record(kid)
  local k = rcall('HMGET', P .. NAME.key .. kid, 'project', 'user', 'rpm', 'tpm', 'budget', 'xv',
    'status', 'nm', 'expires', 'period', 'flags')
  if not k[1] then return nil end
  local pid, uid = k[1], k[2]
  local o = rcall('HMGET', P .. NAME.org, 'status', 'metered')
  local p = rcall('HMGET', P .. NAME.project .. pid, 'status', 'rpm', 'tpm', 'budget', 'nm')
  local role = rcall('HGET', P .. NAME.user .. uid, 'role')
  local g = nil
  if role == 'member' then
    g = rcall('HMGET', P .. NAME.membership .. pid .. ':' .. uid, 'role', 'rpm', 'tpm', 'spend', 'nm')
    if not g[1] then g = nil end
  end
  local gate = DENY.none
  if k[7] ~= 'active' then gate = DENY.key_revoked
  elseif o[1] ~= 'active' then gate = DENY.org_suspended
  elseif p[1] ~= 'active' then gate = DENY.project_inactive
  elseif role ~= 'owner' and not g then gate = DENY.creator_lost_access end
  local rpm, tpm, bud = num(k[3]), num(k[4]), num(k[5])
  if g then
    rpm = tighter(rpm, num(g[2]))
    tpm = tighter(tpm, num(g[3]))
    bud = tighter(bud, num(g[4]))
  end
  return struct.pack(X_PACK, '4', gate, o[2] == '1' and 1 or 0, rpm or -1, tpm or -1, bud or -1,
    num(p[2]) or -1, num(p[3]) or -1, num(p[4]) or -1, count(p[5]), g and count(g[5]) or 0, count(k[8]), count(k[9]),
    PERIOD_CODE[k[10]] or 3, count(k[11]), #pid, pid, #uid, uid), k[6] ~= false, pid
end
-- A scope's rate buckets drain at the rates in force when a CHECK reads them, but their key's
-- expiry was set for the rates it was written with. When the rates are lowered (`rr`, `tr`; nil:
-- no limit), the pair must live until its levels drain at the new ones, or it would vanish
-- early and the lowered limit start from empty: its drain time (field 5) and its expiry move
-- later by the difference. Never earlier.
-- The time the levels a, c (written at b, d) drain empty at rates rr, tr, or at e if later.
local function drains_at(a, b, c, d, e, rr, tr)
  local drains = e
  if rr and a > 0 then drains = math.max(drains, b + math.ceil(a / rr)) end
  if tr and c > 0 then drains = math.max(drains, d + math.ceil(c / tr)) end
  return drains
end
local function keep_pair(bkey, rr, tr)
  local kept = PAIRS and PAIRS[bkey]
  if kept ~= nil then
    -- Written behind by an earlier step of this batch (prelude.lua: PAIRS): its drain time moves
    -- here, and its expiry with it when it is written.
    if kept then kept[5] = drains_at(kept[1], kept[2], kept[3], kept[4], kept[5], rr, tr) end
    return
  end
  local v = rcall('GET', bkey)
  if not v then return end
  local a, b, c, d, e = string.match(v, '^(%d+):(%d+):(%d+):(%d+):(%d+)$')
  if not a then return end
  a, b, c, d, e = tonumber(a), tonumber(b), tonumber(c), tonumber(d), tonumber(e)
  local drains = drains_at(a, b, c, d, e, rr, tr)
  if drains <= e then return end
  local ttl = rcall('PTTL', bkey)
  if ttl < 0 then return end
  rcall('SET', bkey, string.format('%d:%d:%d:%d:%d', a, b, c, d, drains),
    'PX', string.format('%d', ttl + math.ceil((drains - e) / 1000)))
end
-- Writes key `kid`'s compiled record (and drops the earlier layout's fields), and keeps its and
-- its project's rate buckets as long as the rates now in force need them.
local function compile_key(kid)
  local x, old, pid = derive_record(kid)
  if not x then return end
  local kh = P .. NAME.key .. kid
  rcall('HSET', kh, 'x', x)
  if old then rcall('HDEL', kh, unpack(OLD_COMPILED)) end
  local _, _, rpm, tpm, _, prpm, ptpm = compiled(x)
  keep_pair(P .. NAME.key_buckets .. kid, rpm, tpm)
  keep_pair(P .. NAME.project_buckets .. pid, prpm, ptpm)
end
