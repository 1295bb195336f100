/// The order in which a CHECK's conditions are evaluated. The first that fails is the deny reason.
///
/// Identity first (who is asking), then standing (may they ask at all), then the request's shape,
/// then the rate limits (cheap to retry), then spend. A request that fails several conditions gets
/// the earliest reason in this list, so a gateway never advertises a retry time to a caller who
/// would be refused anyway.
public enum CheckStage: Int, Sendable, CaseIterable {
    case keyExists, keyNotRevoked, keyNotExpired
    case orgActive, projectActive, creatorHasAccess
    case modelAllowed
    case requestFitsTPM
    case keyRPM, keyTPM, projectRPM, projectTPM
    case keyBudget, projectBudget, orgCredits
}

/// Combines a key's own limit with a cap from elsewhere (a member grant): the tighter applies.
/// `nil` means "no limit at this level".
@inlinable
public func tighter(_ a: Int64?, _ b: Int64?) -> Int64? {
    switch (a, b) {
    case (nil, nil): return nil
    case (let x?, nil): return x
    case (nil, let y?): return y
    case (let x?, let y?): return min(x, y)
    }
}
