-- One SETTLE or RELEASE, as `step(key, A, o, last)`: `key` is its KEYS[1] and `A[o + i]` its
-- ARGV[i] as `LimiterScripts.settle` describes (o and last as check.lua's step has them). Reply:
-- {status (ReservationStatus), cost delta, token delta}; applied, the same and its budget alerts
-- (history.lua's bits) packed into one string of four big-endian 64-bit integers (`SETTLE_REPLY`),
-- as a decided CHECK's reply is.
local SETTLE_REPLY = '>i8i8i8i8'
local function step(key, A, o, last)
  if last < o + 4 then error('SETTLE takes a prefix and at least 3 arguments') end
  local mode, atok_text = A[o + 2], A[o + 3]
  local atok = tonumber(atok_text)
  local r = read_reservation(key)
  if not r[1] or r[1] == 'void' then return {STATUS.unknown, 0, 0} end
  if r[1] == 'settled' then return {STATUS.already_settled, 0, 0} end
  if r[1] == 'released' then return {STATUS.already_released, 0, 0} end
  if r[1] == 'expired' then return {STATUS.expired, 0, 0} end
  if now_ms >= tonumber(r[2]) then
    if r[1] == 'open' then write_reservation(key, r, 'expired') end
    return {STATUS.expired, 0, 0}
  end
  -- Everything this step may write, read in one MGET first: on a cluster node whose slot is
  -- migrating, that one multi-key read is refused unless all of it is here (SPEC §13.10).
  local h = history_of(r)
  local cur = read_counters(r, h)
  local acost = tonumber(A[o + 4])
  if acost < 0 then
    if r[17] then
      local cached = tonumber(arg(A, o + 7, last)) or 0
      acost = price_cost(tonumber(arg(A, o + 5, last)) - cached, tonumber(arg(A, o + 6, last)), cached, tonumber(r[17]), tonumber(r[18]), tonumber(r[19]) or 0)
    else
      acost = tonumber(r[6])
    end
  end
  local requests, dtok, dcost = 0, 0, 0
  if r[1] == 'swept' then
    requests = 1
    if mode == 'settle' then
      dtok, dcost = atok, acost
    end
  elseif mode == 'settle' then
    dtok = atok - tonumber(r[5])
    dcost = acost - tonumber(r[6])
  else
    dtok = -tonumber(r[5])
    dcost = -tonumber(r[6])
  end
  -- Budget alerts the actual cost crosses, read before anything is written.
  local due = nil
  if dcost > 0 then
    local kw, pw = counter(r[7], cur[1]), counter(r[8], cur[2])
    local plan = plan_alerts(nil, r[7], r.kbudget, kw, kw + dcost, 'key:', r[3], 0)
    due = read_alerts(plan_alerts(plan, r[8], r.pbudget, pw, pw + dcost, 'project:', r[4], 3))
  end
  move_buckets(r, cur, requests, dtok)
  move_spend(r, cur, dcost)
  history_finish(r, h, cur[4], mode, atok, acost)
  local alerts = write_alerts(due, nil)
  if mode == 'settle' then
    r[15], r[16] = atok_text, int(acost)
    write_reservation(key, r, 'settled')
  else
    write_reservation(key, r, 'released')
  end
  return struct.pack(SETTLE_REPLY, STATUS.applied, dcost, dtok, alerts)
end

-- Nothing waits for the start or the end of a batch.
local function begin_batch() end
local function after_batch() end
