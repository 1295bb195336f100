/// Which clock the limiter scripts read.
public enum ScriptClock: Sendable, Hashable {
    /// Redis's own clock (`TIME`). The only clock production code can choose.
    case redis
    /// The time in µs stored at `Keyspace.testClock(org)` when it is set, else Redis's clock.
    /// Tests freeze and move time with it to cross window boundaries deterministically. Only
    /// reachable through `@_spi(Testing)`; bursard has no flag for it, so a production process
    /// cannot be told to trust a writable clock.
    case testFrozen
}

/// The Lua source of the atomic steps. Every limit of a request is checked and debited by one
/// script call, in one slot (the org's hash tag), with Redis's clock.
enum LimiterLua {
    static func prelude(_ clock: ScriptClock) -> String {
        // A frozen clock does not move with real time, but key expiry does: under a frozen clock a
        // drained-empty bucket must not vanish early in real time, so its expiry gets a floor.
        let source = clock == .testFrozen
            ? "local now_us = tonumber(redis.call('GET', P .. 'testclock')) or (tonumber(t[1]) * 1000000 + tonumber(t[2]))\nlocal EXPIRY_FLOOR_MS = 600000"
            : "local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])\nlocal EXPIRY_FLOOR_MS = 0"
        return """
        local P = ARGV[1]
        local SCALE = 60000000
        local LEVEL_MAX = 9000000000000000
        local t = redis.call('TIME')
        \(source)
        local now_ms = math.floor(now_us / 1000)
        -- A whole number as decimal text. Every number a step hands to redis.call or puts in a key
        -- name goes through it: Redis turns a Lua number argument into text with "%.17g" and Lua
        -- concatenation with "%.14g", both floating-point printing, several times the cost of an
        -- integer format, on every call.
        local sfmt = string.format
        local function int(x) return sfmt('%d', x) end

        \(valueHelpers)
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
        -- worked out once per script call: every step of a batch runs at the same now.
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
        -- all 16 digits (tostring would keep 14).
        local function parse_pair(v)
          if not v then return {0, now_us, 0, now_us, 0} end
          local a, b, c, d, e = string.match(v, '^(%d+):(%d+):(%d+):(%d+):(%d+)$')
          return {tonumber(a), tonumber(b), tonumber(c), tonumber(d), tonumber(e)}
        end
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
        local function store_pair(bkey, s)
          if s[1] == 0 and s[3] == 0 then
            redis.call('DEL', bkey)
            return
          end
          redis.call('SET', bkey, sfmt('%d:%d:%d:%d:%d', s[1], s[2], s[3], s[4], s[5]),
            'PX', int(math.max(math.ceil((s[5] - now_us) / 1000) + 1000, 1000, EXPIRY_FLOOR_MS)))
        end
        -- INCRBY on a window counter by `amount` (decimal text); the expiry is set once, when
        -- the step creates the key.
        local function add_spend(wkey, existed, amount, expire_at)
          local v = redis.call('INCRBY', wkey, amount)
          if not existed and expire_at > 0 then redis.call('PEXPIREAT', wkey, int(expire_at)) end
          return v
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

        """
    }

    /// Optional numbers: absent (nil, false, '') is no limit; `tighter` keeps the lower limit.
    static let valueHelpers = """
        local function num(x)
          if x == nil or x == false or x == '' then return nil end
          return tonumber(x)
        end
        local function tighter(a, b)
          if a == nil then return b end
          if b == nil then return a end
          if b < a then return b end
          return a
        end
        """

