import Foundation
import Testing
@testable import CBORCoding

// MARK: Generated types

/// A Double compared by bit pattern, so NaN payloads and -0.0 must survive.
struct BitDouble: Codable, Equatable {
    var value: Double
    init(_ value: Double) { self.value = value }
    init(from decoder: any Decoder) throws { value = try decoder.singleValueContainer().decode(Double.self) }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(value)
    }
    static func == (l: BitDouble, r: BitDouble) -> Bool { l.value.bitPattern == r.value.bitPattern }
}

/// A Float compared by bit pattern.
struct BitFloat: Codable, Equatable {
    var value: Float
    init(_ value: Float) { self.value = value }
    init(from decoder: any Decoder) throws { value = try decoder.singleValueContainer().decode(Float.self) }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(value)
    }
    static func == (l: BitFloat, r: BitFloat) -> Bool { l.value.bitPattern == r.value.bitPattern }
}

enum Hue: String, Codable, CaseIterable, CodingKeyRepresentable { case red, green, blue, ultraviolet }
enum Level: Int, Codable, CaseIterable, CodingKeyRepresentable { case low = -1, mid = 5, high = 1000 }

indirect enum Shape: Codable, Equatable {
    case point
    case circle(radius: BitDouble)
    case polygon([Int16], closed: Bool)
    case labelled(String, Shape?)
}

struct Leaf: Codable, Equatable {
    var i8: Int8, i16: Int16, i32: Int32, i64: Int64
    var u: UInt, u8: UInt8, u16: UInt16, u32: UInt32, u64: UInt64
    var f: BitFloat
    var plain: Float
}

struct Node: Codable, Equatable {
    var id: Int
    var name: String
    var flag: Bool
    var score: BitDouble
    var plainScore: Double
    var note: String?
    var count: Int?
    var blob: Data
    var when: Date
    var link: URL
    var uuid: UUID
    var amount: Decimal
    var hue: Hue
    var level: Level
    var shape: Shape
    var leaf: Leaf
    var ints: [Int]
    var strings: [String]
    var doubles: [BitDouble?]
    var byName: [String: Int]
    var byNumber: [Int: String]
    var byUUID: [UUID: Bool]
    var byHue: [Hue: [Int8]]
    var byLevel: [Level: String]
    var byDouble: [Double: Int]
    var nested: [String: [String: BitDouble]]
    var children: [Node]
    var next: Box?
}

/// An indirect optional child.
final class Box: Codable, Equatable {
    let node: Node
    init(_ node: Node) { self.node = node }
    static func == (l: Box, r: Box) -> Bool { l.node == r.node }
}

// MARK: Generator

struct Generator {
    var rng: SplitMix64

    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    mutating func int<T: FixedWidthInteger>(_ type: T.Type = T.self) -> T {
        switch rng.next() % 6 {
        case 0: return .min
        case 1: return .max
        case 2: return T(truncatingIfNeeded: rng.next() % 30) - (T.isSigned ? 10 : 0)
        case 3: return T(truncatingIfNeeded: rng.next() % 70000)
        default: return T(truncatingIfNeeded: rng.next())
        }
    }

    mutating func bool() -> Bool { rng.next() % 2 == 0 }
    mutating func below(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }

