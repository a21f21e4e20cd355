// swift-tools-version: 6.1
// The SessionStore benchmark: a separate package so that the library's users never
// resolve its peers (GRDB). Run from this directory:
//
//     swift run -c release sessionstore-benchmark [--quick] [--json path]
import PackageDescription

let package = Package(
    name: "SessionStoreBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "SessionStore", path: "../.."),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    ],
    targets: [
        // Raw LMDB for the floor rows, through a module of our own (not the library's CLMDB).
        .systemLibrary(
            name: "CLMDBBench",
            path: "Sources/CLMDBBench",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"]), .brew(["lmdb"])]
        ),
        .executableTarget(
            name: "sessionstore-benchmark",
            dependencies: [
                .product(name: "SessionStore", package: "SessionStore"),
                .product(name: "CBORCoding", package: "SessionStore"),
                .product(name: "GRDB", package: "GRDB.swift"),
                "CLMDBBench",
            ],
            path: "Sources/sessionstore-benchmark"
        ),
    ],
    swiftLanguageModes: [.v6]
)