    /// The key's compiled record (SPEC §13.1): everything a CHECK needs beyond the key's own
    /// fields, derived from the organization, project, user and membership hashes and written into
    /// the key hash as one field, `x`, so a CHECK reads one hash instead of five and, of it, nine
    /// fields instead of nineteen. Every metadata write that changes what it is derived from
    /// recompiles the keys it concerns in the same MULTI/EXEC
    /// (`MetadataStore.transaction(_:recompile:)`); a key without `x` (written before compiled
    /// records existed, or with the eleven `x…` fields of the layout before 2026-12-03) is
    /// compiled by its first CHECK, which drops the old fields.
    ///
    /// `x` is "2 gate met rpm tpm bud prpm ptpm pbud pnm gnm" ('-' = no limit), `X_RECORD` reads
    /// it. `gate`: the first of the standing conditions of SPEC §9 steps 4–6 that fails (6
    /// org_suspended, 5 project_inactive, 4 creator_lost_access) or 0; `met`: the org is metered;
    /// `rpm`/`tpm`/`bud`: the key's caps tightened by its creator's grant; `prpm`/`ptpm`/`pbud`:
    /// the project's; `pnm`/`gnm`: the sizes of the project's and the grant's model lists
    /// ('0' = no list).
    static let compiledRecord = """
        local X_RECORD = '^2 (%d+) ([01]) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$'
        -- The ten values of a compiled record `x`; nothing if there is none of this layout.
        local function compiled(x)
          if x then return string.match(x, X_RECORD) end
        end
        local OLD_COMPILED = {'xv', 'xgate', 'xmet', 'xrpm', 'xtpm', 'xbud', 'xprpm', 'xptpm', 'xpbud', 'xpnm', 'xgnm'}
        local function field(x)
          if x == nil then return '-' end
          return string.format('%d', x)
        end
        local function stored(v, none)
          if v == nil or v == false or v == '' then return none end
          return v
        end
        local function compile_key(kid)
          local kh = P .. 'k:' .. kid
          local k = redis.call('HMGET', kh, 'project', 'user', 'rpm', 'tpm', 'budget', 'xv')
          if not k[1] then return end
          local pid, uid = k[1], k[2]
          local o = redis.call('HMGET', P .. 'org', 'status', 'metered')
          local p = redis.call('HMGET', P .. 'p:' .. pid, 'status', 'rpm', 'tpm', 'budget', 'nm')
          local role = redis.call('HGET', P .. 'u:' .. uid, 'role')
          local g = nil
          if role == 'member' then
            g = redis.call('HMGET', P .. 'm:' .. pid .. ':' .. uid, 'role', 'rpm', 'tpm', 'spend', 'nm')
            if not g[1] then g = nil end
          end
          local gate = 0
          if o[1] ~= 'active' then gate = 6
          elseif p[1] ~= 'active' then gate = 5
          elseif role ~= 'owner' and not g then gate = 4 end
          local rpm, tpm, bud = num(k[3]), num(k[4]), num(k[5])
          if g then
            rpm = tighter(rpm, num(g[2]))
            tpm = tighter(tpm, num(g[3]))
            bud = tighter(bud, num(g[4]))
          end
          redis.call('HSET', kh, 'x', table.concat({'2', gate, o[2] == '1' and '1' or '0', field(rpm), field(tpm), field(bud),
            stored(p[2], '-'), stored(p[3], '-'), stored(p[4], '-'), stored(p[5], '0'), g and stored(g[5], '0') or '0'}, ' '))
          if k[6] then redis.call('HDEL', kh, unpack(OLD_COMPILED)) end
        end
        """

    /// COMPILE: recompiles the compiled records of one organization's keys (see `compiledRecord`).
    /// KEYS[1] = the organization hash (it names the slot). ARGV: prefix, scope, then for `keys`
    /// the key ids, for `project` the project id, for `user` the user id; `org` takes none.
    /// `project` compiles the keys in the project's key set; `user` and `org` every key of every
    /// project of the organization (`user` only those the user holds). Reply: how many it compiled.
    static let compile = """
        local P = ARGV[1]
        \(valueHelpers)
        \(compiledRecord)
        local scope = ARGV[2]
        local n = 0
        if scope == 'keys' then
          for i = 3, #ARGV do compile_key(ARGV[i]); n = n + 1 end
          return n
        end
        local projects
        if scope == 'project' then projects = {ARGV[3]} else projects = redis.call('SMEMBERS', P .. 'projects') end
        for _, pid in ipairs(projects) do
          for _, kid in ipairs(redis.call('SMEMBERS', P .. 'p:' .. pid .. ':keys')) do
            if scope ~= 'user' or redis.call('HGET', P .. 'k:' .. kid, 'user') == ARGV[3] then
              compile_key(kid)
              n = n + 1
            end
          end
        end
        return n
        """

