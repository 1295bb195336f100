public import BursarWire
import EnvoyAPI
import GRPCCore
import GRPCNIOTransportHTTP2
public import Logging
public import NIOPosix
public import ServiceLifecycle

/// What the gRPC front door asks of the data plane: decide a CHECK, and give back an admission
/// its client is refused after all. bursard passes its decision engine's: the same path, deadline
/// and store failure policy as a CHECK frame, and the engine's release of an orphaned admission
/// (voided: every counter it moved given back, its request included, SPEC §13.7).
public struct EnvoyDecider: Sendable {
    public var check: @Sendable (CheckRequest) async -> CheckResult
    public var refuse: @Sendable (ReservationID) -> Void

    public init(check: @escaping @Sendable (CheckRequest) async -> CheckResult, refuse: @escaping @Sendable (ReservationID) -> Void) {
        self.check = check
        self.refuse = refuse
    }
}

/// `envoy.service.auth.v3.Authorization/Check`: an ext_authz request decided as a CHECK.
///
/// A request without a cost estimate (no `x-bursar-estimated-cost`) is admitted for free only
/// where no money limit applies. If the answer shows a key or project budget or metered credits,
/// the admission is given back whole (its request included) and the request refused
/// `price_unknown` (HTTP 403): under a budget a request is never silently free.
struct AuthorizationService: Envoy_Service_Auth_V3_Authorization.SimpleServiceProtocol {
    let mapping: EnvoyAuthorization
    let decider: EnvoyDecider

    func check(request: Envoy_Service_Auth_V3_CheckRequest, context: ServerContext) async throws -> Envoy_Service_Auth_V3_CheckResponse {
        switch mapping.decision(for: request) {
        case .answered(let response):
            return response
        case .check(let check):
            let result = await decider.check(check)
            if result.allowed, check.estimatedCost == 0, result.moneyLimited {
                decider.refuse(result.reservation)
                return EnvoyAuthorization.denied(
                    status: .forbidden, type: "price_unknown",
                    message: "model \(check.model) has no cost estimate, and a budget or metered credits apply to this key: "
                        + "send \(EnvoyAuthorization.estimatedCostHeader) (nano-USD)")
            }
            return mapping.response(for: result)
        }
    }
}

extension CheckResult {
    /// Whether a money limit (a key or project budget, or metered credits) applies.
    var moneyLimited: Bool {
        keyBudgetRemaining != CheckResult.unlimited || projectBudgetRemaining != CheckResult.unlimited
            || orgCreditsRemaining != CheckResult.unlimited
    }
}

/// Where the gRPC front door listens.
public enum EnvoyListenAddress: Sendable, Hashable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(path: String)

    public var description: String {
        switch self {
        case .tcp(let host, let port): "\(host):\(port)"
        case .unix(let path): "unix:\(path)"
        }
    }
}

/// The gRPC front door (`--grpc`), run as a `Service`: Envoy's ext_authz filter calls it.
/// Graceful shutdown stops accepting and lets calls in flight finish.
public final class EnvoyServer: Service, Sendable {
    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    private let address: EnvoyListenAddress
    private let logger: Logger

    public init(address: EnvoyListenAddress, mapping: EnvoyAuthorization, decider: EnvoyDecider, group: MultiThreadedEventLoopGroup, logger: Logger) {
        let socket: GRPCNIOTransportCore.SocketAddress =
            switch address {
            case .tcp(let host, let port): .ipv4(host: host, port: port)
            case .unix(let path): .unixDomainSocket(path: path)
            }
        self.server = GRPCServer(
            transport: HTTP2ServerTransport.Posix(address: socket, transportSecurity: .plaintext, eventLoopGroup: group),
            services: [AuthorizationService(mapping: mapping, decider: decider)])
        self.address = address
        self.logger = logger
    }

    /// Serves until graceful shutdown; logs the address once it is bound (tests and operators
    /// wait for that line, not for the process).
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { tasks in
                tasks.addTask { try await self.server.serve() }
                if let bound = try await self.server.listeningAddress {
                    self.logger.info("gRPC front door (Envoy ext_authz) listening", metadata: ["address": "\(bound)", "configured": "\(self.address)"])
                }
            }
        } onGracefulShutdown: {
            self.server.beginGracefulShutdown()
        }
    }
}
