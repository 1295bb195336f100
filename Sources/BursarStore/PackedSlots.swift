/// Values the steps pack with Redis's `struct` library: 64-bit big-endian slots (`>i8`: a CHECK's
/// and an applied SETTLE's reply, the usage history's record, a reservation's and a compiled key
/// record's numbers; `BITFIELD … i64` moves a history record's denial slots) and strings after a
/// 16-bit big-endian length (`Hc0`: a reservation's and a compiled key record's names).
public enum PackedSlots {
    /// Slot `index` of `bytes`, signed; bytes past the end read as zero (a history record is only
    /// as long as its highest slot written).
    static func int64(_ bytes: [UInt8], _ index: Int) -> Int64 {
        int64(bytes, at: index * 8)
    }

    /// The signed 64-bit big-endian integer at byte `offset` of `bytes`; bytes past the end read
    /// as zero.
    public static func int64(_ bytes: [UInt8], at offset: Int) -> Int64 {
        var v: UInt64 = 0
        for at in offset..<offset + 8 { v = v << 8 | UInt64(at < bytes.count ? bytes[at] : 0) }
        return Int64(bitPattern: v)
    }

    /// `count` length-prefixed strings (`Hc0`) from byte `offset` of `bytes`, and the offset after
    /// the last; nil if they run past the end.
    public static func strings(_ bytes: [UInt8], at offset: Int, count: Int) -> (strings: [String], end: Int)? {
        var at = offset
        var out: [String] = []
        out.reserveCapacity(count)
        for _ in 0..<count {
            guard at + 2 <= bytes.count else { return nil }
            let n = Int(bytes[at]) << 8 | Int(bytes[at + 1])
            guard at + 2 + n <= bytes.count else { return nil }
            out.append(String(decoding: bytes[(at + 2)..<(at + 2 + n)], as: UTF8.self))
            at += 2 + n
        }
        return (out, at)
    }
}
