-- One SETTLE or RELEASE, as `step(key, A, o, last)`: `key` is its KEYS[1] and `A[o + i]` its
-- ARGV[i] as `LimiterScripts.settle` describes (o and last as check.lua's step has them). Reply:
-- {status (ReservationStatus), cost delta, token delta}; applied, the same and its budget alerts
-- (history.lua's bits) packed into one string of four big-endian 64-bit integers (`SETTLE_REPLY`),
-- as a decided CHECK's reply is.
local SETTLE_REPLY = '>i8i8i8i8'
local function step(key, A, o, last)
  if last < o + 4 then error('SETTLE takes a prefix and at least 3 arguments') end
  local mode, atok = A[o + 2], tonumber(A[o + 3])
  local r = read_reservation(key)
  local st = r.st
  if not st or st == 'void' then return {STATUS.unknown, 0, 0} end
  if st == 'settled' then return {STATUS.already_settled, 0, 0} end
  if st == 'released' then return {STATUS.already_released, 0, 0} end
  if st == 'expired' then return {STATUS.expired, 0, 0} end
  if now_ms >= r.exp then
    if st == 'open' then write_reservation(key, r, 'expired') end
    return {STATUS.expired, 0, 0}
  end
  -- Everything this step may write, read in one MGET first: on a cluster node whose slot is
  -- migrating, that one multi-key read is refused unless all of it is here (SPEC §13.10).
  local h = history_of(r)
  local cur = read_counters(r, h)
  local acost = tonumber(A[o + 4])
  if acost < 0 then
    if r.pin then
      local cached = tonumber(arg(A, o + 7, last)) or 0
      acost = price_cost(tonumber(arg(A, o + 5, last)) - cached, tonumber(arg(A, o + 6, last)), cached, r.pin, r.pout, r.pcached or 0)
    else
      acost = r.cost
    end
  end
  local requests, dtok, dcost = 0, 0, 0
  if st == 'swept' then
    requests = 1
    if mode == 'settle' then
      dtok, dcost = atok, acost
    end
  elseif mode == 'settle' then
    dtok = atok - r.tok
    dcost = acost - r.cost
  else
    dtok = -r.tok
    dcost = -r.cost
  end
  -- Budget alerts the actual cost crosses, read before anything is written.
  local due = nil
  if dcost > 0 then
    local kw, pw = counter(r.kw, cur[1]), counter(r.pw, cur[2])
    local plan = plan_alerts(nil, r.kw, r.kbudget, kw, kw + dcost, 'key:', r.kid, 0)
    due = read_alerts(plan_alerts(plan, r.pw, r.pbudget, pw, pw + dcost, 'project:', r.pid, 3))
  end
  move_buckets(r, cur, requests, dtok)
  move_spend(r, cur, dcost)
  history_finish(r, h, cur[4], mode, atok, acost)
  local alerts = write_alerts(due, nil)
  if mode == 'settle' then
    r.atok, r.acost = atok, acost
    write_reservation(key, r, 'settled', true)
  else
    write_reservation(key, r, 'released')
  end
  return struct.pack(SETTLE_REPLY, STATUS.applied, dcost, dtok, alerts)
end

-- Nothing waits for the start or the end of a batch.
local function begin_batch() end
local function after_batch() end
