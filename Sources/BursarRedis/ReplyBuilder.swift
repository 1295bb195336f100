import CHiredis

/// Builds each reply as a `RedisValue` straight from hiredis's protocol reader, in place of
/// hiredis's `redisReply` tree. hiredis's own functions `calloc` an object per element (a CHECK's
/// reply is 18 of them) and `malloc` every string, which were then copied into a `RedisValue` and
/// freed; here its parser calls back into this builder, which appends each element to the array
/// being built. hiredis still does all the parsing: this only decides what an element becomes.
///
/// One builder per connection, installed on its reader (`install(on:)`), used by the one thread
/// that owns the connection. The reader calls back in pre-order (an array before its elements), and
/// a reply may arrive over several reads: what is built so far stays here until it is complete.
final class ReplyBuilder {
    /// Arrays begun and not yet complete, innermost last, each with how many elements it has.
    private var open: [(elements: [RedisValue], count: Int)] = []
    /// The last reply completed and not yet taken.
    private var complete: RedisValue?

    /// The reply hiredis just reported complete.
    func take() -> RedisValue? {
        defer { complete = nil }
        return complete
    }

    /// Forgets a reply cut off by an error.
    func reset() {
        open.removeAll(keepingCapacity: true)
        complete = nil
    }

    /// Makes hiredis's reader of `context` build its replies here. The builder must outlive the
    /// context (the connection owns both and frees the context first).
    func install(on context: UnsafeMutablePointer<redisContext>) {
        guard let reader = context.pointee.reader else { return }
        reader.pointee.fn = Self.functions
        install(on: reader)
    }

    /// Makes `reader` (made with `functions`) build its replies here. The builder must outlive it.
    func install(on reader: UnsafeMutablePointer<redisReader>) {
        reader.pointee.privdata = Unmanaged.passUnretained(self).toOpaque()
    }

    /// Called for every element of every reply (a CHECK's is 18), so `open` is reached once per
    /// element, through one `inout` access (`place`), rather than once per read and write of it:
    /// each access to a class's stored property is checked for exclusivity at run time.
    fileprivate func add(_ value: RedisValue) {
        if let reply = Self.place(value, in: &open) { complete = reply }
    }

    /// Appends `value` to the innermost open array and closes every array that completes; returns
    /// the reply when `value` completes it.
    private static func place(_ value: RedisValue, in open: inout [(elements: [RedisValue], count: Int)]) -> RedisValue? {
        var value = value
        while let last = open.indices.last {
            open[last].elements.append(value)
            guard open[last].elements.count == open[last].count else { return nil }
            value = .array(open.removeLast().elements)
        }
        return value
    }

    fileprivate func beginArray(_ count: Int) {
        guard count > 0 else { return add(.array([])) }
        var elements: [RedisValue] = []
        elements.reserveCapacity(count)
        open.append((elements, count))
    }

    /// Runs `body` on the builder a reader task belongs to, without retaining and releasing it
    /// for every element (the connection that owns the reader keeps it alive: `install(on:)`);
    /// returns what every callback returns (hiredis only needs a non-null object: it never looks
    /// inside, and `freeObject` has nothing to free).
    private static func with(_ task: UnsafePointer<redisReadTask>?, _ body: (ReplyBuilder) -> Void) -> UnsafeMutableRawPointer {
        let raw = task!.pointee.privdata!
        Unmanaged<ReplyBuilder>.fromOpaque(raw)._withUnsafeGuaranteedRef(body)
        return raw
    }

    /// The reader's callbacks, for the life of the process.
    nonisolated(unsafe) static let functions: UnsafeMutablePointer<redisReplyObjectFunctions> = {
        let functions = UnsafeMutablePointer<redisReplyObjectFunctions>.allocate(capacity: 1)
        functions.initialize(to: redisReplyObjectFunctions(
            createString: { task, string, length in
                ReplyBuilder.with(task) { builder in
                    let bytes = UnsafeRawBufferPointer(start: string, count: length)
                    switch task!.pointee.type {
                    case REDIS_REPLY_ERROR: builder.add(.error(String(decoding: bytes, as: UTF8.self)))
                    case REDIS_REPLY_STATUS: builder.add(.status(String(decoding: bytes, as: UTF8.self)))
                    default: builder.add(.bulk(length == 0 ? [] : Array(bytes)))
                    }
                }
            },
            createArray: { task, count in
                ReplyBuilder.with(task) { $0.beginArray(Int(count)) }
            },
            createInteger: { task, value in
                ReplyBuilder.with(task) { $0.add(.integer(Int64(value))) }
            },
            createNil: { task in
                ReplyBuilder.with(task) { $0.add(.null) }
            },
            freeObject: { _ in }
        ))
        return functions
    }()
}
