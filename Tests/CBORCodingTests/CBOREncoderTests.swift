import Foundation
import Testing
@testable import CBORCoding

private struct AB: Codable, Equatable {
    var a: Int
    var b: [Int]
}

private struct Small: Codable, Equatable {
    var name: String
    var email: String
    var age: Int
    var tags: [String]
}

private enum Color: String, Codable, CodingKeyRepresentable { case red, green }

private enum Priority: Int, Codable, CodingKeyRepresentable { case low = 1, high = 10 }

private class Animal: Codable {
    var name: String
    init(name: String) { self.name = name }
}

private final class Dog: Animal {
    var breed: String
    init(name: String, breed: String) {
        self.breed = breed
        super.init(name: name)
    }
    private enum CodingKeys: String, CodingKey { case breed }
    required init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        breed = try c.decode(String.self, forKey: .breed)
        try super.init(from: c.superDecoder())
    }
    override func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(breed, forKey: .breed)
        try super.encode(to: c.superEncoder())
    }
}

/// A class that shares its encoder's keyed container with its superclass (no superEncoder).
private class Base: Codable {
    var x = 1
}

private final class Derived: Base {
    var y = 2
    private enum CodingKeys: String, CodingKey { case y }
    override init() { super.init() }
    required init(from decoder: any Decoder) throws {
        y = try decoder.container(keyedBy: CodingKeys.self).decode(Int.self, forKey: .y)
        try super.init(from: decoder)
    }
    override func encode(to encoder: any Encoder) throws {
        try super.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(y, forKey: .y)
    }
}

/// Uses nested keyed and unkeyed containers by hand.
private struct Manual: Codable, Equatable {
    var point: (x: Int, y: Int)
    var list: [String]
    static func == (l: Manual, r: Manual) -> Bool { l.point == r.point && l.list == r.list }
    init(point: (x: Int, y: Int), list: [String]) { self.point = point; self.list = list }
    private enum Keys: String, CodingKey { case point, list, x, y }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        var p = c.nestedContainer(keyedBy: Keys.self, forKey: .point)
        try p.encode(point.x, forKey: .x)
        try p.encode(point.y, forKey: .y)
        var l = c.nestedUnkeyedContainer(forKey: .list)
        for s in list {
            var inner = l.nestedUnkeyedContainer()
            try inner.encode(s)
        }
    }
    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        let p = try c.nestedContainer(keyedBy: Keys.self, forKey: .point)
        point = (try p.decode(Int.self, forKey: .x), try p.decode(Int.self, forKey: .y))
        var l = try c.nestedUnkeyedContainer(forKey: .list)
        var out: [String] = []
        while !l.isAtEnd {
            var inner = try l.nestedUnkeyedContainer()
            out.append(try inner.decode(String.self))
        }
        list = out
    }
}

/// Encodes nothing at all.
private struct Silent: Codable {
    func encode(to encoder: any Encoder) throws {}
    init() {}
    init(from decoder: any Decoder) throws {}
}

/// Uses a container after a sibling of the same parent: not supported, must throw.
private struct Interleaved: Encodable {
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: _CBORKey.self)
        var first = c.nestedUnkeyedContainer(forKey: _CBORKey(stringValue: "a"))
        var second = c.nestedUnkeyedContainer(forKey: _CBORKey(stringValue: "b"))
        try second.encode(1)
        try first.encode(2)
    }
}

private func hex<T: Encodable>(_ value: T, deterministic: Bool = false) throws -> String {
    var encoder = CBOREncoder()
    encoder.deterministic = deterministic
    return hexString(try encoder.encodeBytes(value))
}

