import BursarRBAC
public import BursarStore

/// Who is calling: the principal behind the bearer token.
public struct Actor: Sendable, Hashable {
    /// The principal.
    public var principal: Principal

    /// An actor.
    public init(_ principal: Principal) { self.principal = principal }

    /// The user id, or nil for the operator.
    public var userID: UInt64? {
        if case .user(let id) = principal { return id }
        return nil
    }

    /// How the audit log names the actor.
    public var label: String {
        switch principal {
        case .operator: "operator"
        case .user(let id): "user:\(id)"
        }
    }
}