    /// What the steps on an existing reservation share (SETTLE/RELEASE, VOID, SWEEP): reading it
    /// and its counters, moving them back or forth, voiding an attempt. Kept out of the CHECK
    /// script, which runs on every request and needs none of it.
    static let reservationHelpers = """
        -- Moves one scope's pair of buckets (`name`, read as `v`) by `requests` and `tokens` units
        -- (negative gives back) at the rates `rr` and `tr` (0: no limit, not moved). Untouched
        -- unless one of them moves.
        local function move_pair(name, v, rr, tr, requests, tokens)
          local mr, mt = rr > 0 and requests ~= 0, tr > 0 and tokens ~= 0
          if not (mr or mt) then return end
          local s = parse_pair(v)
          if mr then set_level(s, 1, drained(s[1], s[2], rr) + requests * SCALE, rr) end
          if mt then set_level(s, 3, drained(s[3], s[4], tr) + tokens * SCALE, tr) end
          store_pair(name, s)
        end
        -- Moves the rate buckets of reservation `r` by `requests` and `tokens` units, from the
        -- key's and the project's pairs read in `cur` (cur[1], cur[2]). The buckets drain at the
        -- rates in force when the reservation was made (its fields 10–13).
        local function move_buckets(r, cur, requests, tokens)
          move_pair(P .. 'b:k:' .. r[3], cur[1], tonumber(r[12]) or 0, tonumber(r[10]) or 0, requests, tokens)
          move_pair(P .. 'b:p:' .. r[4], cur[2], tonumber(r[13]) or 0, tonumber(r[11]) or 0, requests, tokens)
        end
        -- A reservation is one string of space-separated fields (`ReservationRecord`): st exp kid
        -- pid tok cost kw pw met ktr ptr krr prr at [atok acost [pin pout pcached]]; a CHECK priced
        -- from the table writes '-' for atok and acost and the prices it used. Absent: an empty
        -- table.
        local RECORD14 = '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)(.*)$'
        local OLD_FIELDS = {'st', 'exp', 'kid', 'pid', 'tok', 'cost', 'kw', 'pw', 'met', 'ktr', 'ptr', 'krr', 'prr', 'at', 'atok', 'acost'}
        local function read_reservation(rkey)
          local r = {}
          local v = redis.pcall('GET', rkey)
          if type(v) == 'table' and v.err then
            -- Written as a hash by a bursard from before records were one string (an upgrade
            -- while it was open): the same fields, read by name; rewritten as a string.
            local h = redis.call('HMGET', rkey, unpack(OLD_FIELDS))
            if h[1] and #h[1] > 0 then
              for i = 1, #OLD_FIELDS do
                if not h[i] then break end
                r[i] = h[i]
              end
            end
          elseif v then
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
            for f in string.gmatch(rest, '%S+') do r[#r + 1] = f end
          end
          return r
        end
        -- Rewrites reservation `r` with status `st`, keeping its expiry.
        local function write_reservation(rkey, r, st)
          r[1] = st
          redis.call('SET', rkey, table.concat(r, ' '), 'KEEPTTL')
        end
        -- Everything a reservation's counters hold, in one MGET: read before any write, so that on
        -- a cluster node whose slot is migrating the step is refused before it writes (SPEC §13.10).
        local function read_counters(r)
          return redis.call('MGET', P .. 'b:k:' .. r[3], P .. 'b:p:' .. r[4], r[7], r[8], P .. 'credits')
        end
        -- Moves spend windows and credits by `amount` nano-USD (negative gives back).
        local function move_spend(r, amount)
          if amount == 0 then return end
          local a = int(amount)
          redis.call('INCRBY', r[7], a)
          redis.call('INCRBY', r[8], a)
          if r[9] == '1' then redis.call('DECRBY', P .. 'credits', a) end
        end
        -- Voids the attempt under reservation sequence `seq` (SPEC §13.7): its client was told it
        -- was refused, or never got an answer. If the CHECK ran and admitted, every counter it
        -- moved is given back, its request included, and the reservation takes `state` ('void',
        -- or 'swept' when a sweep did it for a dead bursard: a SETTLE may still come). If it has not
        -- run, a fence is left under its id so that it never will (it finds the id taken). Settled
        -- and released reservations stay as they are. Idempotent. Returns 1 if counters moved.
        local function void_attempt(seq, state, fence_ms)
          local rkey = P .. 'r:' .. seq
          local r = read_reservation(rkey)
          local moved = 0
          if not r[1] then
            redis.call('SET', rkey, 'void', 'PX', int(fence_ms))
          elseif r[1] == 'open' then
            local cur = read_counters(r)
            move_buckets(r, cur, -1, -tonumber(r[5]))
            move_spend(r, -tonumber(r[6]))
            write_reservation(rkey, r, state)
            moved = 1
          end
          redis.call('SREM', P .. 'uds', seq)
          return moved
        end

        """

