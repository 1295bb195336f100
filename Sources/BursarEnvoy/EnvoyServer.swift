public import BursarWire
import EnvoyAPI
import GRPCCore
import GRPCNIOTransportHTTP2
public import Logging
public import NIOPosix
public import ServiceLifecycle

/// What the gRPC front door asks of the data plane: decide a CHECK, settle a reservation, and
/// give back an admission its client will never learn of. bursard passes its decision engine's:
/// the same path, deadline and store failure policy as the frames, and the engine's release of
/// an orphaned admission (voided: every counter it moved given back, its request included, SPEC
/// §13.7).
public struct EnvoyDecider: Sendable {
    public var check: @Sendable (CheckRequest) async -> CheckResult
    public var settle: @Sendable (SettleRequest) async -> ReservationResult
    public var refuse: @Sendable (ReservationID) -> Void

    public init(
        check: @escaping @Sendable (CheckRequest) async -> CheckResult, settle: @escaping @Sendable (SettleRequest) async -> ReservationResult,
        refuse: @escaping @Sendable (ReservationID) -> Void
    ) {
        self.check = check
        self.settle = settle
        self.refuse = refuse
    }

    /// A CHECK for a caller that may have gone: Envoy cancels its call when the filter's timeout
    /// passes, and then acts on its failure mode, not on bursard's answer. An admission made for
    /// a cancelled call is voided at once, so it never holds the limits of a request Envoy refused
    /// (or let through unchecked).
    func check(_ request: CheckRequest, for context: ServerContext) async -> CheckResult {
        let result = await check(request)
        if result.allowed, context.cancellation.isCancelled {
            refuse(result.reservation)
        }
        return result
    }
}

/// `envoy.service.auth.v3.Authorization/Check`: an ext_authz request decided as a CHECK. A
/// request without `x-bursar-estimated-cost` is priced by bursar from the organization's price
/// table; a model without a price under a money limit is refused `price_unknown` (SPEC §13.12).
struct AuthorizationService: Envoy_Service_Auth_V3_Authorization.SimpleServiceProtocol {
    let mapping: EnvoyAuthorization
    let decider: EnvoyDecider

    func check(request: Envoy_Service_Auth_V3_CheckRequest, context: ServerContext) async throws -> Envoy_Service_Auth_V3_CheckResponse {
        switch mapping.decision(for: request) {
        case .answered(let response):
            return response
        case .check(let check):
            let result = await decider.check(check, for: context)
            return mapping.response(for: result, model: check.model)
        }
    }
}

/// `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`: the request phase decided as a
/// CHECK priced from the price table, stream done as the SETTLE of its reservation (SPEC §19).
struct RateLimitService: Envoy_Service_Ratelimit_V3_RateLimitService.SimpleServiceProtocol {
    let mapping: EnvoyRateLimit
    let decider: EnvoyDecider
    let logger: Logger

    func shouldRateLimit(
        request: Envoy_Service_Ratelimit_V3_RateLimitRequest, context: ServerContext
    ) async throws -> Envoy_Service_Ratelimit_V3_RateLimitResponse {
        switch mapping.decision(for: request) {
        case .answered(let response):
            return response
        case .invalid(let message):
            throw RPCError(code: .invalidArgument, message: message)
        case .check(let check):
            let result = await decider.check(check, for: context)
            return mapping.response(for: result, model: check.model)
        case .settle(let settle):
            // Envoy ignores this answer: what matters is that the reservation is settled once.
            let result = await decider.settle(settle)
            if result.status != .applied && result.status != .alreadySettled {
                logger.warning("stream-done SETTLE not applied", metadata: ["reservation": "\(settle.reservation)", "status": "\(result.status)"])
            }
            return EnvoyRateLimit.ok()
        }
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

    public init(
        address: EnvoyListenAddress, mapping: EnvoyAuthorization, rateLimit: EnvoyRateLimit, decider: EnvoyDecider,
        group: MultiThreadedEventLoopGroup, logger: Logger
    ) {
        let socket: GRPCNIOTransportCore.SocketAddress =
            switch address {
            case .tcp(let host, let port): host.contains(":") ? .ipv6(host: host, port: port) : .ipv4(host: host, port: port)
            case .unix(let path): .unixDomainSocket(path: path)
            }
        self.server = GRPCServer(
            transport: HTTP2ServerTransport.Posix(address: socket, transportSecurity: .plaintext, eventLoopGroup: group),
            services: [
                AuthorizationService(mapping: mapping, decider: decider),
                RateLimitService(mapping: rateLimit, decider: decider, logger: logger),
            ])
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
                    self.logger.info("gRPC front door (Envoy ext_authz and rate limit service) listening", metadata: ["address": "\(bound)", "configured": "\(self.address)"])
                }
            }
        } onGracefulShutdown: {
            self.server.beginGracefulShutdown()
        }
    }
}
