import Hummingbird
import NIOCore

/// Reads and discards what is left of a request's body once its response has been written, up
/// to a bound in bytes and time (RFC 9112 §9.6).
///
/// A handler may answer before it has read the whole body: a body over the limit (400), a
/// request refused by authentication or routing (401, 403, 404). A client that writes its whole
/// body before it reads (Python's `urllib`, most simple clients) must still see that answer:
/// left unread, the body fills the connection's buffers, the client blocks writing and never
/// reads the answer; with `Connection: close` the server also stops reading. So the response's
/// body, once written, goes on to read the request's remaining body and discard it, for at most
/// `maxBytes` or `maxDuration`, whichever comes first.
struct RequestBodyDrainMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The most a drain discards (past it, the connection is left as it is).
    static var maxBytes: Int { 64 << 20 }
    /// The longest a drain reads.
    static var maxDuration: Duration { .seconds(5) }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // Only a request announcing a body can leave one unread.
        guard request.headers[.contentLength].map({ $0 != "0" }) ?? (request.headers[.transferEncoding] != nil) else {
            return try await next(request, context)
        }
        let body = TrackedRequestBody(request.body)
        var request = request
        request.body = RequestBody(asyncSequence: body)
        var response = try await next(request, context)
        guard !body.finished else { return response }
        let written = response.body
        response.body = ResponseBody(contentLength: written.contentLength) { writer in
            try await written.write(writer)
            await body.drain(maxBytes: Self.maxBytes, maxDuration: Self.maxDuration)
        }
        return response
    }
}

/// A request body read through one iterator, whoever reads it: the handler, then the drain. It
/// knows whether the body was read to its end. Used by one request's task at a time.
final class TrackedRequestBody: AsyncSequence, @unchecked Sendable {
    typealias Element = ByteBuffer

    private let original: RequestBody
    private var iterator: RequestBody.AsyncIterator?
    /// The body has been read to its end (or its connection failed).
    private(set) var finished = false

    init(_ original: RequestBody) { self.original = original }

    struct AsyncIterator: AsyncIteratorProtocol {
        let body: TrackedRequestBody
        mutating func next() async throws -> ByteBuffer? { try await body.next() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(body: self) }

    func next() async throws -> ByteBuffer? {
        if finished { return nil }
        if iterator == nil { iterator = original.makeAsyncIterator() }
        do {
            let part = try await iterator!.next()
            if part == nil { finished = true }
            return part
        } catch {
            finished = true
            throw error
        }
    }

    /// Reads and discards the rest, within the bounds. Errors end it quietly (the client went);
    /// a client that stops sending is given up on at `maxDuration` (the read is cancelled, which
    /// ends the connection's input).
    func drain(maxBytes: Int, maxDuration: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                var discarded = 0
                while !self.finished, discarded <= maxBytes {
                    guard let part = try? await self.next() else { return }
                    discarded += part.readableBytes
                }
            }
            group.addTask { try? await Task.sleep(for: maxDuration) }
            await group.next()
            group.cancelAll()
        }
    }
}
