public import BursarWire
import Foundation

/// The deterministic request mix: which key request `n` uses, its estimate, and whether and at
/// what actual cost an admission is settled. Money is integer nano-USD, tokens integer, throughout.
///
/// Actual costs and tokens are always at most the estimate, so no counter in Redis can
/// legitimately pass its limit: any excess the audit finds is over-admission.
public struct Workload: Sendable {
    /// Keys seeded.
    public var keys: Int
    /// Projects the keys are spread over (key `k` is in project `k % projects`).
    public var projects: Int
    /// Share of keys given one tight limit, in per mille: the first of them a tight budget, the
    /// next a tight RPM, the next a tight TPM, and so on in turn. Traffic to a tight key is denied
    /// once the limit is spent, so roughly this share of CHECKs is denied (more under `zipf`).
    public var denyPermille: Int
    /// Share of admissions that are settled (the rest are released), in per mille.
    public var settlePermille: Int
    /// Key popularity: 0 is uniform; s > 0 makes key `i` (0-based) drawn with weight 1/(i+1)^s.
    public var zipf: Double
    /// The model every CHECK names.
    public var model: String
    /// Budget of a budget-tight key, nano-USD.
    public var tightBudget: Int64
    /// RPM of an RPM-tight key.
    public var tightRPM: Int64
    /// TPM of a TPM-tight key.
    public var tightTPM: Int64
    /// Caps every project gets (nil: none).
    public var projectRPM: Int64?
    /// Project TPM.
    public var projectTPM: Int64?
    /// Project monthly budget, nano-USD.
    public var projectBudget: Int64?
    /// Cumulative key weights under `zipf` (nil when uniform); a class so copies share it.
    private let cumulative: Cumulative?

    /// A workload.
    public init(
        keys: Int = 100, projects: Int = 4, denyPermille: Int = 100, settlePermille: Int = 800, zipf: Double = 0,
        model: String = "gpt-5", tightBudget: Int64 = Workload.defaultTightBudget, tightRPM: Int64 = 5,
        tightTPM: Int64 = 5 * Workload.reservedTokens, projectRPM: Int64? = nil, projectTPM: Int64? = nil, projectBudget: Int64? = nil
    ) {
        self.keys = keys
        self.projects = projects
        self.denyPermille = denyPermille
        self.settlePermille = settlePermille
        self.zipf = zipf
        self.model = model
        self.tightBudget = tightBudget
        self.tightRPM = tightRPM
        self.tightTPM = tightTPM
        self.projectRPM = projectRPM
        self.projectTPM = projectTPM
        self.projectBudget = projectBudget
        self.cumulative = zipf > 0 ? Cumulative(keys: keys, exponent: zipf) : nil
    }

    /// Smallest estimate, nano-USD.
    public static let minEstimate: Int64 = 1_000
    /// Spread of estimates above the smallest, nano-USD.
    public static let estimateSpread: Int64 = 9_000
    /// Default budget of a budget-tight key: about five average requests.
    public static let defaultTightBudget: Int64 = 5 * (minEstimate + estimateSpread / 2)
    /// Budget of a loose key: never reached in a run.
    public static let looseBudget: Int64 = 1 << 50
    /// Input tokens of every CHECK.
    public static let inputTokens: UInt32 = 100
    /// Largest output of every CHECK.
    public static let maxOutputTokens: UInt32 = 200
    /// Tokens every CHECK reserves against TPM.
    public static let reservedTokens = Int64(inputTokens) + Int64(maxOutputTokens)
    /// Input tokens a SETTLE reports.
    public static let actualInputTokens: UInt32 = 80
    /// Output tokens a SETTLE reports.
    public static let actualOutputTokens: UInt32 = 150

    /// How many keys are tight: the first ones.
    public var tightKeys: Int { (keys * denyPermille + 500) / 1000 }

    /// The one limit key `k` is tight on, if any.
    public func tightness(ofKey k: Int) -> Tightness? {
        guard k < tightKeys else { return nil }
        return Tightness.allCases[k % Tightness.allCases.count]
    }

    /// The key index of request `n`: a multiplicative hash, uniform over the keys, or drawn from
    /// the zipf weights.
    public func keyIndex(_ n: UInt64) -> Int {
        let h = (n &* 0x9E37_79B9_7F4A_7C15) >> 17
        guard let cumulative else { return Int(h % UInt64(keys)) }
        return cumulative.index(forUnit: Double(h & ((1 << 40) - 1)) / Double(1 << 40))
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
        CheckRequest(digest: digest, model: model, inputTokens: Self.inputTokens, maxOutputTokens: Self.maxOutputTokens, estimatedCost: estimate(n))
    }

    /// The SETTLE of an admission at `actual`.
    public func settle(_ reservation: ReservationID, actual: Int64) -> SettleRequest {
        SettleRequest(reservation: reservation, inputTokens: Self.actualInputTokens, outputTokens: Self.actualOutputTokens, cost: actual)
    }

    /// Token change of a SETTLE (actual − reserved), as the TPM buckets see it.
    public static let settleTokenDelta = Int64(actualInputTokens) + Int64(actualOutputTokens) - reservedTokens
}

/// The limit a tight key runs out of.
public enum Tightness: String, Sendable, CaseIterable {
    /// Its spend budget.
    case budget
    /// Its requests per minute.
    case rpm
    /// Its tokens per minute.
    case tpm
}

/// Cumulative zipf weights over keys (rank 0 heaviest), searched by a uniform draw.
private final class Cumulative: Sendable {
    let sums: [Double]

    init(keys: Int, exponent: Double) {
        var running = 0.0
        var sums: [Double] = []
        sums.reserveCapacity(keys)
        for i in 0..<keys {
            running += 1 / pow(Double(i + 1), exponent)
            sums.append(running)
        }
        self.sums = sums.map { $0 / running }
    }

    /// The first index whose cumulative weight exceeds `u` (0 ≤ u < 1).
    func index(forUnit u: Double) -> Int {
        var lo = 0
        var hi = sums.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if sums[mid] > u { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }
}
