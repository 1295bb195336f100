import BursarRedis

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

/// The limiter's atomic steps, each a script of `LuaFile`s (Sources/BursarStore/Lua). Every limit
/// of a request is checked and debited by one script call, in one slot (the org's hash tag), with
/// Redis's clock. The steps on every request (CHECK, SETTLE, RELEASE, singly and batched) are
/// Redis Functions libraries, called with FCALL: their functions are made once, at FUNCTION LOAD,
/// not on every call as a script's are. The rest are scripts (EVALSHA).
enum LimiterLua {
    /// What every limiter and usage script begins with: the organization's prefix, the optional
    /// numbers, the clock and the arithmetic (prelude.lua).
    static let prelude: [LuaFile] = [.org, .values, .prelude]

    /// COMPILE (compile.lua): recompiles the compiled records of one organization's keys.
    static let compile = LuaSource.script([.org, .values, .compiledRecord, .compile])

    /// CHECK (check.lua). KEYS[1] = key hash. ARGV: prefix, key id, digest hex, model, tokens,
    /// cost, reservation TTL ms, the reservation sequence bursard chose for this attempt (decimal;
    /// never read as a Lua number: it passes 2^53; it holds the epoch of the bursard that chose
    /// it), and the mode: `check`, or `replay` for an admission bursard already made on its own
    /// while Redis was away (its store failure policy): nothing is checked, everything is debited,
    /// under the sequence that admission was given. Cost −1 prices the request from the table
    /// (SPEC §13.12); then ARGV 10 and 11 are its input tokens and maximum output tokens. Reply:
    /// `CheckReplySlot`'s order; its outcome a `CheckOutcome`.
    static func check(_ clock: ScriptClock, _ history: HistoryRetention = .standard) -> RedisScript {
        LuaSource.library(prelude + [.compiledRecord, .history, .checkHelpers, .undeliveredNow, .check, .mainSingle], clock: clock, history: history)
    }

    /// CHECK of several requests of one organization in one call (main-batch.lua). The
    /// admissions' undelivered marks are added to the organization's set by one `SADD` after the
    /// last step.
    static func checkBatch(_ clock: ScriptClock, _ history: HistoryRetention = .standard) -> RedisScript {
        LuaSource.library(prelude + [.compiledRecord, .history, .checkHelpers, .undeliveredBatched, .check, .mainBatch], clock: clock, history: history)
    }

    /// SETTLE and RELEASE (settle.lua). KEYS[1] = the reservation. ARGV: prefix, mode ("settle" |
    /// "release"), actual tokens, actual cost. Cost −1 prices the actual usage at the prices the
    /// CHECK was priced at (SPEC §13.12); ARGV 5, 6 and 7 are then the actual input, output and
    /// cached input tokens (cached ⊆ input), and a reservation its CHECK did not price from the
    /// table keeps its estimate as its cost. Reply: {status, cost delta, token delta}, and when
    /// applied the budget alerts it crossed (`BudgetAlerts`' bits).
    ///
    /// A reservation a sweep voided for a dead bursard (`swept`) may have reached its client
    /// after all (SPEC §13.7): a SETTLE then debits the actual usage in full (and the request
    /// on RPM) and a RELEASE counts the request on RPM, as if the sweep had not happened. A
    /// fence or an attempt its own bursard voided (`void`) was never admitted: `unknown`.
    static func settle(_ clock: ScriptClock, _ history: HistoryRetention = .standard) -> RedisScript {
        LuaSource.library(prelude + [.history, .reservation, .settle, .mainSingle], clock: clock, history: history)
    }

    /// SETTLE and RELEASE of several reservations of one organization in one call.
    static func settleBatch(_ clock: ScriptClock, _ history: HistoryRetention = .standard) -> RedisScript {
        LuaSource.library(prelude + [.history, .reservation, .settle, .mainBatch], clock: clock, history: history)
    }

    /// VOID (void.lua): gives back an attempt whose client was told it was refused (SPEC §13.7).
    static func void(_ clock: ScriptClock, _ history: HistoryRetention = .standard) -> String {
        LuaSource.script(prelude + [.history, .reservation, .void], clock: clock, history: history)
    }

    /// SWEEP (sweep.lua): voids what a dead bursard left undelivered in one organization.
    static func sweep(_ clock: ScriptClock, _ history: HistoryRetention = .standard) -> String {
        LuaSource.script(prelude + [.history, .reservation, .sweep], clock: clock, history: history)
    }

    /// HEARTBEAT (heartbeat.lua): the instance registry, on Redis's own clock.
    static let heartbeat = LuaSource.script([.heartbeat])
}