    /// CHECK. KEYS[1] = key hash. ARGV: prefix, key id, digest hex, model, tokens, cost, reservation
    /// TTL ms, the reservation sequence bursard chose for this attempt (decimal; never read as a
    /// Lua number: it passes 2^53; it holds the epoch of the bursard that chose it), and the
    /// mode: `check`, or `replay` for an admission bursard already made on its own while Redis was
    /// away (its store failure policy): nothing is checked, everything is debited, under the
    /// sequence that admission was given. Cost −1 prices the request from the table (SPEC
    /// §13.12); then ARGV 10 and 11 are its input tokens and maximum output tokens.
    ///
    /// Reply: {outcome, reason, retry_ms, 0, project, flags, rq_limit, rq_rem, rq_reset_ms,
    /// tk_limit, tk_rem, tk_reset_ms, key_budget_rem|false, key_reset_at, proj_budget_rem|false,
    /// proj_reset_at, org_credits|false}. Outcome (`CheckOutcome`): 0 denied, 1 admitted, 2 fenced
    /// (the sequence was already taken: this attempt was voided before it ran, and did nothing),
    /// 3 already recorded (a replay found its reservation: it did nothing).
    static func check(_ clock: ScriptClock) -> String {
        prelude(clock) + compiledRecord + checkHelpers + """

        local function mark_undelivered(seq) redis.call('SADD', P .. 'uds', seq) end

        """ + checkBody
    }

    /// CHECK of several requests of one organization in one call (`batched`). The admissions'
    /// undelivered marks are added to the organization's set by one `SADD` after the last step
    /// (nothing can read the set in between: the call is one atomic step).
    static func checkBatch(_ clock: ScriptClock) -> String {
        prelude(clock) + compiledRecord + checkHelpers + """

        local UD = {}
        local function mark_undelivered(seq) UD[#UD + 1] = seq end

        """ + batched(checkBody, then: "if #UD > 0 then redis.call('SADD', P .. 'uds', unpack(UD)) end")
    }

    /// What every CHECK of a script call shares, made once per call rather than once per
    /// request: the key fields it reads, the model-list test, a rate bucket's levels and the
    /// rate-limit header.
    static let checkHelpers = """

        local KEY_FIELDS = {'digest', 'project', 'user', 'status', 'expires', 'period', 'flags', 'nm', 'x'}
        -- Model lists: 'nm' counts a list's members, so an unrestricted list costs no call.
        local function limited(count) return (tonumber(count) or 0) ~= 0 end
        local function permits(set, model) return redis.call('SISMEMBER', set, model) == 1 end
        -- A bucket at `rate` (nil: no limit, all nil): its level now, its level after `units`
        -- more, and the retry hint in ms when that is over its capacity (nil when it fits).
        local function bucket(level, updated, rate, units)
          if not rate then return nil, nil, nil end
          local now_level = drained(level, updated, rate)
          local after = now_level + units * SCALE
          if after > rate * SCALE then return now_level, after, math.ceil((after - rate * SCALE) / rate / 1000) end
          return now_level, after, nil
        end
        -- A bucket's remaining units and ms until empty, at the level the answer reports.
        local function headroom(rate, before, after, admitted)
          local level = admitted and after or before
          local rem = math.floor((rate * SCALE - level) / SCALE)
          if rem < 0 then rem = 0 end
          return rem, math.ceil(level / rate / 1000)
        end
        -- The rate-limit header of two buckets (rate, level before, level after; rate nil = no
        -- limit): the one with the fewest remaining, the lower rate on a tie.
        local function header(ra, la, aa, rb, lb, ab, admitted)
          local br, brem, breset
          if ra then
            br = ra
            brem, breset = headroom(ra, la, aa, admitted)
          end
          if rb then
            local rem, reset = headroom(rb, lb, ab, admitted)
            if br == nil or rem < brem or (rem == brem and rb < br) then br, brem, breset = rb, rem, reset end
          end
          if br == nil then return 0, 0, 0 end
          return br, brem, breset
        end

        """