@Suite struct CBOREncoderTests {
    @Test func appendixValuesFromSwiftTypes() throws {
        #expect(try hex(0) == "00")
        #expect(try hex(24) == "1818")
        #expect(try hex(1000) == "1903e8")
        #expect(try hex(1_000_000_000_000) == "1b000000e8d4a51000")
        #expect(try hex(UInt64.max) == "1bffffffffffffffff")
        #expect(try hex(-1000) == "3903e7")
        #expect(try hex(Int64.min) == "3b7fffffffffffffff")
        #expect(try hex(0.0) == "f90000")
        #expect(try hex(-0.0) == "f98000")
        #expect(try hex(1.1) == "fb3ff199999999999a")
        #expect(try hex(100000.0) == "fa47c35000")
        #expect(try hex(Float(100000.0)) == "fa47c35000")
        #expect(try hex(Float(1.5)) == "f93e00")
        #expect(try hex(1.0e+300) == "fb7e37e43c8800759c")
        #expect(try hex(5.960464477539063e-8) == "f90001")
        #expect(try hex(Double.infinity) == "f97c00")
        #expect(try hex(Double.nan) == "f97e00")
        #expect(try hex(false) == "f4")
        #expect(try hex(Int?.none) == "f6")
        #expect(try hex("IETF") == "6449455446")
        #expect(try hex("\u{6c34}") == "63e6b0b4")
        #expect(try hex(Data([1, 2, 3, 4])) == "4401020304")
        #expect(try hex([1, 2, 3]) == "83010203")
        #expect(try hex([[1], [2, 3]]) == "82810182 0203".replacingOccurrences(of: " ", with: ""))
        #expect(try hex(Array(1 ... 25)) == "98190102030405060708090a0b0c0d0e0f101112131415161718181819")
        #expect(try hex(AB(a: 1, b: [2, 3])) == "a26161016162820203")
        #expect(try hex(Date(timeIntervalSince1970: 1_363_896_240)) == "c11a514b67b0")
        #expect(try hex(Date(timeIntervalSince1970: 1_363_896_240.5)) == "c1fb41d452d9ec200000")
        #expect(try hex(URL(string: "http://www.example.com")!) == "d82076687474703a2f2f7777772e6578616d706c652e636f6d")
        #expect(try hex([String: Int]()) == "a0")
        #expect(try hex([Int]()) == "80")
    }

    @Test func integerWidths() throws {
        #expect(try hex(Int8.min) == "387f")
        #expect(try hex(Int16.max) == "197fff")
        #expect(try hex(Int32.min) == "3a7fffffff")
        #expect(try hex(UInt8.max) == "18ff")
        #expect(try hex(UInt16.max) == "19ffff")
        #expect(try hex(UInt32.max) == "1affffffff")
        #expect(try hex(UInt.max) == "1bffffffffffffffff")
        #expect(try hex([Int8(-1), 2] as [Int8]) == "822002")
    }

    @Test func mapCountsAboveTheOneByteHeadArePatched() throws {
        // 24, 256 and 65536 entries need a longer head than the placeholder.
        for n in [23, 24, 255, 256, 65536] {
            let array = (0 ..< n).map { "\($0)" }
            let bytes = try CBOREncoder().encodeBytes(array)
            #expect(try CBORDecoder().decode([String].self, from: bytes) == array)
            let dict = Dictionary(uniqueKeysWithValues: (0 ..< n).map { ("k\($0)", [$0]) })
            for deterministic in [false, true] {
                var encoder = CBOREncoder()
                encoder.deterministic = deterministic
                let encoded = try encoder.encodeBytes(dict)
                #expect(try CBORDecoder().decode([String: [Int]].self, from: encoded) == dict)
                if case .map(let entries) = try CBOR(decoding: encoded) {
                    #expect(entries.count == n)
                } else {
                    Issue.record("not a map")
                }
            }
        }
    }

    @Test func intKeyedDictionariesUseIntegerKeys() throws {
        #expect(try hex([5: "x"]) == "a1056178")
        #expect(try hex([-2: true]) == "a121f5")
        // String keys that look like numbers stay text.
        #expect(try hex(["5": 1]) == "a1613501")
        #expect(try hex([Priority.high: 1]) == "a10a01")
        #expect(try hex([Color.red: 1]) == "a16372656401")
        #expect(try CBORDecoder().decode([Int: String].self, from: bytes("a1056178")) == [5: "x"])
        #expect(try CBORDecoder().decode([String: Int].self, from: bytes("a1613501")) == ["5": 1])
        #expect(try CBORDecoder().decode([Priority: Int].self, from: bytes("a10a01")) == [.high: 1])
        // Integer keys written by another encoder still decode into a String-keyed dictionary.
        #expect(try CBORDecoder().decode([String: Int].self, from: bytes("a10501")) == ["5": 1])
    }

    @Test func otherDictionariesUseSwiftsAlternatingArray() throws {
        let uuid = UUID(uuidString: "00010203-0405-0607-0809-0A0B0C0D0E0F")!
        let value: [UUID: Int] = [uuid: 7]
        #expect(try hex(value) == "82d82550000102030405060708090a0b0c0d0e0f07")
        #expect(try CBORDecoder().decode([UUID: Int].self, from: CBOREncoder().encode(value)) == value)
        let doubles: [Double: String] = [1.5: "a", -2: "b"]
        #expect(try CBORDecoder().decode([Double: String].self, from: CBOREncoder().encode(doubles)) == doubles)
    }

