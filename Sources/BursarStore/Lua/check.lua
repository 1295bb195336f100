-- One CHECK (or a replay), as `step(key, A, o, last)`: `key` is its KEYS[1] and `A[o + i]` its
-- ARGV[i] as `LimiterScripts.check` describes, up to `A[last]` (`arg`): in a call of its own the
-- call's ARGV (o = 0); in a batch, the call's ARGV and where this request's arguments lie, so no
-- table is made to hold them. Straight-line code over locals: it runs on every request, and each
-- table it made would be an allocation for Lua's collector.
--
-- A decided reply has the slots of `CheckReplySlot`: outcome, reason, retry_ms, absent, project,
-- flags, rq_limit, rq_rem, rq_reset_ms, tk_limit, tk_rem, tk_reset_ms, key_budget_rem,
-- key_reset_at, proj_budget_rem, proj_reset_at, org_credits, alerts. Once the counters are read it
-- is packed into one string of 18 big-endian 64-bit integers (`CHECK_REPLY`): one value for
-- Redis to send and bursard to read, not an array of 18; `absent` then says which optional slots
-- have no value (1: the key's budget, 2: the project's, 4: the credits, not metered). A refusal
-- before the counters are read is the array of its first six slots; an unknown key's, of its
-- first two. The deny reasons are checked in the order of SPEC §9: identity, standing, model, the
-- request's size, the price table, the rate buckets, then spend.
local CHECK_REPLY = '>i8i8i8i8i8i8i8i8i8i8i8i8i8i8i8i8i8i8'
-- A refusal before the counters are read (its denial recorded in the history).
local function refused(reason, pid, kid, model, flags)
  history_deny(pid, kid, model, reason)
  return {OUTCOME.denied, reason, 0, 0, pid, flags}
