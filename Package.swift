// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Basin",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "basin", targets: ["basin"]),
        .library(name: "BasinNN", targets: ["BasinNN"]),
        .library(name: "BasinCLI", targets: ["BasinCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .target(
            name: "BasinNN",
            dependencies: ["CBLAS"]
        ),
        .target(
            name: "BasinCLI",
            dependencies: [
                "BasinNN",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .executableTarget(name: "basin", dependencies: ["BasinCLI"]),
        .executableTarget(
            name: "basin-bench",
            dependencies: [
                "BasinNN", "CBLAS",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(name: "BasinTestSupport", dependencies: ["BasinNN"], path: "Tests/BasinTestSupport"),
        .testTarget(name: "BasinNNTests", dependencies: ["BasinNN", "BasinTestSupport"]),
        .testTarget(name: "BasinCLITests", dependencies: ["BasinCLI", "BasinNN", "BasinTestSupport"]),
    ]
)
