/// Values the steps pack as 64-bit big-endian slots: Redis's `struct` library with `>i8` (a CHECK's
/// and an applied SETTLE's reply, the usage history's record, a reservation's numbers).
enum PackedSlots {
    /// Slot `index` of `bytes`, signed; bytes past the end read as zero (a history record is only
    /// as long as its highest slot written).
    static func int64(_ bytes: [UInt8], _ index: Int) -> Int64 {
        int64(bytes, at: index * 8)
    }

    /// The signed 64-bit big-endian integer at byte `offset` of `bytes`; bytes past the end read
    /// as zero.
    static func int64(_ bytes: [UInt8], at offset: Int) -> Int64 {
        var v: UInt64 = 0
        for at in offset..<offset + 8 { v = v << 8 | UInt64(at < bytes.count ? bytes[at] : 0) }
        return Int64(bitPattern: v)
    }
}
