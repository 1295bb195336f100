/// The Lua source of the live-usage reads. Each runs after `LimiterLua.prelude(clock)`, so it reads
/// the limiter's clock and drains buckets, cuts windows and computes remaining values with the
/// CHECK script's own functions and formulas. Reads only: nothing is written.
enum UsageLua {
    /// Helpers shared by the usage scripts (after the prelude).
    static let common = """
        -- A rate bucket as usage: {limit, used, remaining, reset_ms}. remaining and reset_ms are
        -- CHECK's (SPEC 13.2); used is the level in whole units, rounded up, so that
        -- used + remaining = limit while the bucket is within capacity. Without a limit no bucket
        -- is kept: {false, 0, false, 0}.
        -- `pair` is a parsed pair (`parse_pair`), `i` the bucket in it (1: RPM, 3: TPM).
        local function rate_usage(pair, i, rate)
          if not rate then return {false, 0, false, 0} end
          local level = drained(pair[i], pair[i + 1], rate)
          local rem = math.floor((rate * SCALE - level) / SCALE)
          if rem < 0 then rem = 0 end
          return {rate, math.ceil(level / SCALE), rem, math.ceil(level / rate / 1000)}
        end
        -- The level a CHECK_RESULT describes (SPEC 7.1): of the key's and the project's bucket, the
        -- one with the smaller remaining, on a tie the smaller limit; the key's first.
        local function tighter_level(a, b)
          local best = nil
          for _, st in ipairs({a, b}) do
            if st[1] then
              if best == nil or st[3] < best[3] or (st[3] == best[3] and st[1] < best[1]) then best = st end
            end
          end
          return best or {false, 0, false, 0}
        end
        -- A key's effective limits, exactly as CHECK derives them: its own, tightened by its
        -- creator's member grant (Owners have none). nil when the key does not exist.
        local function key_limits(kid)
          local k = redis.call('HMGET', P .. 'k:' .. kid, 'project', 'user', 'rpm', 'tpm', 'budget', 'period', 'name')
          if not k[1] then return nil end
          local pid, uid = k[1], k[2]
          local krpm, ktpm, kbudget = num(k[3]), num(k[4]), num(k[5])
          if redis.call('HGET', P .. 'u:' .. uid, 'role') == 'member' then
            local grant = redis.call('HMGET', P .. 'm:' .. pid .. ':' .. uid, 'role', 'rpm', 'tpm', 'spend')
            if grant[1] then
              krpm = tighter(krpm, num(grant[2]))
              ktpm = tighter(ktpm, num(grant[3]))
              kbudget = tighter(kbudget, num(grant[4]))
            end
          end
          local period = k[6]
          if period ~= 'daily' and period ~= 'weekly' and period ~= 'lifetime' then period = 'monthly' end
          return {pid = pid, rpm = krpm, tpm = ktpm, budget = kbudget, period = period, name = k[7] or ''}
        end
        local function push(out, t) for _, v in ipairs(t) do out[#out + 1] = v end end

        """

    /// One key. ARGV: prefix, key id. Reply: false when the key does not exist, else
    /// {now_us, project, period, key rq ×4, key tk ×4, tighter rq ×4, tighter tk ×4,
    ///  spent, window start, window end, budget|false}.
    static func key(_ clock: ScriptClock) -> String {
        LimiterLua.prelude(clock) + common + """
        local kid = ARGV[2]
        local k = key_limits(kid)
        if not k then return false end
        local p = redis.call('HMGET', P .. 'p:' .. k.pid, 'rpm', 'tpm')
        local prpm, ptpm = num(p[1]), num(p[2])
        local kws, kwe = window(k.period)
        local kwkey = P .. 's:k:' .. kid .. ':' .. (k.period == 'lifetime' and 'life' or int(kws))
        local c = redis.call('MGET', kwkey, P .. 'b:k:' .. kid, P .. 'b:p:' .. k.pid)
        local kb, pb = parse_pair(c[2]), parse_pair(c[3])
        local krq, ktk = rate_usage(kb, 1, k.rpm), rate_usage(kb, 3, k.tpm)
        local prq, ptk = rate_usage(pb, 1, prpm), rate_usage(pb, 3, ptpm)
        local out = {now_us, k.pid, k.period}
        push(out, krq)
        push(out, ktk)
        push(out, tighter_level(krq, prq))
        push(out, tighter_level(ktk, ptk))
        push(out, {tonumber(c[1]) or 0, kws, kwe, k.budget or false})
        return out
        """
    }

