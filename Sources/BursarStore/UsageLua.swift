/// The live-usage reads (usage-*.lua). Each runs after the limiter's prelude and the compiled
/// record's functions, so it reads the limiter's clock and the key's effective limits, drains
/// buckets, cuts windows and computes remaining values with the CHECK script's own functions and
/// formulas. Reads only: nothing is written.
enum UsageLua {
    private static func script(_ file: LuaFile, _ clock: ScriptClock) -> String {
        LuaSource.script(LimiterLua.prelude + [.compiledRecord, .usageCommon, file], clock: clock)
    }

    /// One key (usage-key.lua).
    static func key(_ clock: ScriptClock) -> String { script(.usageKey, clock) }

    /// One project (usage-project.lua).
    static func project(_ clock: ScriptClock) -> String { script(.usageProject, clock) }

    /// The organization (usage-org.lua).
    static func org(_ clock: ScriptClock) -> String { script(.usageOrg, clock) }

    /// The minute buckets of some keys and projects (usage-top.lua).
    static func top(_ clock: ScriptClock) -> String { script(.usageTop, clock) }
}