    @Test func deterministicModeSortsKeysBytewise() throws {
        // "b" (61 62) < "z" (61 7a) < "aa" (62 61 61): shorter text sorts first.
        #expect(try hex(["z": 1, "aa": 2, "b": 3], deterministic: true) == "a361620361 7a016261 6102".replacingOccurrences(of: " ", with: ""))
        #expect(try hex([100: 1, -1: 2, 10: 3], deterministic: true) == "a30a03186401 2002".replacingOccurrences(of: " ", with: ""))
        // Equal values give equal bytes however the dictionary was built.
        var a: [String: [String: Int]] = [:]
        var b: [String: [String: Int]] = [:]
        for i in 0 ..< 200 { a["k\(i)"] = ["x\(i)": i, "y": -i] }
        for i in (0 ..< 200).reversed() { b["k\(i)"] = ["y": -i, "x\(i)": i] }
        var encoder = CBOREncoder()
        encoder.deterministic = true
        let ea = try encoder.encodeBytes(a), eb = try encoder.encodeBytes(b)
        #expect(ea == eb)
        var strict = CBORDecoder()
        strict.deterministic = true
        #expect(try strict.decode([String: [String: Int]].self, from: ea) == a)
    }

    @Test func deterministicModeKeepsTheLastOfDuplicateKeys() throws {
        struct Twice: Encodable {
            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: _CBORKey.self)
                try c.encode(1, forKey: _CBORKey(stringValue: "k"))
                try c.encode(2, forKey: _CBORKey(stringValue: "a"))
                try c.encode(3, forKey: _CBORKey(stringValue: "k"))
            }
        }
        #expect(try hex(Twice(), deterministic: true) == "a2616102616b03")
    }

    @Test func preferredModeKeepsDeclarationOrder() throws {
        struct Order: Codable { var z = 1, a = 2 }
        #expect(try hex(Order()) == "a2617a01616102")
        #expect(try hex(Order(), deterministic: true) == "a2616102617a01")
    }

    @Test func superEncoderAndInheritance() throws {
        let dog = Dog(name: "Rex", breed: "Collie")
        let encoded = try CBOREncoder().encodeBytes(dog)
        #expect(try CBOR(decoding: encoded) == ["breed": "Collie", "super": ["name": "Rex"]])
        let back = try CBORDecoder().decode(Dog.self, from: encoded)
        #expect(back.name == "Rex" && back.breed == "Collie")

        let derived = Derived()
        derived.x = 5
        let shared = try CBOREncoder().encodeBytes(derived)
        #expect(try CBOR(decoding: shared) == ["x": 5, "y": 2])
        let d = try CBORDecoder().decode(Derived.self, from: shared)
        #expect(d.x == 5 && d.y == 2)
    }

    @Test func nestedContainers() throws {
        let value = Manual(point: (3, -4), list: ["a", "b"])
        let encoded = try CBOREncoder().encodeBytes(value)
        #expect(try CBOR(decoding: encoded) == ["point": ["x": 3, "y": -4], "list": [["a"], ["b"]]])
        #expect(try CBORDecoder().decode(Manual.self, from: encoded) == value)
    }

    @Test func valueThatEncodesNothingIsAnEmptyMap() throws {
        #expect(try hex(Silent()) == "a0")
        #expect(try hex([Silent(), Silent()]) == "82a0a0")
    }

    @Test func interleavedSiblingContainersThrow() {
        #expect(throws: EncodingError.self) { try CBOREncoder().encodeBytes(Interleaved()) }
    }

    @Test func appendingToAnExistingBuffer() throws {
        var buffer: [UInt8] = [0xAA]
        try CBOREncoder().encode("a", appendingTo: &buffer)
        try CBOREncoder().encode(1, appendingTo: &buffer)
        #expect(buffer == [0xAA, 0x61, 0x61, 0x01])
        // An error leaves the buffer as it was.
        #expect(throws: EncodingError.self) { try CBOREncoder().encode(Interleaved(), appendingTo: &buffer) }
        #expect(buffer == [0xAA, 0x61, 0x61, 0x01])
    }

    @Test func foundationTypes() throws {
        let uuid = UUID(uuidString: "00010203-0405-0607-0809-0A0B0C0D0E0F")!
        #expect(try hex(uuid) == "d82550000102030405060708090a0b0c0d0e0f")
        #expect(try hex(Decimal(string: "273.15")!) == "c48221196ab3")
        #expect(try hex(Decimal(string: "-1.5")!) == "c482202e")
        #expect(try hex(Decimal.nan) == "f97e00")
        #expect(try hex(Decimal(0)) == "c4820000")
        // A mantissa above 64 bits becomes a bignum.
        let big = Decimal(string: "123456789012345678901234567890")!
        let encoded = try CBOREncoder().encodeBytes(big)
        // Decimal keeps it as 12345678901234567890123456789 × 10^1.
        #expect(try CBOR(decoding: encoded) == .tagged(4, [1, .tagged(2, .bytes(bytes("27e41b3246bec9b16e398115")))]))
        #expect(try CBORDecoder().decode(Decimal.self, from: encoded) == big)
    }

    @Test func datesRoundTripExactly() throws {
        // A whole second: tag 1 integer. A date whose epoch-seconds double rounds: tag 1001.
        let whole = Date(timeIntervalSince1970: 1_700_000_000)
        #expect(try hex(whole) == "c11a6553f100")
        let awkward = Date(timeIntervalSinceReferenceDate: 785_000_000.123_456_8)
        let encoded = try CBOREncoder().encodeBytes(awkward)
        // This date does not survive the shift to 1970-based seconds, so tag 1001 must be used.
        try #require(Date(timeIntervalSince1970: awkward.timeIntervalSince1970).timeIntervalSinceReferenceDate != awkward.timeIntervalSinceReferenceDate)
        #expect(encoded.prefix(3) == [0xD9, 0x03, 0xE9], "tag 1001 expected, got \(hexString(encoded))")
        let back = try CBORDecoder().decode(Date.self, from: encoded)
        #expect(back.timeIntervalSinceReferenceDate.bitPattern == awkward.timeIntervalSinceReferenceDate.bitPattern)
        var rng = SplitMix64(seed: 1)
        for _ in 0 ..< 5000 {
            // 2^25 ... 2^31 seconds from 2001 (1 to 68 years), every mantissa bit random.
            let exponent = UInt64(0x418 + rng.next() % 6) << 52
            let t = Double(bitPattern: exponent | rng.next() & 0x000F_FFFF_FFFF_FFFF)
            let date = Date(timeIntervalSinceReferenceDate: rng.next() % 2 == 0 ? t : -t)
            let decoded = try CBORDecoder().decode(Date.self, from: CBOREncoder().encodeBytes(date))
            #expect(decoded.timeIntervalSinceReferenceDate.bitPattern == date.timeIntervalSinceReferenceDate.bitPattern)
        }
        let now = Date()
        #expect(try CBORDecoder().decode(Date.self, from: CBOREncoder().encode(now)) == now)
    }

    @Test func rawCBORValuesInsideCodableTypes() throws {
        struct Envelope: Codable, Equatable {
            var kind: String
            var payload: CBOR
        }
        let value = Envelope(kind: "x", payload: [1, .tagged(99, "t"), .bytes([1])])
        let encoded = try CBOREncoder().encodeBytes(value)
        #expect(try CBORDecoder().decode(Envelope.self, from: encoded) == value)
        // Other encoders refuse it with an error, not a crash.
        #expect(throws: EncodingError.self) { try JSONEncoder().encode(value) }
    }

    @Test func userInfoReachesTheTypes() throws {
        struct Reader: Encodable {
            func encode(to encoder: any Encoder) throws {
                var c = encoder.singleValueContainer()
                try c.encode(encoder.userInfo[CodingUserInfoKey(rawValue: "k")!] as? Int ?? -1)
            }
        }
        var encoder = CBOREncoder()
        encoder.userInfo[CodingUserInfoKey(rawValue: "k")!] = 7
        #expect(try encoder.encodeBytes(Reader()) == [0x07])
    }

    @Test func codingPathInEncodeErrors() throws {
        struct Fails: Encodable {
            func encode(to encoder: any Encoder) throws {
                throw EncodingError.invalidValue(0, EncodingError.Context(codingPath: encoder.codingPath, debugDescription: "no"))
            }
        }
        struct Outer: Encodable { var items: [Fails] }
        do {
            _ = try CBOREncoder().encodeBytes(Outer(items: [Fails()]))
            Issue.record("expected an error")
        } catch let EncodingError.invalidValue(_, context) {
            #expect(context.codingPath.map(\.stringValue) == ["items", "Index 0"])
        }
    }
}