    /// One CHECK, after the prelude and `checkHelpers`: KEYS[1] and ARGV as `check` describes.
    /// Straight-line code over locals: it runs on every request, and each table it made would be
    /// an allocation for Lua's collector.
    static let checkBody = """
        local kid, digest, model = ARGV[2], ARGV[3], ARGV[4]
        local tokens, cost, ttl = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
        local seq = ARGV[8]
        local replay = ARGV[9] == 'replay'
        local rkey = P .. 'r:' .. seq

        local k = redis.call('HMGET', KEYS[1], unpack(KEY_FIELDS))
        if replay then
          if not k[2] then return {0, 1} end
        elseif k[1] ~= digest then
          return {0, 1}
        end
        local gate, met, xrpm, xtpm, xbud, xprpm, xptpm, xpbud, pnm, gnm = compiled(k[9])
        if not gate then
          -- Written before compiled records existed, or by an earlier layout: compiled here, once.
          compile_key(kid)
          gate, met, xrpm, xtpm, xbud, xprpm, xptpm, xpbud, pnm, gnm = compiled(redis.call('HGET', KEYS[1], 'x'))
          if not gate then return {0, 1} end
        end
        local pid, uid, flags = k[2], k[3], tonumber(k[7]) or 0
        local check = not replay
        if check and k[4] ~= 'active' then return {0, 2, 0, 0, pid, flags} end
        local expires = num(k[5])
        if check and expires and expires > 0 and now_ms >= expires then return {0, 3, 0, 0, pid, flags} end
        -- Organization suspended (6), project archived or deleted (5), creator without access (4).
        gate = tonumber(gate)
        if check and gate ~= 0 then return {0, gate, 0, 0, pid, flags} end

        if check then
          -- The set's name is made only for a list that exists.
          if limited(k[8]) and not permits(KEYS[1] .. ':models', model) then return {0, 7, 0, 0, pid, flags} end
          if limited(gnm) and not permits(P .. 'm:' .. pid .. ':' .. uid .. ':models', model) then return {0, 7, 0, 0, pid, flags} end
          if limited(pnm) and not permits(P .. 'p:' .. pid .. ':models', model) then return {0, 7, 0, 0, pid, flags} end
        end

        -- '-' (no limit) reads as nil.
        local krpm, ktpm, kbudget = tonumber(xrpm), tonumber(xtpm), tonumber(xbud)
        local prpm, ptpm, pbudget = tonumber(xprpm), tonumber(xptpm), tonumber(xpbud)
        if check and ((ktpm and tokens > ktpm) or (ptpm and tokens > ptpm)) then return {0, 15, 0, 0, pid, flags} end

        -- Every counter this step reads or writes, in one MGET: spend windows, credits, the key's
        -- and the project's rate buckets. On a cluster node whose slot is migrating, this one multi-key read is refused
        -- unless all of them are here, before anything is written. Key spend is always counted in
        -- the key's period window (monthly by default), project spend in the calendar month, so
        -- usage is visible even without a budget.
        local period = k[6]
        if period ~= 'daily' and period ~= 'weekly' and period ~= 'lifetime' then period = 'monthly' end
        local _, kwe, kwstart = window(period)
        local kwkey = P .. 's:k:' .. kid .. ':' .. (period == 'lifetime' and 'life' or kwstart)
        local _, pwe, pwstart = window('monthly')
        local pwkey = P .. 's:p:' .. pid .. ':' .. pwstart
        local bkk, bkp = P .. 'b:k:' .. kid, P .. 'b:p:' .. pid
        local c
        if cost < 0 then
          c = redis.call('MGET', kwkey, pwkey, P .. 'credits', bkk, bkp, P .. 'price:' .. model)
        else
          c = redis.call('MGET', kwkey, pwkey, P .. 'credits', bkk, bkp)
        end
        local kspent = tonumber(c[1]) or 0
        local pspent = tonumber(c[2]) or 0
        local metered = met == '1'
        local balance = metered and (tonumber(c[3]) or 0) or nil

        -- Priced from the table: input and maximum output at the model's prices. No price: free
        -- only where no money limit applies (SPEC §13.12).
        local pa, pb, pc = nil, nil, nil
        if cost < 0 then
          cost = 0
          if c[6] then
            pa, pb, pc = string.match(c[6], '^(%d+) (%d+) (%d+)$')
            cost = price_cost(tonumber(ARGV[10]), tonumber(ARGV[11]), 0, tonumber(pa), tonumber(pb), 0)
          elseif check and (kbudget or pbudget or metered) then
            return {0, 19, 0, 0, pid, flags}
          end
        end

        -- Rate buckets, in deny order (key RPM 8, key TPM 9, project RPM 10, project TPM 11): each
        -- one's level now (l) and after this request (a). Nothing is written until every check
        -- has passed.
        local bk, bp = parse_pair(c[4]), parse_pair(c[5])
        local l1, a1, w1 = bucket(bk[1], bk[2], krpm, 1)
        local l2, a2, w2 = bucket(bk[3], bk[4], ktpm, tokens)
        local l3, a3, w3 = bucket(bp[1], bp[2], prpm, 1)
        local l4, a4, w4 = bucket(bp[3], bp[4], ptpm, tokens)
        local deny_reason, retry_ms = 0, 0
        if w1 then deny_reason, retry_ms = 8, w1
        elseif w2 then deny_reason, retry_ms = 9, w2
        elseif w3 then deny_reason, retry_ms = 10, w3
        elseif w4 then deny_reason, retry_ms = 11, w4 end

        if deny_reason == 0 then
          if kbudget and kspent + cost > kbudget then deny_reason = 12
          elseif pbudget and pspent + cost > pbudget then deny_reason = 13
          elseif metered and balance < cost then deny_reason = 14 end
        end

        local admitted = deny_reason == 0 or replay
        if admitted then
          -- The reservation is written first, only if its sequence is free (NX): it is the one new
          -- key, which a cluster node whose slot is migrating refuses (ASK), so a refusal comes
          -- before any counter moves. Taken: a replay already recorded (3), or this attempt was
          -- voided before it ran (2); either way it does nothing.
          local record = sfmt('open %d %s %s %s %d %s %s %d %d %d %d %d %d', now_ms + ttl, kid, pid,
            ARGV[5], cost, kwkey, pwkey, metered and 1 or 0, ktpm or 0, ptpm or 0, krpm or 0, prpm or 0, now_us)
          if pa then record = record .. ' - - ' .. pa .. ' ' .. pb .. ' ' .. pc end
          if not redis.call('SET', rkey, record, 'NX', 'PX', int(ttl + 3600000)) then
            return {replay and 3 or 2, 0, 0, 0, pid, flags}
          end
          -- Undelivered until the bursard that sent it confirms the answer went to its client;
          -- the sequence holds that bursard's epoch, so a sweep finds what a dead one left.
          if check then mark_undelivered(seq) end
          if krpm then set_level(bk, 1, a1, krpm) end
          if ktpm then set_level(bk, 3, a2, ktpm) end
          if krpm or ktpm then store_pair(bkk, bk) end
          if prpm then set_level(bp, 1, a3, prpm) end
          if ptpm then set_level(bp, 3, a4, ptpm) end
          if prpm or ptpm then store_pair(bkp, bp) end
          local amount = int(cost)
          kspent = add_spend(kwkey, c[1], amount, kwe > 0 and kwe + 35 * 86400000 or 0)
          pspent = add_spend(pwkey, c[2], amount, pwe + 35 * 86400000)
          if metered then balance = redis.call('DECRBY', P .. 'credits', amount) end
        end

        local rl, rr, rs = header(krpm, l1, a1, prpm, l3, a3, admitted)
        local tl, tr, ts = header(ktpm, l2, a2, ptpm, l4, a4, admitted)
        return {admitted and 1 or 0, deny_reason, retry_ms, 0, pid, flags, rl, rr, rs, tl, tr, ts,
          kbudget and (kbudget - kspent) or false, kwe, pbudget and (pbudget - pspent) or false, pwe,
          metered and balance or false}
        """

