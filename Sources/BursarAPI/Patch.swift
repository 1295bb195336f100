/// One field of a PATCH body: absent leaves the value as it is, `null` clears it, a value sets it.
///
/// Codable's synthesized decoding cannot tell an absent key from an explicit `null`; the update
/// bodies decode their nullable fields through `KeyedDecodingContainer.patch(_:forKey:)` instead.
public enum Patch<Value: Sendable & Hashable & Codable>: Sendable, Hashable {
    /// The key was absent: keep the current value.
    case unchanged
    /// The key was `null`: remove the value (no limit).
    case clear
    /// The key held a value.
    case set(Value)

    /// Applies the patch to a current value.
    public func applied(to current: Value?) -> Value? {
        switch self {
        case .unchanged: return current
        case .clear: return nil
        case .set(let v): return v
        }
    }

    /// A patch from an optional: nil clears.
    public init(_ value: Value?) {
        self = value.map { .set($0) } ?? .clear
    }
}

extension KeyedDecodingContainer {
    /// Decodes a PATCH field: absent → `.unchanged`, `null` → `.clear`, else `.set`.
    public func patch<V>(_ type: V.Type, forKey key: Key) throws -> Patch<V> {
        guard contains(key) else { return .unchanged }
        if try decodeNil(forKey: key) { return .clear }
        return .set(try decode(V.self, forKey: key))
    }
}

extension KeyedEncodingContainer {
    /// Encodes a PATCH field: `.unchanged` writes nothing, `.clear` writes `null`.
    public mutating func encode<V>(_ patch: Patch<V>, forKey key: Key) throws {
        switch patch {
        case .unchanged: break
        case .clear: try encodeNil(forKey: key)
        case .set(let v): try encode(v, forKey: key)
        }
    }
}
