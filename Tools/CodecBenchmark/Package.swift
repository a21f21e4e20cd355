// swift-tools-version: 6.0
import PackageDescription

// A separate package so the benchmark never builds with the library's tests.
// Run: cd Tools/CodecBenchmark && swift run -c release codec-benchmark
let package = Package(
    name: "CodecBenchmark",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "SessionStore", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "codec-benchmark",
            dependencies: [.product(name: "CBORCoding", package: "SessionStore")],
            path: "Sources/codec-benchmark"
        ),
    ],
    swiftLanguageModes: [.v6]
)