    /// SETTLE and RELEASE. KEYS[1] = the reservation. ARGV: prefix, mode ("settle" | "release"),
    /// actual tokens, actual cost. Cost −1 prices the actual usage at the prices the CHECK was
    /// priced at (SPEC §13.12); ARGV 5, 6 and 7 are then the actual input, output and cached input
    /// tokens (cached ⊆ input), and a reservation its CHECK did not price from the table keeps its
    /// estimate as its cost. Reply: {status, cost delta, token delta}.
    ///
    /// A reservation a sweep voided for a dead bursard (`swept`) may have reached its client
    /// after all (SPEC §13.7): a SETTLE then debits the actual usage in full (and the request
    /// on RPM) and a RELEASE counts the request on RPM, as if the sweep had not happened. A
    /// fence or an attempt its own bursard voided (`void`) was never admitted: `unknown`.
    static func settle(_ clock: ScriptClock) -> String {
        prelude(clock) + reservationHelpers + settleBody
    }

    /// SETTLE and RELEASE of several reservations of one organization in one call (`batched`).
    static func settleBatch(_ clock: ScriptClock) -> String {
        prelude(clock) + reservationHelpers + batched(settleBody)
    }

    /// One SETTLE or RELEASE, after the prelude: KEYS[1] and ARGV as `settle` describes.
    static let settleBody = """
        local mode = ARGV[2]
        local r = read_reservation(KEYS[1])
        if not r[1] or r[1] == 'void' then return {4, 0, 0} end
        if r[1] == 'settled' then return {1, 0, 0} end
        if r[1] == 'released' then return {2, 0, 0} end
        if r[1] == 'expired' then return {3, 0, 0} end
        if now_ms >= tonumber(r[2]) then
          if r[1] == 'open' then write_reservation(KEYS[1], r, 'expired') end
          return {3, 0, 0}
        end
        -- Everything this step may write, read in one MGET first: on a cluster node whose slot is
        -- migrating, that one multi-key read is refused unless all of it is here (SPEC §13.10).
        local cur = read_counters(r)
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
        move_buckets(r, cur, requests, dtok)
        move_spend(r, dcost)
        if mode == 'settle' then
          r[15], r[16] = ARGV[3], int(acost)
          write_reservation(KEYS[1], r, 'settled')
        else
          write_reservation(KEYS[1], r, 'released')
        end
        return {0, dcost, dtok}
        """

