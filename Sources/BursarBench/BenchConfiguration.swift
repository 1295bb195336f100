/// Where the harness sends its load.
public struct BenchTarget: Sendable, Hashable, CustomStringConvertible {
    /// Host name or address.
    public var host: String
    /// TCP port.
    public var port: Int

    /// A target.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT`; nil when malformed.
    public init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else {
            return nil
        }
        let host = String(text[..<colon])
        guard !host.isEmpty else { return nil }
        self.init(host: host, port: port)
    }

    /// `HOST:PORT`.
    public var description: String { "\(host):\(port)" }
}

/// Everything one closed-loop run needs.
public struct BenchConfiguration: Sendable {
    /// bursard instances; connection `i` goes to target `i % targets.count`.
    public var targets: [BenchTarget]
    /// Connections in total, spread over the targets.
    public var connections: Int
    /// Requests each connection keeps in flight (closed loop).
    public var pipeline: Int
    /// Measured seconds, after the warmup.
    public var duration: Duration
    /// Seconds of load before measuring starts (counted in the audit, not in the figures).
    public var warmup: Duration
    /// How long in-flight requests may take to finish after the end before the harness closes
    /// its connections and counts them as unanswered.
    public var drainGrace: Duration
    /// The workload.
    public var workload: Workload
    /// Local target processes whose CPU time is read from /proc (optional).
    public var targetPIDs: [Int32]

    /// A configuration; defaults are a small run.
    public init(
        targets: [BenchTarget], connections: Int = 4, pipeline: Int = 8, duration: Duration = .seconds(10),
        warmup: Duration = .seconds(1), drainGrace: Duration = .seconds(2), workload: Workload = Workload(), targetPIDs: [Int32] = []
    ) {
        self.targets = targets
        self.connections = connections
        self.pipeline = pipeline
        self.duration = duration
        self.warmup = warmup
        self.drainGrace = drainGrace
        self.workload = workload
        self.targetPIDs = targetPIDs
    }
}