end
local function step(key, A, o, last)
  if last < o + 8 then error('CHECK takes a prefix and at least 7 arguments') end
  local kid, digest, model = A[o + 2], A[o + 3], A[o + 4]
  local tokens, cost, ttl = tonumber(A[o + 5]), tonumber(A[o + 6]), tonumber(A[o + 7])
  local seq = A[o + 8]
  local replay = arg(A, o + 9, last) == 'replay'
  local rkey = P .. NAME.reservation .. seq

  -- The key's digest and its compiled record (compiled-record.lua): everything else it needs.
  local k = rcall('HMGET', key, 'digest', 'x')
  if replay then
    if not k[1] then return {OUTCOME.denied, DENY.unknown_key} end
  elseif k[1] ~= digest then
    return {OUTCOME.denied, DENY.unknown_key}
  end
  local gate, met, krpm, ktpm, kbudget, prpm, ptpm, pbudget, pnm, gnm, knm, expires, period, flags, pid, uid = compiled(k[2])
  if not gate then
    -- Written before compiled records existed, or by an earlier layout: compiled here, once.
    compile_key(kid)
    gate, met, krpm, ktpm, kbudget, prpm, ptpm, pbudget, pnm, gnm, knm, expires, period, flags, pid, uid = compiled(rcall('HGET', key, 'x'))
    if not gate then return {OUTCOME.denied, DENY.unknown_key} end
  end
  local check = not replay
  -- The compiled gate: the key revoked, the organization suspended, the project archived or
  -- deleted, or the creator without access (its deny reason), or 0. A revoked key is refused
  -- before its expiry is looked at (SPEC §9).
  if check and gate == DENY.key_revoked then return refused(gate, pid, kid, model, flags) end
  if check and expires > 0 and now_ms >= expires then return refused(DENY.key_expired, pid, kid, model, flags) end
  if check and gate ~= 0 then return refused(gate, pid, kid, model, flags) end

  if check then
    -- The set's name is made only for a list that exists.
    if knm ~= 0 and not permits(key .. NAME.models, model) then return refused(DENY.model_not_allowed, pid, kid, model, flags) end
    if gnm ~= 0 and not permits(P .. NAME.membership .. pid .. ':' .. uid .. NAME.models, model) then return refused(DENY.model_not_allowed, pid, kid, model, flags) end
    if pnm ~= 0 and not permits(P .. NAME.project .. pid .. NAME.models, model) then return refused(DENY.model_not_allowed, pid, kid, model, flags) end
  end

  -- A limit of none reads as nil.
  if check and ((ktpm and tokens > ktpm) or (ptpm and tokens > ptpm)) then return refused(DENY.request_too_large, pid, kid, model, flags) end

  -- Every counter this step may write, in one MGET: spend windows, credits, the history record,
  -- the key's and the project's rate buckets (a scope with neither rate keeps none: they are
  -- neither read nor written), and the price when the table prices the request. On a cluster
  -- node whose slot is migrating, this one multi-key read is refused unless all of them are
  -- here, before anything is written. Key spend is always counted in the key's period window
  -- (monthly by default), project spend in the calendar month, so usage is visible even without
  -- a budget.
  if period ~= 'daily' and period ~= 'weekly' and period ~= 'lifetime' then period = 'monthly' end
  local _, kwe, kwstart = window(period)
  local kwkey = P .. NAME.key_spend .. kid .. ':' .. (period == 'lifetime' and NAME.lifetime or kwstart)
  local _, pwe, pwstart = window('monthly')
  local pwkey = P .. NAME.project_spend .. pid .. ':' .. pwstart
  local hday, hidx = history_today()
  local hrec = history_record(hday, kid, model)
  local names, iprice, ikb, ipb = nil, nil, nil, nil
  local c
  if cost < 0 or krpm or ktpm or prpm or ptpm then
    local n = 4
    names = {kwkey, pwkey, CREDITS, hrec}
    if cost < 0 then n = n + 1; names[n] = P .. NAME.price .. model; iprice = n end
    if krpm or ktpm then n = n + 1; names[n] = P .. NAME.key_buckets .. kid; ikb = n end
    if prpm or ptpm then n = n + 1; names[n] = P .. NAME.project_buckets .. pid; ipb = n end
    c = rcall('MGET', unpack(names, 1, n))
  else
    -- Neither rates nor a price to look up (the common key): no table to hold the names.
    c = rcall('MGET', kwkey, pwkey, CREDITS, hrec)
  end
  if not c[4] then history_read_new(hrec, hidx) end
  local kspent = counter(kwkey, c[1])
  local pspent = counter(pwkey, c[2])
  local metered = met == 1
  local balance = metered and counter(CREDITS, c[3]) or nil

  -- Priced from the table: input and maximum output at the model's prices. No price: free
  -- only where no money limit applies (SPEC §13.12).
  local pa, pb, pc = nil, nil, nil
  if cost < 0 then
    cost = 0
    local price = c[iprice]
    if price then
      pa, pb, pc = string.match(price, '^(%d+) (%d+) (%d+)$')
      cost = price_cost(tonumber(arg(A, o + 10, last)), tonumber(arg(A, o + 11, last)), 0, tonumber(pa), tonumber(pb), 0)
    elseif check and (kbudget or pbudget or metered) then
      return refused(DENY.price_unknown, pid, kid, model, flags)
    end
  end

  -- Rate buckets, in deny order (key RPM, key TPM, project RPM, project TPM): each
  -- one's level now (l) and after this request (a). Nothing is written until every check
  -- has passed.
  -- A scope with neither rate keeps no buckets: nothing read (NO_PAIR is never written).
  local bk = ikb and read_pair(names[ikb], c[ikb]) or NO_PAIR
  local bp = ipb and read_pair(names[ipb], c[ipb]) or NO_PAIR
  local l1, a1, w1 = bucket(bk[1], bk[2], krpm, 1)
  local l2, a2, w2 = bucket(bk[3], bk[4], ktpm, tokens)
  local l3, a3, w3 = bucket(bp[1], bp[2], prpm, 1)
  local l4, a4, w4 = bucket(bp[3], bp[4], ptpm, tokens)
  local deny_reason, retry_ms = DENY.none, 0
  if w1 then deny_reason, retry_ms = DENY.key_rpm, w1
  elseif w2 then deny_reason, retry_ms = DENY.key_tpm, w2
  elseif w3 then deny_reason, retry_ms = DENY.project_rpm, w3
  elseif w4 then deny_reason, retry_ms = DENY.project_tpm, w4 end

  if deny_reason == DENY.none then
    if kbudget and kspent + cost > kbudget then deny_reason = DENY.key_budget
    elseif pbudget and pspent + cost > pbudget then deny_reason = DENY.project_budget
    elseif metered and balance < cost then deny_reason = DENY.org_credits end
  end

  local admitted = deny_reason == DENY.none or replay
  local alerts, due = 0, nil
  if admitted then
    -- Budget alerts this admission crosses, read before anything is written.
    local plan = plan_alerts(nil, kwkey, kbudget, kspent, kspent + cost, 'key:', kid, 0)
    due = read_alerts(plan_alerts(plan, pwkey, pbudget, pspent, pspent + cost, 'project:', pid, 3))
  end
  if admitted then
    -- The reservation is written first, only if its sequence is free (NX): it is the one new
    -- key, which a cluster node whose slot is migrating refuses (ASK), so a refusal comes
    -- before any counter moves. Taken: a replay already recorded, or this attempt was voided
    -- before it ran (fenced); either way it does nothing.
    -- Packed (prelude.lua: RESERVATION_PACK), with the budgets the alerts of a SETTLE compare
    -- with and the model its history record is kept under. A CHECK priced from the table keeps
    -- the prices it used.
    local record = struct.pack(RESERVATION_PACK, RESERVATION_MARK, 1, 1, now_ms + ttl, tokens, cost,
      metered and 1 or 0, ktpm or 0, ptpm or 0, krpm or 0, prpm or 0, now_us, -1, -1,
      pa and tonumber(pa) or -1, pa and tonumber(pb) or -1, pa and tonumber(pc) or -1,
      kbudget or -1, pbudget or -1, #kid, kid, #pid, pid, #kwkey, kwkey, #pwkey, pwkey, #model, model)
    if not rcall('SET', rkey, record, 'NX', 'PX', int(ttl + 3600000)) then
      return {replay and OUTCOME.already_recorded or OUTCOME.fenced, DENY.none, 0, 0, pid, flags}
    end
    -- Undelivered until the bursard that sent it confirms the answer went to its client;
    -- the sequence holds that bursard's epoch, so a sweep finds what a dead one left.
    if check then mark_undelivered(seq) end
    if krpm then set_level(bk, 1, a1, krpm) end
    if ktpm then set_level(bk, 3, a2, ktpm) end
    if ikb then store_pair(names[ikb], bk) end
    if prpm then set_level(bp, 1, a3, prpm) end
    if ptpm then set_level(bp, 3, a4, ptpm) end
    if ipb then store_pair(names[ipb], bp) end
    -- A window counter outlives its window by 35 days (a lifetime window never expires).
    local kexp, pexp = kwe > 0 and kwe + 35 * 86400000 or 0, pwe + 35 * 86400000
    kspent = add_counter(kwkey, c[1], cost, kexp)
    pspent = add_counter(pwkey, c[2], cost, pexp)
    if metered then balance = add_counter(CREDITS, c[3], -cost, 0) end
    history_admit(hday, hrec, hidx, c[4], pid, kid, model, tokens, cost)
    if due then alerts = write_alerts(due, {[kwkey] = kexp, [pwkey] = pexp}) end
  elseif check then
    history_denied(hday, hrec, hidx, c[4], pid, kid, model, deny_reason)
  end

  local rl, rr, rs = header(krpm, l1, a1, prpm, l3, a3, admitted)
  local tl, tr, ts = header(ktpm, l2, a2, ptpm, l4, a4, admitted)
  return struct.pack(CHECK_REPLY, admitted and OUTCOME.admitted or OUTCOME.denied, deny_reason, retry_ms,
    (kbudget and 0 or 1) + (pbudget and 0 or 2) + (metered and 0 or 4), pid, flags, rl, rr, rs, tl, tr, ts,
    kbudget and (kbudget - kspent) or 0, kwe, pbudget and (pbudget - pspent) or 0, pwe, metered and balance or 0, alerts)
end
