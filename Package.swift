// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "SessionStore",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "SessionStore", targets: ["SessionStore"]),
        .library(name: "CBORCoding", targets: ["CBORCoding"]),
    ],
    targets: [
        // C layer: LMDB from the system package, nothing vendored.
        .systemLibrary(
            name: "CLMDB",
            path: "Sources/CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"]), .brew(["lmdb"])]
        ),
        // Coding: the CBOR (RFC 8949) Codable encoder and decoder.
        .target(name: "CBORCoding", path: "Sources/CBORCoding"),
        // The store: LMDB layer, records, cache, writer and the public API.
        .target(name: "SessionStore", dependencies: ["CLMDB", "CBORCoding"]),

        .executableTarget(
            name: "sessionstore-demo",
            dependencies: ["SessionStore"],
            path: "Tools/Demo"
        ),
        // A second process for the tests (restart, other-process writes, crashes).
        .executableTarget(
            name: "sessionstore-child",
            dependencies: ["SessionStore"],
            path: "Tools/TestChild"
        ),

        // The child process the crash and fault scenarios start, kill and inspect, and the
        // workload formulas it shares with the tests.
        .executableTarget(
            name: "sessionstore-crash-child",
            dependencies: ["SessionStore", "CrashWorkload"],
            path: "Tools/CrashChild"
        ),
        .target(name: "CrashWorkload", path: "Tools/CrashWorkload"),

        .testTarget(name: "CBORCodingTests", dependencies: ["CBORCoding"]),
        .testTarget(name: "SessionStoreTests", dependencies: ["SessionStore", "sessionstore-child"]),
        .testTarget(name: "IntegrationTests", dependencies: ["SessionStore", "CrashWorkload", "sessionstore-crash-child"]),
    ],
    swiftLanguageModes: [.v6]
)
