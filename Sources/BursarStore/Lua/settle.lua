-- One SETTLE or RELEASE, as `step(KEYS, ARGV)`: KEYS[1] and ARGV as `LimiterScripts.settle`
-- describes. Reply: {status (ReservationStatus), cost delta, token delta[, budget alerts
-- (history.lua's bits) when applied]}.
local function step(KEYS, ARGV)
  local mode = ARGV[2]
  local r = read_reservation(KEYS[1])
  if not r[1] or r[1] == 'void' then return {STATUS.unknown, 0, 0} end
  if r[1] == 'settled' then return {STATUS.already_settled, 0, 0} end
  if r[1] == 'released' then return {STATUS.already_released, 0, 0} end
  if r[1] == 'expired' then return {STATUS.expired, 0, 0} end
  if now_ms >= tonumber(r[2]) then
    if r[1] == 'open' then write_reservation(KEYS[1], r, 'expired') end
    return {STATUS.expired, 0, 0}
  end
  -- Everything this step may write, read in one MGET first: on a cluster node whose slot is
  -- migrating, that one multi-key read is refused unless all of it is here (SPEC §13.10).
  local h = history_of(r)
  local cur = read_counters(r, h)
  local acost = tonumber(ARGV[4])
  if acost < 0 then
    if r[17] then
      local cached = tonumber(ARGV[7]) or 0
      acost = price_cost(tonumber(ARGV[5]) - cached, tonumber(ARGV[6]), cached, tonumber(r[17]), tonumber(r[18]), tonumber(r[19]) or 0)
    else
      acost = tonumber(r[6])
    end
  end
  local requests, dtok, dcost = 0, 0, 0
  if r[1] == 'swept' then
    requests = 1
    if mode == 'settle' then
      dtok, dcost = tonumber(ARGV[3]), acost
    end
  elseif mode == 'settle' then
    dtok = tonumber(ARGV[3]) - tonumber(r[5])
    dcost = acost - tonumber(r[6])
  else
    dtok = -tonumber(r[5])
    dcost = -tonumber(r[6])
  end
  -- Budget alerts the actual cost crosses, read before anything is written.
  local due = nil
  if dcost > 0 then
    local kw, pw = counter(r[7], cur[3]), counter(r[8], cur[4])
    local plan = plan_alerts(nil, r[7], r.kbudget, kw, kw + dcost, 'key:' .. r[3], 0)
    due = read_alerts(plan_alerts(plan, r[8], r.pbudget, pw, pw + dcost, 'project:' .. r[4], 3))
  end
  move_buckets(r, cur, requests, dtok)
  move_spend(r, cur, dcost)
  history_finish(r, h, cur[6], mode, tonumber(ARGV[3]), acost)
  local alerts = write_alerts(due, nil)
  if mode == 'settle' then
    r[15], r[16] = ARGV[3], int(acost)
    write_reservation(KEYS[1], r, 'settled')
  else
    write_reservation(KEYS[1], r, 'released')
  end
  return {STATUS.applied, dcost, dtok, alerts}
end

-- Nothing waits for the start or the end of a batch.
local function begin_batch() end
local function after_batch() end