    /// One project. ARGV: prefix, project id. Reply: false when the project does not exist, else
    /// {now_us, rq ×4, tk ×4, spent, month start, month end, budget|false}.
    static func project(_ clock: ScriptClock) -> String {
        LimiterLua.prelude(clock) + common + """
        local pid = ARGV[2]
        local p = redis.call('HMGET', P .. 'p:' .. pid, 'status', 'rpm', 'tpm', 'budget')
        if not p[1] then return false end
        local pws, pwe = window('monthly')
        local c = redis.call('MGET', P .. 's:p:' .. pid .. ':' .. int(pws), P .. 'b:p:' .. pid)
        local pb = parse_pair(c[2])
        local out = {now_us}
        push(out, rate_usage(pb, 1, num(p[2])))
        push(out, rate_usage(pb, 3, num(p[3])))
        push(out, {tonumber(c[1]) or 0, pws, pwe, num(p[4]) or false})
        return out
        """
    }

    /// The organization. ARGV: prefix. Reply: {now_us, metered 0|1, credits, requests used,
    /// tokens used, spent this month, month start, month end} — the minute and the month summed
    /// over its projects.
    static func org(_ clock: ScriptClock) -> String {
        LimiterLua.prelude(clock) + common + """
        local o = redis.call('HMGET', P .. 'org', 'metered')
        local credits = tonumber(redis.call('GET', P .. 'credits')) or 0
        local pws, pwe = window('monthly')
        local rq, tk, spent = 0, 0, 0
        for _, pid in ipairs(redis.call('SMEMBERS', P .. 'projects')) do
          local p = redis.call('HMGET', P .. 'p:' .. pid, 'rpm', 'tpm')
          local c = redis.call('MGET', P .. 's:p:' .. pid .. ':' .. int(pws), P .. 'b:p:' .. pid)
          local pb = parse_pair(c[2])
          spent = spent + (tonumber(c[1]) or 0)
          rq = rq + rate_usage(pb, 1, num(p[1]))[2]
          tk = tk + rate_usage(pb, 3, num(p[2]))[2]
        end
        return {now_us, o[1] == '1' and 1 or 0, credits, rq, tk, spent, pws, pwe}
        """
    }

    /// The minute buckets of some keys and projects. ARGV: prefix, key count n, n key ids, then
    /// project ids. Reply: {now_us, n', n' × {key, project, name, project name, rq used, tk used},
    /// m × {project, name, rq used, tk used}} (keys and projects that no longer exist are left out).
    static func top(_ clock: ScriptClock) -> String {
        LimiterLua.prelude(clock) + common + """
        local n = tonumber(ARGV[2])
        local keys, projects = {}, {}
        for i = 3, 2 + n do
          local kid = ARGV[i]
          local k = key_limits(kid)
          if k then
            local kb = parse_pair(redis.call('GET', P .. 'b:k:' .. kid))
            push(keys, {kid, k.pid, k.name, redis.call('HGET', P .. 'p:' .. k.pid, 'name') or '',
              rate_usage(kb, 1, k.rpm)[2], rate_usage(kb, 3, k.tpm)[2]})
          end
        end
        for i = 3 + n, #ARGV do
          local pid = ARGV[i]
          local p = redis.call('HMGET', P .. 'p:' .. pid, 'name', 'rpm', 'tpm')
          if p[1] then
            local pb = parse_pair(redis.call('GET', P .. 'b:p:' .. pid))
            push(projects, {pid, p[1], rate_usage(pb, 1, num(p[2]))[2], rate_usage(pb, 3, num(p[3]))[2]})
          end
        end
        local out = {now_us, #keys / 6}
        push(out, keys)
        push(out, projects)
        return out
        """
    }
}
