/// A failure talking to Redis. Codes are static so they can grow without breaking callers.
public struct RedisError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        /// Could not connect (refused, no such socket, timeout while connecting).
        public static let connectionFailed = Code(name: "connection_failed")
        /// The connection broke or timed out mid-command; the command's outcome is unknown.
        public static let connectionLost = Code(name: "connection_lost")
        /// The request's deadline passed before it was sent; it was never executed.
        public static let deadlineExceeded = Code(name: "deadline_exceeded")
        /// Redis answered with an error reply.
        public static let server = Code(name: "server")
        /// The client was shut down.
        public static let shutdown = Code(name: "shutdown")
        /// The reply did not have the expected shape.
        public static let unexpectedReply = Code(name: "unexpected_reply")
        /// A Redis Cluster refused the command before running it (MOVED, ASK, TRYAGAIN, CLUSTERDOWN,
        /// a script refused mid-migration) until the deadline or the retry limit: it never ran.
        public static let clusterRefused = Code(name: "cluster_refused")
        /// Shed by the client's load shedding before it was sent (`RedisLane.sheddable`): it
        /// never ran. The caller answers `overloaded`.
        public static let shed = Code(name: "shed")
        /// The endpoint string could not be parsed.
        public static let badEndpoint = Code(name: "bad_endpoint")
        public var description: String { name }
    }

    /// What kind of failure.
    public var code: Code
    /// Detail.
    public var message: String

    /// An error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// True when the command certainly did not run (safe to answer "store unavailable" with no side effect).
    public var certainlyNotExecuted: Bool { code == .connectionFailed || code == .deadlineExceeded || code == .shutdown || code == .clusterRefused
        || code == .shed }

    public var description: String { "redis \(code): \(message)" }
}
