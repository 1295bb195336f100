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
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "bursard", targets: ["bursard"]),
        .library(name: "BursarClient", targets: ["BursarClient"]),
        .library(name: "BursarWire", targets: ["BursarWire"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
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
        // The Redis client: hiredis on dedicated threads, pipelined, with deadlines.
        .target(
            name: "BursarRedis",
            dependencies: [
                "CHiredis",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // Metadata (orgs, users, projects, keys) and the atomic limiter scripts, stored in Redis.
        .target(
            name: "BursarStore",
            dependencies: [
                "BursarRedis", "BursarLimits", "BursarWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The data-plane server: NIO listeners, the decision engine, the metadata cache.
        .target(
            name: "BursarServer",
            dependencies: [
                "BursarWire", "BursarStore", "BursarRedis", "BursarLimits",
                .product(name: "NIOCore", package: "swift-nio"),
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
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "bursard",
            dependencies: [
                "BursarServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "BursarWireTests",
            dependencies: [
                "BursarWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "BursarLimitsTests", dependencies: ["BursarLimits"], swiftSettings: strict),
        .testTarget(
            name: "BursarIntegrationTests",
            dependencies: [
                "BursarServer", "BursarStore", "BursarRedis", "BursarClient", "BursarWire", "BursarLimits",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
