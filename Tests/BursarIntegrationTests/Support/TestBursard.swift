import BursarClient
import BursarRedis
import BursarWire
import Foundation
import NIOCore
import NIOPosix
import Testing

/// A bursard child process for the shutdown, log and configuration tests: exactly the arguments
/// given, an environment without inherited `BURSARD_*` variables (bursard refuses unknown ones),
/// its log in a temporary file. Polls with `Task.sleep`, never blocking a cooperative thread.
final class TestBursard: Sendable {
    let child: ChildProcess
    let logPath: String
    /// The data-plane TCP port.
    let port: Int

    private init(child: ChildProcess, logPath: String, port: Int) {
        self.child = child
        self.logPath = logPath
        self.port = port
    }

    /// This process's environment minus `BURSARD_*`, plus `extra`.
    static func environment(_ extra: [String: String] = [:]) -> [String: String] {
        ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("BURSARD_") }.merging(extra) { _, new in new }
    }

    /// Starts bursard with `arguments` plus `--listen 127.0.0.1:<free port>` (and `--ops
    /// 127.0.0.1:0` unless the arguments or environment name the ops port) and waits until it
    /// answers PING.
    static func start(_ arguments: [String], environment extra: [String: String] = [:], attempts: Int = 400) async throws -> TestBursard {
        let bin = try BursardProcess.binary()
        let namesOps = arguments.contains("--ops") || arguments.contains("--stats") || extra["BURSARD_OPS"] != nil || extra["BURSARD_STATS"] != nil
        var lastLog = ""
        for _ in 0..<3 {
            let port = try RedisServerProcess.freeLoopbackPort()
            let log = NSTemporaryDirectory() + "bursard-\(UUID().uuidString).log"
            let argv = [bin] + arguments + ["--listen", "127.0.0.1:\(port)"] + (namesOps ? [] : ["--ops", "127.0.0.1:0"])
            let child = try ChildProcess(argv, logPath: log, environment: environment(extra))
            if try await BursardProcess.answersPing(port: port, while: child, attempts: attempts) {
                return TestBursard(child: child, logPath: log, port: port)
            }
            child.terminate()
            lastLog = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        }
        Issue.record("bursard did not come up: \(lastLog)")
        throw CancellationError()
    }

    /// Runs bursard with `arguments` to completion (a start-up failure); returns its exit code and log.
    static func runToExit(_ arguments: [String], environment extra: [String: String] = [:], within limit: Duration = .seconds(20)) async throws -> (code: Int32?, log: String) {
        let log = NSTemporaryDirectory() + "bursard-\(UUID().uuidString).log"
        let child = try ChildProcess([try BursardProcess.binary()] + arguments, logPath: log, environment: environment(extra))
        let exited = await waitForExit(child, within: limit)
        if !exited { child.terminate() }
        #expect(exited, "bursard \(arguments) did not exit")
        return (child.exitCode, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }

    /// Everything logged so far.
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Polls until the log contains `text`.
    func waitForLog(_ text: String, within limit: Duration = .seconds(10)) async throws -> Bool {
        let end = ContinuousClock.now + limit
        while ContinuousClock.now < end {
            if log.contains(text) { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return log.contains(text)
    }

    /// The ops port, read from the "ops port listening" line.
    func opsPort() async throws -> Int {
        _ = try await waitForLog("ops port listening")
        let line = try #require(log.split(separator: "\n").first { $0.contains("ops port listening") })
        let address = try #require(line.split(separator: " ").first { $0.hasPrefix("address=") })
        return try #require(Int(address.split(separator: ":").last ?? ""))
    }

    /// Polls until the process exits; false if it still runs after `limit`.
    static func waitForExit(_ child: ChildProcess, within limit: Duration) async -> Bool {
        let end = ContinuousClock.now + limit
        while child.isRunning && ContinuousClock.now < end { try? await Task.sleep(for: .milliseconds(10)) }
        return !child.isRunning
    }

    func waitForExit(within limit: Duration) async -> Bool { await Self.waitForExit(child, within: limit) }

    /// SIGTERM, then SIGKILL after 5 s (cleanup; no-op once exited).
    func stop() { child.terminate() }
}

/// A pipelined data-plane client for shutdown tests that never leaves a request hanging: every
/// request completes with its answer or fails with `closed`, whatever the connection does (the
/// general client suits connections that stay up). All state lives on the channel's event loop.
final class ProbeConnection: Sendable {
    struct Closed: Error {}

    let channel: any Channel
    private let handler: NIOLoopBound<ProbeHandler>

    private init(channel: any Channel, handler: NIOLoopBound<ProbeHandler>) {
        self.channel = channel
        self.handler = handler
    }

    static func connect(port: Int) async throws -> ProbeConnection {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(FrameDecoder(direction: .toClient)), MessageToByteHandler(FrameEncoder()), ProbeHandler(),
                    ])
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        let handler = try await channel.eventLoop.submit {
            NIOLoopBound(try channel.pipeline.syncOperations.handler(type: ProbeHandler.self), eventLoop: channel.eventLoop)
        }.get()
        return ProbeConnection(channel: channel, handler: handler)
    }

    /// Sends one request; its answer, or `Closed` if the connection closed first.
    func send(_ body: Frame.Body) async throws -> Frame.Body {
        let promise = channel.eventLoop.makePromise(of: Frame.self)
        channel.eventLoop.execute { [handler] in handler.value.send(body, promise) }
        return try await promise.futureResult.get().body
    }

    func close() async { try? await channel.close() }
}

final class ProbeHandler: ChannelDuplexHandler {
    typealias InboundIn = Frame
    typealias OutboundIn = Frame
    typealias OutboundOut = Frame

    private var context: ChannelHandlerContext?
    private var waiting: [UInt64: EventLoopPromise<Frame>] = [:]
    private var nextID: UInt64 = 1

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        failAll()
    }

    func send(_ body: Frame.Body, _ promise: EventLoopPromise<Frame>) {
        guard let context, context.channel.isActive else { return promise.fail(ProbeConnection.Closed()) }
        let id = nextID
        nextID += 1
        waiting[id] = promise
        let written = context.eventLoop.makePromise(of: Void.self)
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        written.futureResult.whenFailure { _ in bound.value.waiting.removeValue(forKey: id)?.fail(ProbeConnection.Closed()) }
        context.writeAndFlush(wrapOutboundOut(Frame(requestID: id, body: body)), promise: written)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        waiting.removeValue(forKey: frame.requestID)?.succeed(frame)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func failAll() {
        let pending = waiting
        waiting.removeAll()
        for promise in pending.values { promise.fail(ProbeConnection.Closed()) }
    }
}
