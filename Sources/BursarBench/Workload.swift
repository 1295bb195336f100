public import BursarWire

/// The deterministic request mix: which key request `n` uses, its estimate, and whether and at
/// what actual cost an admission is settled. Money is integer nano-USD throughout.
///
/// Actual costs are always at most the estimate, so a key's spend in Redis can never legitimately
/// exceed its budget: any excess is over-admission.
public struct Workload: Sendable {
    /// Keys seeded.
    public var keys: Int
    /// Projects the keys are spread over.
    public var projects: Int
    /// Share of keys given a tight budget, in per mille; traffic to them is denied once the
    /// budget is spent, so after a short while roughly this share of CHECKs is denied.
    public var denyPermille: Int
    /// Share of admissions that are settled (the rest are released), in per mille.
    public var settlePermille: Int
    /// The model every CHECK names.
    public var model: String
    /// Budget of a tight key, nano-USD.
    public var tightBudget: Int64

    /// A workload.
    public init(
        keys: Int = 100, projects: Int = 4, denyPermille: Int = 100, settlePermille: Int = 800, model: String = "gpt-5",
        tightBudget: Int64 = Workload.defaultTightBudget
    ) {
        self.keys = keys
        self.projects = projects
        self.denyPermille = denyPermille
        self.settlePermille = settlePermille
        self.model = model
        self.tightBudget = tightBudget
    }

    /// Smallest estimate, nano-USD.
    public static let minEstimate: Int64 = 1_000
    /// Spread of estimates above the smallest, nano-USD.
    public static let estimateSpread: Int64 = 9_000
    /// Default budget of a tight key: about five average requests, so tight keys deny almost
    /// everything once the warmup has spent their budgets.
    public static let defaultTightBudget: Int64 = 5 * (minEstimate + estimateSpread / 2)
    /// Budget of a loose key: never reached in a run.
    public static let looseBudget: Int64 = 1 << 50

    /// How many keys are tight: the first ones.
    public var tightKeys: Int { (keys * denyPermille + 500) / 1000 }

    /// The key index of request `n`: a multiplicative hash, uniform over the keys.
    public func keyIndex(_ n: UInt64) -> Int {
        Int(((n &* 0x9E37_79B9_7F4A_7C15) >> 17) % UInt64(keys))
    }

    /// The estimate of request `n`.
    public func estimate(_ n: UInt64) -> Int64 {
        Self.minEstimate + Int64((n &* 7919) % UInt64(Self.estimateSpread))
    }

    /// The actual cost of an admission of `estimate` for request `n`, or nil for a RELEASE.
    public func actual(_ n: UInt64, estimate: Int64) -> Int64? {
        guard Int((n &* 2_654_435_761) % 1000) < settlePermille else { return nil }
        return estimate * 3 / 4 + Int64(n % 7)
    }

    /// The CHECK for request `n` with key digest `digest`.
    public func check(_ n: UInt64, digest: KeyDigest, model: ModelName) -> CheckRequest {
        CheckRequest(digest: digest, model: model, inputTokens: 100, maxOutputTokens: 200, estimatedCost: estimate(n))
    }
}