    mutating func double() -> Double {
        switch rng.next() % 10 {
        case 0: return [.nan, -.nan, .infinity, -.infinity, 0.0, -0.0, .leastNonzeroMagnitude, .greatestFiniteMagnitude, .ulpOfOne][below(9)]
        case 1: return Double(bitPattern: 0x7FF0_0000_0000_0000 | rng.next() & 0x000F_FFFF_FFFF_FFFF | 1) // NaN with payload
        case 2: return Double(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())))
        case 3: return Double(below(2000)) / 8 - 100
        default: return Double(bitPattern: rng.next())
        }
    }

    mutating func finiteDouble() -> Double {
        var d = double()
        while !d.isFinite { d = double() }
        return d
    }

    mutating func float() -> Float {
        rng.next() % 4 == 0 ? Float(Double(below(500)) / 4) : Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))
    }

    mutating func string() -> String {
        let pieces = ["", "a", "key", "ü", "水", "🎉", "\u{0}", "\"\\", "line\nbreak", "longer text that goes past twenty-three bytes", "5", "-3", "super"]
        var s = ""
        for _ in 0 ..< below(4) { s += pieces[below(pieces.count)] }
        if rng.next() % 8 == 0 { s += String(repeating: "x", count: below(300)) }
        return s
    }

    mutating func data() -> Data { Data((0 ..< below(rng.next() % 10 == 0 ? 400 : 20)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }) }

    mutating func date() -> Date {
        switch rng.next() % 4 {
        case 0: return Date(timeIntervalSince1970: Double(Int64(truncatingIfNeeded: rng.next()) % 4_000_000_000))
        case 1: return Date(timeIntervalSinceReferenceDate: Double(Int64(truncatingIfNeeded: rng.next()) % 2_000_000_000_000) / 1000)
        default:
            // Any mantissa, 2^20 ... 2^33 seconds either side of 2001.
            let exponent = UInt64(0x413 + rng.next() % 14) << 52
            let t = Double(bitPattern: exponent | rng.next() & 0x000F_FFFF_FFFF_FFFF)
            return Date(timeIntervalSinceReferenceDate: bool() ? t : -t)
        }
    }

    mutating func url() -> URL {
        let hosts = ["example.com", "a.b.c", "localhost:8080", "[::1]"]
        return URL(string: "https://\(hosts[below(hosts.count)])/p\(below(100))?q=\(below(10))&r=%20x#f")!
    }

    mutating func uuid() -> UUID {
        var t: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &t) { raw in
            for i in raw.indices { raw[i] = UInt8(truncatingIfNeeded: rng.next()) }
        }
        return UUID(uuid: t)
    }

    mutating func decimal() -> Decimal {
        switch rng.next() % 5 {
        case 0: return .nan
        case 1: return Decimal(string: "\(bool() ? "-" : "")\(rng.next())\(rng.next())\(rng.next() % 1000)")! // beyond 64 bits
        case 2: return Decimal(sign: bool() ? .minus : .plus, exponent: below(60) - 30, significand: Decimal(rng.next()))
        default: return Decimal(Int64(truncatingIfNeeded: rng.next()) % 1_000_000) / Decimal(100)
        }
    }

    mutating func shape(depth: Int) -> Shape {
        switch rng.next() % 4 {
        case 0: return .point
        case 1: return .circle(radius: BitDouble(double()))
        case 2: return .polygon((0 ..< below(5)).map { _ in int() }, closed: bool())
        default: return .labelled(string(), depth > 0 && bool() ? shape(depth: depth - 1) : nil)
        }
    }

    mutating func leaf() -> Leaf {
        Leaf(i8: int(), i16: int(), i32: int(), i64: int(), u: int(), u8: int(), u16: int(), u32: int(), u64: int(),
             f: BitFloat(float()), plain: Float(below(1000)) / 8)
    }

    mutating func array<T>(_ max: Int, _ make: (inout Generator) -> T) -> [T] {
        (0 ..< below(max)).map { _ in make(&self) }
    }

    mutating func node(depth: Int) -> Node {
        Node(
            id: int(), name: string(), flag: bool(), score: BitDouble(double()), plainScore: finiteDouble(),
            note: bool() ? string() : nil, count: bool() ? int() : nil,
            blob: data(), when: date(), link: url(), uuid: uuid(), amount: decimal(),
            hue: Hue.allCases[below(4)], level: Level.allCases[below(3)], shape: shape(depth: 2), leaf: leaf(),
            ints: array(rng.next() % 8 == 0 ? 300 : 6) { $0.int() },
            strings: array(5) { $0.string() },
            doubles: array(5) { $0.bool() ? BitDouble($0.double()) : nil },
            byName: Dictionary(array(30) { ($0.string(), $0.int() as Int) }, uniquingKeysWith: { a, _ in a }),
            byNumber: Dictionary(array(30) { ($0.int() as Int, $0.string()) }, uniquingKeysWith: { a, _ in a }),
            byUUID: Dictionary(array(4) { ($0.uuid(), $0.bool()) }, uniquingKeysWith: { a, _ in a }),
            byHue: Dictionary(array(4) { (Hue.allCases[$0.below(4)], $0.array(3) { $0.int() as Int8 }) }, uniquingKeysWith: { a, _ in a }),
            byLevel: Dictionary(array(3) { (Level.allCases[$0.below(3)], $0.string()) }, uniquingKeysWith: { a, _ in a }),
            byDouble: Dictionary(array(4) { ($0.finiteDouble(), $0.int() as Int) }, uniquingKeysWith: { a, _ in a }),
            nested: Dictionary(array(3) { g in (g.string(), Dictionary(g.array(3) { ($0.string(), BitDouble($0.double())) }, uniquingKeysWith: { a, _ in a })) }, uniquingKeysWith: { a, _ in a }),
            children: depth > 0 ? array(3) { $0.node(depth: depth - 1) } : [],
            next: depth > 0 && bool() ? Box(node(depth: depth - 1)) : nil
        )
    }

    mutating func cbor(depth: Int) -> CBOR {
        switch rng.next() % (depth > 0 ? 12 : 8) {
        case 0: return .unsigned(int())
        case 1: return .negative(int())
        case 2: return .bytes(Array(data()))
        case 3: return .text(string())
        case 4: return .float(double())
        case 5: return [.bool(bool()), .null, .undefined, .simple(UInt8(below(20))), .simple(UInt8(32 + below(224)))][below(5)]
        case 6: return .unsigned(UInt64(below(30)))
        case 7: return .negative(UInt64(below(30)))
        case 8: return .tagged(int(), cbor(depth: depth - 1))
        case 9, 10: return .array(array(6) { $0.cbor(depth: depth - 1) })
        default:
            var seen = Set<[UInt8]>()
            var entries: [(key: CBOR, value: CBOR)] = []
            for _ in 0 ..< below(6) {
                let key = cbor(depth: depth - 1)
                // Unique keys, so the deterministic form is valid.
                if seen.insert(key.encoded(deterministic: true)).inserted {
                    entries.append((key: key, value: cbor(depth: depth - 1)))
                }
            }
            return .map(entries)
        }
    }
}

