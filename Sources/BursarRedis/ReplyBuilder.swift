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

    fileprivate func add(_ value: RedisValue) {
        var value = value
        while !open.isEmpty {
            let last = open.count - 1
            open[last].elements.append(value)
            guard open[last].elements.count == open[last].count else { return }
            value = .array(open.removeLast().elements)
        }
        complete = value
    }

    fileprivate func beginArray(_ count: Int) {
        guard count > 0 else { return add(.array([])) }
        var elements: [RedisValue] = []
        elements.reserveCapacity(count)
        open.append((elements, count))
    }

    /// The builder a reader task belongs to; also what every callback returns (hiredis only needs
    /// a non-null object: it never looks inside, and `freeObject` has nothing to free).
    private static func builder(_ task: UnsafePointer<redisReadTask>?) -> (ReplyBuilder, UnsafeMutableRawPointer) {
        let raw = task!.pointee.privdata!
        return (Unmanaged<ReplyBuilder>.fromOpaque(raw).takeUnretainedValue(), raw)
    }

    /// The reader's callbacks, for the life of the process.
    nonisolated(unsafe) static let functions: UnsafeMutablePointer<redisReplyObjectFunctions> = {
        let functions = UnsafeMutablePointer<redisReplyObjectFunctions>.allocate(capacity: 1)
        functions.initialize(to: redisReplyObjectFunctions(
            createString: { task, string, length in
                let (builder, marker) = ReplyBuilder.builder(task)
                let bytes = UnsafeRawBufferPointer(start: string, count: length)
                switch task!.pointee.type {
                case REDIS_REPLY_ERROR: builder.add(.error(String(decoding: bytes, as: UTF8.self)))
                case REDIS_REPLY_STATUS: builder.add(.status(String(decoding: bytes, as: UTF8.self)))
                default: builder.add(.bulk(length == 0 ? [] : Array(bytes)))
                }
                return marker
            },
            createArray: { task, count in
                let (builder, marker) = ReplyBuilder.builder(task)
                builder.beginArray(Int(count))
                return marker
            },
            createInteger: { task, value in
                let (builder, marker) = ReplyBuilder.builder(task)
                builder.add(.integer(Int64(value)))
                return marker
            },
            createNil: { task in
                let (builder, marker) = ReplyBuilder.builder(task)
                builder.add(.null)
                return marker
            },
            freeObject: { _ in }
        ))
        return functions
    }()
}