    /// Several calls of one script (`body`, written for one KEYS[1] and its ARGV) run as one
    /// call, for requests of one organization that reach Redis together: the prelude (one
    /// `TIME`) runs once and every request after it, in order, in the same atomic step (SPEC
    /// §13.11). KEYS = each request's KEYS[1]; ARGV[1] = the organization's prefix (every
    /// request's ARGV[1]), then for each request the count of its other arguments and those
    /// arguments. Reply: one element per request, what its own call would have answered; a
    /// request whose step raised an error gets that error as its element, and the others are
    /// unaffected. `finish` runs after the last request.
    static func batched(_ body: String, then finish: String = "") -> String {
        """
        local function one(KEYS, ARGV)
        \(body)
        end
        local out = {}
        local pos = 2
        for i = 1, #KEYS do
          local c = tonumber(ARGV[pos])
          local a = {P, unpack(ARGV, pos + 1, pos + c)}
          pos = pos + c + 1
          local ok, res = pcall(one, {KEYS[i]}, a)
          if ok then
            out[i] = res
          elseif type(res) == 'table' and res.err then
            out[i] = res
          else
            out[i] = {err = tostring(res)}
          end
        end
        \(finish)
        return out
        """
    }

    /// VOID: gives back an attempt whose client was told it was refused (SPEC §13.7). KEYS[1] =
    /// the reservation (it names the slot). ARGV: prefix, sequence, fence TTL ms. Reply: 1 if
    /// an admission was given back, 0 if there was none (a fence now stands, or it was settled,
    /// released or voided before).
    static func void(_ clock: ScriptClock) -> String {
        prelude(clock) + reservationHelpers + """
        return void_attempt(ARGV[2], 'void', tonumber(ARGV[3]))
        """
    }