// MARK: Tests

/// Where two items first differ, as a path and the two subtrees in diagnostic notation.
func firstDifference(_ a: CBOR, _ b: CBOR, path: String = "") -> String {
    switch (a, b) {
    case let (.array(x), .array(y)) where x.count == y.count:
        for (i, (p, q)) in zip(x, y).enumerated() where p != q { return firstDifference(p, q, path: path + "[\(i)]") }
    case let (.map(x), .map(y)) where x.count == y.count:
        for (p, q) in zip(x, y) where p.key != q.key || p.value != q.value {
            return p.key != q.key ? "\(path): key \(p.key) vs \(q.key)" : firstDifference(p.value, q.value, path: path + ".\(p.key)")
        }
    case let (.tagged(t, x), .tagged(u, y)) where t == u:
        return firstDifference(x, y, path: path + "(\(t))")
    default: break
    }
    return "\(path): \(a) vs \(b)"
}

@Suite struct CBORPropertyTests {
    /// The base seed; each case uses base + index, printed on failure.
    static let baseSeed: UInt64 = 0x5EED_C0DE

    @Test("Generated nested Codable values round-trip exactly (preferred and deterministic)")
    func codableRoundTrip() throws {
        var deterministic = CBOREncoder()
        deterministic.deterministic = true
        var strict = CBORDecoder()
        strict.deterministic = true
        for i in 0 ..< 2000 {
            let seed = Self.baseSeed &+ UInt64(i)
            var g = Generator(seed: seed)
            let value = g.node(depth: i % 4)
            let encoded = try CBOREncoder().encodeBytes(value)
            let decoded = try CBORDecoder().decode(Node.self, from: encoded)
            guard decoded == value else {
                Issue.record("seed \(seed): value changed in a round trip")
                return
            }
            let canonical = try deterministic.encodeBytes(value)
            guard try strict.decode(Node.self, from: canonical) == value else {
                Issue.record("seed \(seed): deterministic round trip changed the value")
                return
            }
            // Equal values, equal deterministic bytes (so nothing such as -0.0 in a plain Double drifted).
            let again = try deterministic.encodeBytes(decoded)
            if again != canonical {
                Issue.record("seed \(seed): deterministic bytes differ: \(firstDifference(try CBOR(decoding: canonical), try CBOR(decoding: again)))")
                return
            }
            // Every encoding is well-formed CBOR that the generic decoder reads.
            #expect(throws: Never.self, "seed \(seed)") { try CBOR(decoding: encoded) }
        }
    }

    @Test("Generated CBOR items round-trip through bytes")
    func cborRoundTrip() throws {
        var strict = CBORDecoder()
        strict.deterministic = true
        for i in 0 ..< 5000 {
            let seed = Self.baseSeed &+ 1_000_000 &+ UInt64(i)
            var g = Generator(seed: seed)
            let item = g.cbor(depth: 4)
            let encoded = item.encoded()
            guard try CBOR(decoding: encoded) == item else {
                Issue.record("seed \(seed): \(item) changed in a round trip")
                return
            }
            let canonical = item.encoded(deterministic: true)
            let back = try strict.decode(CBOR.self, from: canonical)
            #expect(back.encoded(deterministic: true) == canonical, "seed \(seed)")
            // Through the Codable path as well.
            #expect(try CBORDecoder().decode(CBOR.self, from: CBOREncoder().encodeBytes(item)) == item, "seed \(seed)")
            // Diagnostic notation and JSON never trap.
            _ = item.description
            _ = item.jsonString()
        }
    }

    @Test("Every integer width round-trips at its limits")
    func integerLimits() throws {
        func check<T: FixedWidthInteger & Codable>(_ type: T.Type) throws {
            // Literals a narrow type cannot hold are left out rather than wrapped to 0.
            let edges = [0, 1, 23, 24, 255, 256, 65535, 65536].compactMap { T(exactly: $0 as Int) }
            for v in [T.min, T.min + 1] + edges + [T.max - 1, T.max] {
                #expect(try CBORDecoder().decode(T.self, from: CBOREncoder().encodeBytes(v)) == v)
                #expect(try CBORDecoder().decode([T].self, from: CBOREncoder().encodeBytes([v, v])) == [v, v])
            }
        }
        try check(Int.self); try check(Int8.self); try check(Int16.self); try check(Int32.self); try check(Int64.self)
        try check(UInt.self); try check(UInt8.self); try check(UInt16.self); try check(UInt32.self); try check(UInt64.self)
    }
}
