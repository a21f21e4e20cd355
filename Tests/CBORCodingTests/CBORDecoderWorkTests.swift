#if DEBUG
import Foundation
import Testing
@testable import CBORCoding

// Decoding work must grow linearly with the input, whatever its shape: counted as CBOR heads
// read (an internal counter of debug builds), not timed.

/// One level of a deep, wide record: absent optional fields, a payload, the next level last.
final class WideLevel: Codable {
    var a: Int?
    var b: String?
    var c: [Int]?
    var d: Double?
    var e: Bool?
    var payload: [Int]
    var next: WideLevel?

    init(depth: Int, width: Int) {
        payload = Array(0 ..< width)
        next = depth > 1 ? WideLevel(depth: depth - 1, width: width) : nil
    }
}

/// The same with the next level first, so it is decoded before the absent keys are looked up.
final class WideLevelNextFirst: Codable {
    var next: WideLevelNextFirst?
    var a: Int?
    var b: String?
    var c: [Int]?
    var payload: [Int]

    init(depth: Int, width: Int) {
        payload = Array(0 ..< width)
        next = depth > 1 ? WideLevelNextFirst(depth: depth - 1, width: width) : nil
    }
}

/// Nested through arrays: each level is an element of its parent's array.
struct WideTree: Codable {
    var children: [WideTree]
    var payload: [Int]
    var missing: Int?

    init(depth: Int, width: Int) {
        payload = Array(0 ..< width)
        children = depth > 1 ? [WideTree(depth: depth - 1, width: width)] : []
    }
}

/// The CBOR heads the decoder reads (validation included) to decode `T` from `value`'s encoding.
/// On a thread with a large stack: encoding and decoding recurse once per level.
private func headsRead<T: Codable>(_ type: T.Type, _ value: @autoclosure @escaping () -> T) throws -> (heads: Int, bytes: Int) {
    try onThread(stackSize: 64 << 20) {
        Result { () throws -> (heads: Int, bytes: Int) in
            let encoded = try CBOREncoder().encodeBytes(value())
            var heads = 0
            var decoder = CBORDecoder()
            decoder.maxDepth = 10_000
            _ = try decoder.decode(T.self, from: encoded, headsRead: &heads)
            return (heads, encoded.count)
        }
    }.get()
}

@Suite struct CBORDecoderWorkTests {
    @Test("Doubling a deep record's depth doubles the decoding work", arguments: [40, 100])
    func workIsLinearInDepth(_ depth: Int) throws {
        let cases: [(String, (Int) throws -> (heads: Int, bytes: Int))] = [
            ("absent keys before the next level", { try headsRead(WideLevel.self, WideLevel(depth: $0, width: 16)) }),
            ("next level before absent keys", { try headsRead(WideLevelNextFirst.self, WideLevelNextFirst(depth: $0, width: 16)) }),
            ("levels in arrays", { try headsRead(WideTree.self, WideTree(depth: $0, width: 16)) }),
        ]
        for (name, measure) in cases {
            let n = try measure(depth)
            let twice = try measure(2 * depth)
            let ratio = Double(twice.heads) / Double(n.heads)
            #expect(ratio < 2.3, "\(name): \(n.heads) heads for \(n.bytes) bytes, \(twice.heads) for \(twice.bytes) (ratio \(ratio))")
        }
    }

    @Test func doublingTheWidthDoublesTheWork() throws {
        let n = try headsRead(WideLevel.self, WideLevel(depth: 60, width: 50))
        let twice = try headsRead(WideLevel.self, WideLevel(depth: 60, width: 100))
        let ratio = Double(twice.heads) / Double(n.heads)
        #expect(ratio < 2.3, "\(n.heads) heads for \(n.bytes) bytes, \(twice.heads) for \(twice.bytes) (ratio \(ratio))")
    }

    @Test func aDeepWideRecordCostsAFewHeadsPerItem() throws {
        // 200 levels of 64 payload integers: about 14,000 items.
        let (heads, _) = try headsRead(WideLevel.self, WideLevel(depth: 200, width: 64))
        let items = 200 * (64 + 5)
        #expect(heads < 6 * items, "\(heads) heads for about \(items) items")
    }
}
#endif