    /// SWEEP: voids up to `limit` admissions of one organization that a dead bursard (epoch) made
    /// and never confirmed delivered (SPEC §13.7). KEYS[1] = the org's undelivered set, KEYS[2]
    /// its sorted set of an earlier release (`Keyspace.legacyUndelivered`). ARGV: prefix, epoch,
    /// fence TTL ms, limit, then the first and the last sequence of the epoch (19 decimal digits
    /// each, `ReservationSequence.range(epoch:)`): the set's members of the epoch are those
    /// between them. Compared as text, never as Lua numbers (they pass 2^53): every sequence
    /// bursard chooses has 19 digits, so text order is number order. Reply: how many it voided
    /// (fewer than `limit`: none left).
    static func sweep(_ clock: ScriptClock) -> String {
        prelude(clock) + reservationHelpers + """
        local limit, fence = tonumber(ARGV[4]), tonumber(ARGV[3])
        local first, last = ARGV[5], ARGV[6]
        local n = 0
        for _, seq in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[2], ARGV[2], 'LIMIT', 0, limit)) do
          void_attempt(seq, 'swept', fence)
          redis.call('ZREM', KEYS[2], seq)
          n = n + 1
        end
        if n >= limit then return n end
        for _, seq in ipairs(redis.call('SMEMBERS', KEYS[1])) do
          if #seq == #first and seq >= first and seq <= last then
            void_attempt(seq, 'swept', fence)
            n = n + 1
            if n >= limit then break end
          end
        end
        return n
        """
    }

    /// HEARTBEAT: KEYS[1] = the registry's heartbeats, KEYS[2] = its leases (one slot). ARGV:
    /// epoch, mode (`register` | `beat` | `leave`), this instance's lease ms. On Redis's own clock
    /// (never a test clock: it is global). Each instance is judged by its own lease, so bursards
    /// configured differently never sweep one another early.
    /// Reply for `register` and `leave`: {1, now_ms}. For `beat`: {registered (0 if a sweep already
    /// took this epoch for dead), now_ms, then epoch, lease for up to 16 epochs whose last
    /// heartbeat is older than their lease}.
    static let heartbeat = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local epoch, mode, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])
        if mode == 'register' then
          redis.call('ZADD', KEYS[1], now, epoch)
          redis.call('HSET', KEYS[2], epoch, lease)
          return {1, now}
        end
        if mode == 'leave' then
          redis.call('ZREM', KEYS[1], epoch)
          redis.call('HDEL', KEYS[2], epoch)
          return {1, now}
        end
        if not redis.call('ZSCORE', KEYS[1], epoch) then return {0, now} end
        redis.call('ZADD', KEYS[1], now, epoch)
        local reply = {1, now}
        local beats = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
        for i = 1, #beats, 2 do
          local e, last = beats[i], tonumber(beats[i + 1])
          local l = tonumber(redis.call('HGET', KEYS[2], e)) or lease
          if now - last > l and #reply < 34 then
            reply[#reply + 1] = e
            reply[#reply + 1] = l
          end
        end
        return reply
        """
}
