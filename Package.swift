// swift-tools-version: 6.2
import PackageDescription

/// CI (deploy/test.sh) sets BURSAR_WERROR=1: every warning in bursar's own targets fails the build.
let werror = Context.environment["BURSAR_WERROR"] != nil

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
] + (werror ? [.treatAllWarnings(as: .error)] : [])

let package = Package(
    name: "bursar",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "bursard", targets: ["bursard"]),
        .executable(name: "bursarctl", targets: ["bursarctl"]),
        .library(name: "BursarClient", targets: ["BursarClient"]),
        .library(name: "BursarWire", targets: ["BursarWire"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        // hiredis (C), wrapped once. Only BursarRedis imports it.
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        // Wire protocol v1: frames, codes, the decoder. Pure: no sockets, no C.
        .target(
            name: "BursarWire",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),
        // The limit rules and their arithmetic: calendar windows, buckets, deny order. Pure.
        .target(name: "BursarLimits", swiftSettings: strict),
        // Who may do what: the permission matrix, standings, and the caps a key must stay within. Pure.
        .target(name: "BursarRBAC", dependencies: ["BursarLimits"], swiftSettings: strict),
        // The admin API's JSON bodies, shared by the server and bursarctl. Pure Codable values.
        .target(name: "BursarAPI", dependencies: ["BursarLimits"], swiftSettings: strict),
        // The Redis client: hiredis on event loops and dedicated threads, pipelined, with deadlines.
        .target(
            name: "BursarRedis",
            dependencies: [
                "CHiredis",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // Throwaway Redis Cluster and Sentinel topologies on loopback, for the tests (and nothing
        // that ships): built from redis-server processes with the cluster's and sentinel's own commands.
        .target(
            name: "BursarRedisTesting",
            dependencies: ["BursarRedis"],
            swiftSettings: strict
        ),
        // Metadata (orgs, users, projects, keys) and the atomic limiter scripts, stored in Redis.
        .target(
            name: "BursarStore",
            dependencies: [
                "BursarRedis", "BursarLimits", "BursarWire", "BursarRBAC",
                .product(name: "Crypto", package: "swift-crypto"),
                // The AES block permutation that seals reservation ids (SPEC §5).
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            // The atomic steps' Lua (Sources/BursarStore/Lua), compiled in: one binary.
            resources: [.embedInCode("Lua")],
            swiftSettings: strict
        ),
        // The data-plane server: NIO listeners, the decision engine, the metadata cache.
        .target(
            name: "BursarServer",
            dependencies: [
                "BursarWire", "BursarStore", "BursarRedis",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                // Mutual TLS on the TCP data plane (--listen-tls-*).
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        // The admin API (HTTP/JSON on the ops port): authentication, authorization, audit.
        .target(
            name: "BursarAdmin",
            dependencies: [
                "BursarAPI", "BursarRBAC", "BursarStore", "BursarRedis", "BursarLimits", "BursarWire",
                .product(name: "Hummingbird", package: "hummingbird"),
                // TLS on the ops port (--ops-tls-cert/--ops-tls-key); swift-nio-ssl is already
                // in the graph through async-http-client.
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The web console under /console on the ops port: server-rendered pages over AdminService,
        // sessions in Redis. Templates are compiled in (one binary, nothing to install beside it).
        .target(
            name: "BursarConsole",
            dependencies: [
                "BursarAdmin", "BursarAPI", "BursarRBAC", "BursarStore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // Templates/*.mustache and Assets/console.{css,js}, as PackageResources.<name> byte arrays.
            resources: [.embedInCode("Templates"), .embedInCode("Assets")],
            swiftSettings: strict
        ),
        // The subset of Envoy's API bursard answers (proto/external), generated by
        // deploy/generate-envoy-protos.sh and committed. Only BursarEnvoy imports it.
        .target(
            name: "EnvoyAPI",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        // Envoy's front doors (ext_authz, the rate limit service) over gRPC: what each Envoy
        // request means as a CHECK, SETTLE or RELEASE, and each answer as Envoy's response.
        .target(
            name: "BursarEnvoy",
            dependencies: [
                "EnvoyAPI", "BursarWire",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // A small Swift client for the wire protocol (tests and the load harness use it).
        .target(
            name: "BursarClient",
            dependencies: [
                "BursarWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "bursard",
            dependencies: [
                "BursarServer", "BursarAdmin", "BursarConsole", "BursarEnvoy", "BursarWire", "BursarStore", "BursarRedis",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // The admin CLI: a thin client of the admin API.
        .executableTarget(
            name: "bursarctl",
            dependencies: [
                "BursarAPI", "BursarLimits", "BursarClient", "BursarWire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // The load harness: seeding, closed-loop workload, latency histogram, Redis audit, report.
        .target(
            name: "BursarBench",
            dependencies: [
                "BursarClient", "BursarWire", "BursarStore", "BursarRedis",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The load harness CLI: a thin wrapper over BursarBench.
        // The frame decoder's properties under arbitrary bytes, shared by the fuzz target and
        // the corpus replay in the tests.
        .target(
            name: "BursarWireFuzzing",
            dependencies: ["BursarWire", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),
        // libFuzzer target over the frame decoder (deploy/fuzz.sh); built plainly, a corpus replayer.
        .executableTarget(
            name: "bursar-fuzz-frames",
            dependencies: ["BursarWireFuzzing"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "bursar-bench",
            dependencies: [
                "BursarBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "BursarWireTests",
            dependencies: [
                "BursarWire", "BursarWireFuzzing",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ],
            exclude: ["FuzzCorpus"],
            swiftSettings: strict
        ),
        .testTarget(name: "BursarLimitsTests", dependencies: ["BursarLimits"], swiftSettings: strict),
        .testTarget(
            name: "BursarEnvoyTests",
            dependencies: [
                "BursarEnvoy", "EnvoyAPI", "BursarWire",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "BursarRBACTests", dependencies: ["BursarRBAC", "BursarLimits"], swiftSettings: strict),
        .testTarget(
            name: "BursarAdminTests",
            dependencies: [
                "BursarAdmin", "BursarConsole", "BursarAPI", "BursarRBAC", "BursarServer", "BursarStore", "BursarRedis", "BursarClient", "BursarWire", "BursarLimits",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "BursarIntegrationTests",
            dependencies: [
                "BursarServer", "BursarStore", "BursarRedis", "BursarRedisTesting", "BursarClient", "BursarWire", "BursarLimits", "BursarRBAC", "BursarBench",
                "BursarEnvoy", "EnvoyAPI",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
