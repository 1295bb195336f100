public import BursarRedis
public import Logging
public import ServiceLifecycle
import Foundation

/// Supervises bursard's own `redis-server` child: restarts it if it dies, stops it cleanly (AOF
/// flushed) on graceful shutdown. Start the child before the service group runs, so the data
/// plane never starts without a store; list it first in the group, so it stops last, after the
/// data plane has answered everything in flight.
public final class EmbeddedRedisService: Service, Sendable {
    /// The child.
    public let server: RedisServerProcess
    private let logger: Logger

    /// A supervisor for an already started child.
    public init(server: RedisServerProcess, logger: Logger) {
        self.server = server
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var backoffMs = 100
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(200))
                if Task.isCancelled { break }
                if !self.server.isRunning {
                    self.logger.error("embedded redis-server exited; restarting", metadata: ["retry_in_ms": "\(backoffMs)"])
                    try? await Task.sleep(for: .milliseconds(backoffMs))
                    do {
                        try await offThread { [server = self.server] () throws(RedisError) in try server.start() }
                        self.logger.info("embedded redis-server restarted")
                        backoffMs = 100
                    } catch {
                        self.logger.error("embedded redis-server restart failed", metadata: ["error": "\(error)"])
                        backoffMs = min(backoffMs * 2, 5_000)
                    }
                }
            }
        }
        logger.info("stopping embedded redis-server")
        // SIGTERM: Redis finishes the command at hand, fsyncs the AOF and exits.
        await offThread { [server] in server.stop() }
        if server.isRunning {
            logger.error("embedded redis-server did not stop")
        } else {
            logger.info("embedded redis-server stopped")
        }
    }
}
