import Foundation
@testable import CBORCoding

/// Bytes from a hex string; spaces, newlines and `0x` prefixes are ignored.
func bytes(_ hex: String) -> [UInt8] {
    var text = hex.replacingOccurrences(of: "0x", with: "")
    text.removeAll { $0 == " " || $0 == "\n" || $0 == "_" }
    var out: [UInt8] = []
    var index = text.startIndex
    while index < text.endIndex {
        let next = text.index(index, offsetBy: 2)
        out.append(UInt8(text[index ..< next], radix: 16)!)
        index = next
    }
    return out
}

/// Lowercase hex of bytes.
func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

/// The debug description of a `DecodingError`, or nil for any other error.
func decodingErrorDescription(_ error: any Error) -> String? {
    guard let error = error as? DecodingError else { return nil }
    switch error {
    case .dataCorrupted(let c), .typeMismatch(_, let c), .valueNotFound(_, let c), .keyNotFound(_, let c):
        return c.debugDescription
    @unknown default:
        return nil
    }
}

/// The repository's Fixtures/CBOR directory.
let fixturesDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/CBOR")

/// One fixture file: `# comment` lines (one may be `# expect: text`), then hex.
struct HexFixture {
    var name: String
    var expect: String?
    var bytes: [UInt8]
}

func loadHexFixtures(_ subdirectory: String) throws -> [HexFixture] {
    let directory = fixturesDirectory.appendingPathComponent(subdirectory)
    let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".hex") }.sorted()
    return try names.map { name in
        let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
        var expect: String?
        var hex = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("#") {
                if let r = line.range(of: "expect:") { expect = line[r.upperBound...].trimmingCharacters(in: .whitespaces) }
            } else {
                hex += line
            }
        }
        return HexFixture(name: name, expect: expect, bytes: bytes(hex))
    }
}

/// SplitMix64: a small seeded generator, so a failing case can be replayed from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The work of a thread that `onThread` starts.
private final class ThreadBody {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// Runs `body` on a new thread with a stack of `stackSize` bytes and returns its result.
///
/// The small stack is the point: a decoder that recurses too deep crashes here.
func onThread<R>(stackSize: Int, _ body: @escaping () -> R) -> R {
    var result: R?
    // The thread writes `result` before it exits; it is read after pthread_join.
    let work = ThreadBody { result = body() }
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    precondition(pthread_attr_setstacksize(&attributes, stackSize) == 0, "pthread_attr_setstacksize(\(stackSize)) failed")
    #if canImport(Glibc)
    var thread = pthread_t()
    #else
    var thread: pthread_t?
    #endif
    let created = pthread_create(&thread, &attributes, { raw in
        Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue().run()
        return nil
    }, Unmanaged.passRetained(work).toOpaque())
    precondition(created == 0, "pthread_create failed: \(created)")
    #if canImport(Glibc)
    pthread_join(thread, nil)
    #else
    pthread_join(thread!, nil)
    #endif
    return result!
}
