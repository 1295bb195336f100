public import Hummingbird
public import Logging
public import NIOCore

/// Where the ops port listens and what it serves.
public struct OpsConfiguration: Sendable {
    /// Host to bind (default loopback: the admin API is not meant for the open network).
    public var host: String
    /// Port (0 picks a free one).
    public var port: Int

    /// A configuration; the default is 127.0.0.1:7421.
    public init(host: String = "127.0.0.1", port: Int = 7421) {
        self.host = host
        self.port = port
    }
}

/// The ops port: bursard's HTTP server (Hummingbird) for the admin API.
public enum OpsServer {
    /// The router with every ops route.
    public static func router(service: AdminService) -> Router<BasicRequestContext> {
        let router = Router()
        AdminRoutes.add(to: router, service: service)
        return router
    }

    /// The ops application, a `Service` to run in bursard's `ServiceGroup`. `onRunning` receives
    /// the bound port.
    public static func application(
        configuration: OpsConfiguration, service: AdminService, group: any EventLoopGroup, logger: Logger,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        Application(
            router: router(service: service),
            configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port), serverName: "bursard"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? configuration.port) },
            eventLoopGroupProvider: .shared(group),
            logger: logger)
    }
}
