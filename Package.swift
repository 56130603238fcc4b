// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Basin",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "basin", targets: ["basin"]),
        .library(name: "BasinNN", targets: ["BasinNN"]),
        .library(name: "BasinLandscape", targets: ["BasinLandscape"]),
        .library(name: "BasinSweep", targets: ["BasinSweep"]),
        .library(name: "BasinCLI", targets: ["BasinCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .systemLibrary(name: "CZeroMQ", providers: [.apt(["libzmq3-dev"])]),
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ"]),
        // The engine's hand-written kernels (Winograd convolution with AVX2/FMA, chosen per
        // function at run time): optimized in every configuration, as BasinNN is.
        .target(name: "CBasinKernels", cSettings: [.unsafeFlags(["-O2"])]),
        .target(
            name: "BasinNN",
            dependencies: ["CBLAS", "CBasinKernels"],
            // The engine's kernels (Winograd transforms on SIMD types, im2col, BatchNorm) run
            // 10-30x slower unoptimized, and every test that trains or evaluates a network runs
            // them; debug builds optimize this one module so `swift test` stays fast.
            swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]
        ),
        .target(name: "BasinLandscape", dependencies: ["BasinNN"]),
        .target(
            name: "BasinSweep",
            dependencies: [
                "BasinLandscape", "BasinNN", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        .target(
            name: "BasinCluster",
            dependencies: [
                "BasinSweep", "BasinLandscape", "BasinNN", "ZeroMQ", .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            exclude: ["Protocol/PROTOCOL.md"]
        ),
        .target(
            name: "BasinCLI",
            dependencies: [
                "BasinNN", "BasinLandscape", "BasinSweep", "BasinCluster",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .executableTarget(name: "basin", dependencies: ["BasinCLI"]),
        .target(name: "BasinFuzz", dependencies: ["BasinCluster", "BasinSweep"]),
        .executableTarget(
            name: "basin-bench",
            dependencies: [
                "BasinNN", "BasinLandscape", "BasinSweep", "BasinCluster", "BasinFuzz", "CBLAS", "ZeroMQ",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "HeapModule", package: "swift-collections"),
            ]
        ),
        .target(name: "BasinTestSupport", dependencies: ["BasinNN"], path: "Tests/BasinTestSupport"),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"]),
        .testTarget(name: "BasinNNTests", dependencies: ["BasinNN", "BasinTestSupport"]),
        .testTarget(name: "BasinLandscapeTests", dependencies: ["BasinLandscape", "BasinNN", "BasinTestSupport"]),
        .testTarget(name: "BasinSweepTests", dependencies: ["BasinSweep", "BasinLandscape", "BasinNN", "BasinTestSupport"]),
        .testTarget(
            name: "BasinClusterTests",
            dependencies: [
                "BasinCluster", "BasinFuzz", "BasinSweep", "BasinNN", "BasinTestSupport", "ZeroMQ",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "BasinIntegrationTests",
            dependencies: [
                "BasinSweep", "BasinCluster", "BasinFuzz", "ZeroMQ", "BasinNN", "BasinLandscape", "BasinTestSupport",
            ]
        ),
        .testTarget(
            name: "BasinCLITests",
            dependencies: ["BasinCLI", "BasinNN", "BasinTestSupport", .product(name: "Yams", package: "Yams")]
        ),
    ]
)
