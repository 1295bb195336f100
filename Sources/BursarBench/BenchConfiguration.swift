/// Where the harness sends its load.
public enum BenchTarget: Sendable, Hashable, CustomStringConvertible {
    /// A bursard data plane over TCP.
    case tcp(host: String, port: Int)
    /// A bursard data plane over a unix socket.
    case unix(path: String)

    /// Parses `HOST:PORT`; nil when malformed.
    public init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else {
            return nil
        }
        let host = String(text[..<colon])
        guard !host.isEmpty else { return nil }
        self = .tcp(host: host, port: port)
    }

    /// `HOST:PORT` or `unix:PATH`.
    public var description: String {
        switch self {
        case .tcp(let host, let port): "\(host):\(port)"
        case .unix(let path): "unix:\(path)"
        }
    }
}

/// How requests are offered.
public enum LoadModel: Sendable, Hashable, CustomStringConvertible {
    /// Each connection keeps `pipeline` CHECKs (each followed by its SETTLE or RELEASE) in flight;
    /// a new one starts when one finishes. Measures service time at saturation.
    case closed(pipeline: Int)
    /// CHECKs start on a fixed schedule, `rate` per second in total, whatever the answers do.
    /// Latency runs from each CHECK's scheduled start (not from when it was actually sent), so a
    /// stall is charged to every request it delayed: coordinated omission is corrected.
    case open(rate: Int)

    public var description: String {
        switch self {
        case .closed(let k): "closed loop, \(k) in flight per connection"
        case .open(let rate): "open loop, \(rate) CHECK/s"
        }
    }
}

/// Everything one run needs.
public struct BenchConfiguration: Sendable {
    /// bursard instances; connection `i` goes to target `i % targets.count`. Empty with `direct`.
    public var targets: [BenchTarget]
    /// When set, the decisions go straight to this Redis with bursar's own scripts instead of
    /// through bursard: the floor bursard is measured against.
    public var direct: String?
    /// Connections in total, spread over the targets (with `direct`: independent request lanes,
    /// all pipelined through one Redis client configured like bursard's).
    public var connections: Int
    /// Closed or open loop.
    public var load: LoadModel
    /// Measured seconds, after the warmup.
    public var duration: Duration
    /// Seconds of load before measuring starts (counted in the audit, not in the figures).
    public var warmup: Duration
    /// How long in-flight requests may take to finish after the end before the harness closes
    /// its connections and counts them as unanswered.
    public var drainGrace: Duration
    /// Open loop: most requests in flight per connection; a scheduled CHECK that would pass it is
    /// not sent and is counted as `shed` (bounds the harness's memory when the target stalls).
    public var maxInFlightPerConnection: Int
    /// The workload.
    public var workload: Workload
    /// Local target processes whose CPU time and RSS are read from /proc (optional).
    public var targetPIDs: [Int32]

    /// A configuration; defaults are a small closed-loop run.
    public init(
        targets: [BenchTarget], direct: String? = nil, connections: Int = 4, load: LoadModel = .closed(pipeline: 8),
        duration: Duration = .seconds(10), warmup: Duration = .seconds(1), drainGrace: Duration = .seconds(2),
        maxInFlightPerConnection: Int = 10_000, workload: Workload = Workload(), targetPIDs: [Int32] = []
    ) {
        self.targets = targets
        self.direct = direct
        self.connections = connections
        self.load = load
        self.duration = duration
        self.warmup = warmup
        self.drainGrace = drainGrace
        self.maxInFlightPerConnection = maxInFlightPerConnection
        self.workload = workload
        self.targetPIDs = targetPIDs
    }
}
