import Foundation
import Testing
@testable import CBORCoding

private struct Person: Codable, Equatable {
    var name: String
    var age: Int
    var email: String?
}

private struct Wrapper: Codable, Equatable {
    var people: [Person]
}

private func decode<T: Decodable>(_ type: T.Type, _ hex: String, deterministic: Bool = false) throws -> T {
    var decoder = CBORDecoder()
    decoder.deterministic = deterministic
    return try decoder.decode(type, from: bytes(hex))
}

/// The DecodingError's debug description and coding path, for checks.
private func failure<T: Decodable>(_ type: T.Type, _ hex: String, deterministic: Bool = false) -> (String, [String])? {
    do {
        _ = try decode(type, hex, deterministic: deterministic)
        return nil
    } catch let error as DecodingError {
        switch error {
        case .dataCorrupted(let c), .typeMismatch(_, let c), .valueNotFound(_, let c), .keyNotFound(_, let c):
            return (c.debugDescription, c.codingPath.map(\.stringValue))
        @unknown default:
            return nil
        }
    } catch {
        return ("not a DecodingError: \(error)", [])
    }
}

@Suite struct CBORDecoderTests {
    @Test func integersFromEveryWidth() throws {
        // 5 as 1, 2, 3, 5 and 9 bytes.
        for hex in ["05", "1805", "190005", "1a00000005", "1b0000000000000005"] {
            #expect(try decode(Int.self, hex) == 5)
            #expect(try decode(UInt8.self, hex) == 5)
            #expect(try decode(Int64.self, hex) == 5)
        }
        #expect(try decode(Int.self, "3b7fffffffffffffff") == Int.min)
        #expect(try decode(UInt64.self, "1bffffffffffffffff") == UInt64.max)
        #expect(try decode(Int8.self, "387f") == Int8.min)
        // Bignums that fit.
        #expect(try decode(UInt64.self, "c248ffffffffffffffff") == UInt64.max)
        #expect(try decode(Int.self, "c3420100") == -257)
        // Whole floats.
        #expect(try decode(Int.self, "f93c00") == 1)
        #expect(try decode(Int.self, "fbc059000000000000") == -100)
    }

    @Test func integerOverflowIsAnError() throws {
        let cases: [(String, String)] = [
            ("1901 00", "does not fit in UInt8"),
            ("3880", "does not fit in Int8"),
            ("20", "does not fit in UInt"),
            ("1bffffffffffffffff", "does not fit in Int"),
            ("3bffffffffffffffff", "-18446744073709551616 does not fit in Int64"),
            ("c249010000000000000000", "does not fit in UInt64"),
            ("f93e00", "not a whole number"),
        ]
        for (hex, message) in cases {
            let hex = hex.replacingOccurrences(of: " ", with: "")
            let result: (String, [String])?
            switch message {
            case let m where m.contains("UInt8"): result = failure(UInt8.self, hex)
            case let m where m.contains("Int8"): result = failure(Int8.self, hex)
            case let m where m.contains("in UInt64"): result = failure(UInt64.self, hex)
            case let m where m.contains("in UInt"): result = failure(UInt.self, hex)
            case let m where m.contains("Int64"): result = failure(Int64.self, hex)
            default: result = failure(Int.self, hex)
            }
            #expect(result?.0.contains(message) == true, "\(hex): \(String(describing: result))")
        }
    }

    @Test func doublesFromEveryWidthAndExactIntegers() throws {
        #expect(try decode(Double.self, "f93e00") == 1.5)
        #expect(try decode(Double.self, "fa47c35000") == 100000)
        #expect(try decode(Double.self, "fb3ff199999999999a") == 1.1)
        #expect(try decode(Double.self, "1903e8") == 1000)
        #expect(try decode(Double.self, "3903e7") == -1000)
        #expect(try decode(Double.self, "1b0020000000000000") == 9_007_199_254_740_992)
        // 2^53 + 1 has no exact Double.
        #expect(failure(Double.self, "1b0020000000000001")?.0.contains("cannot be represented exactly") == true)
        #expect(try decode(Float.self, "f93e00") == 1.5)
        #expect(try decode(Float.self, "fb3ff8000000000000") == 1.5)
        #expect(try decode(Float.self, "fb3ff199999999999a") == Float(1.1))
        #expect(failure(Float.self, "fb7e37e43c8800759c")?.0.contains("does not fit in Float") == true)
        #expect(try decode(Double.self, "f97e00").isNaN)
    }

    @Test func indefiniteLengthItems() throws {
        #expect(try decode(String.self, "7f657374726561646d696e67ff") == "streaming")
        #expect(try decode(Data.self, "5f42010243030405ff") == Data([1, 2, 3, 4, 5]))
        #expect(try decode([Int].self, "9f018202039f0405ffff".replacingOccurrences(of: "8202039f0405ff", with: "0203")) == [1, 2, 3])
        #expect(try decode([[Int]].self, "9f81018202039f0405ffff") == [[1], [2, 3], [4, 5]])
        #expect(try decode([String: Int].self, "bf616101616202ff") == ["a": 1, "b": 2])
        #expect(try decode(Person.self, "bf646e616d656341646163616765182aff") == Person(name: "Ada", age: 42))
    }

    @Test func unknownTagsAreSkipped() throws {
        #expect(try decode(Int.self, "d9d9f705") == 5)                // self-described CBOR
        #expect(try decode(String.self, "d8206161") == "a")
        #expect(try decode(Person.self, "c6a2646e616d65614163616765c701") == Person(name: "A", age: 1))
        #expect(try decode([Int].self, "d90100 820102".replacingOccurrences(of: " ", with: "")) == [1, 2])
        // The CBOR type keeps them.
        #expect(try decode(CBOR.self, "d9d9f705") == .tagged(55799, 5))
    }

    @Test func foundationTypesFromOtherForms() throws {
        #expect(try decode(Date.self, "c074323031332d30332d32315432303a30343a30305a") == Date(timeIntervalSince1970: 1_363_896_240))
        #expect(try decode(Date.self, "1a514b67b0") == Date(timeIntervalSince1970: 1_363_896_240))
        #expect(try decode(Date.self, "c1fb41d452d9ec200000") == Date(timeIntervalSince1970: 1_363_896_240.5))
        // RFC 9581 extended time with milliseconds.
        #expect(try decode(Date.self, "d903e9a2011a514b67b0221901f4") == Date(timeIntervalSince1970: 1_363_896_240.5))
        let uuid = UUID(uuidString: "00010203-0405-0607-0809-0A0B0C0D0E0F")!
        #expect(try decode(UUID.self, "50000102030405060708090a0b0c0d0e0f") == uuid)
        #expect(try decode(UUID.self, "7824" + hexString(Array("00010203-0405-0607-0809-0A0B0C0D0E0F".utf8))) == uuid)
        #expect(failure(UUID.self, "d825430102 03".replacingOccurrences(of: " ", with: ""))?.0.contains("3 bytes instead of 16") == true)
        #expect(try decode(URL.self, "6161") == URL(string: "a"))
        #expect(try decode(Decimal.self, "c482211a00bc614e") == Decimal(string: "123456.78"))
        #expect(try decode(Decimal.self, "1864") == Decimal(100))
        #expect(try decode(Decimal.self, "f97e00").isNaN)
        #expect(try decode(Decimal.self, "c249010000000000000000") == Decimal(string: "18446744073709551616"))
        // Floats outside Decimal's range are an error, not a silent NaN.
        #expect(failure(Decimal.self, "fb01a56e1fc2f8f359")?.0.contains("outside the range of Decimal") == true) // 1e-300
        #expect(failure(Decimal.self, "fb7e37e43c8800759c")?.0.contains("outside the range of Decimal") == true) // 1e300
    }

    @Test func missingAndNullValues() throws {
        // Optional key absent or null.
        #expect(try decode(Person.self, "a2646e616d65614163616765 01".replacingOccurrences(of: " ", with: "")) == Person(name: "A", age: 1))
        #expect(try decode(Person.self, "a3646e616d6561416361676501 65656d61696cf6".replacingOccurrences(of: " ", with: "")) == Person(name: "A", age: 1))
        #expect(try decode(Int?.self, "f6") == nil)
        #expect(try decode(Int?.self, "f7") == nil)
        #expect(try decode([Int?].self, "83 01 f6 03".replacingOccurrences(of: " ", with: "")) == [1, nil, 3])
    }

    @Test func errorsCarryTheCodingPath() throws {
        // people[1].age is a string.
        let value = try CBOREncoder().encodeBytes(["people": [["name": "A", "age": "1"] as [String: String]]] as [String: [[String: String]]])
        do {
            _ = try CBORDecoder().decode(Wrapper.self, from: value)
            Issue.record("expected an error")
        } catch DecodingError.typeMismatch(let type, let context) {
            #expect(ObjectIdentifier(type) == ObjectIdentifier(Int.self))
            #expect(context.codingPath.map(\.stringValue) == ["people", "Index 0", "age"])
            #expect(context.debugDescription.contains("expected an integer but found a text string"))
        }
        // A missing key.
        let missing = try CBOREncoder().encodeBytes(["people": [["name": "A"]]])
        do {
            _ = try CBORDecoder().decode(Wrapper.self, from: missing)
            Issue.record("expected an error")
        } catch DecodingError.keyNotFound(let key, let context) {
            #expect(key.stringValue == "age")
            #expect(context.codingPath.map(\.stringValue) == ["people", "Index 0"])
        }
        // Null for a non-optional.
        let null = failure(Person.self, "a2646e616d65f66361676501")
        #expect(null?.1 == ["name"])
        #expect(null?.0.contains("found null") == true)
        // Wrong top-level shape.
        #expect(failure(Person.self, "83010203")?.0.contains("expected a map but found an array") == true)
        #expect(failure([Int].self, "a0")?.0.contains("expected an array but found a map") == true)
        #expect(failure([Int].self, "8201 6161".replacingOccurrences(of: " ", with: ""))?.1 == ["Index 1"])
    }

    @Test func deterministicModeRejectsNonDeterministicInput() throws {
        let cases: [(String, String)] = [
            ("a2616101616102", "duplicate map key"),
            ("a2616201616102", "not in bytewise order"),
            ("a30a032001186402", "not in bytewise order"), // -1 (0x20) before 100 (0x1864)
            ("1805", "longer argument than needed"),
            ("190017", "longer argument than needed"),
            ("5f4101ff", "indefinite-length"),
            ("9fff", "indefinite-length"),
            ("fa3fc00000", "half precision holds exactly"),
            ("fb3ff8000000000000", "shorter width holds exactly"),
        ]
        for (hex, message) in cases {
            let result = failure(CBOR.self, hex, deterministic: true)
            #expect(result?.0.contains(message) == true, "\(hex): \(String(describing: result))")
            // The default mode accepts them.
            #expect(failure(CBOR.self, hex) == nil, "\(hex)")
        }
        // Deterministic output is accepted.
        #expect(try decode([String: Int].self, "a2616101616202", deterministic: true) == ["a": 1, "b": 2])
    }

    @Test func duplicateKeysInDefaultMode() throws {
        // Accepted (one of the entries is used); the CBOR type keeps both.
        #expect(try decode([String: Int].self, "a2616101616102") == ["a": 2])
        #expect(try decode(CBOR.self, "a2616101616102") == .map([(key: "a", value: 1), (key: "a", value: 2)]))
    }

    @Test func keysReadOutOfOrderAndRepeatedly() throws {
        struct Reversed: Decodable, Equatable {
            var values: [Int]
            private enum Keys: String, CodingKey { case a, b, c, d }
            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: Keys.self)
                values = try [Keys.d, .c, .b, .a, .a, .d, .b].map { try c.decode(Int.self, forKey: $0) }
                #expect(c.allKeys.map(\.stringValue) == ["a", "b", "c", "d"])
                #expect(c.contains(.c))
            }
        }
        let v = try decode(Reversed.self, "a4616101616202616303616404")
        #expect(v.values == [4, 3, 2, 1, 1, 4, 2])
    }

    @Test func integerMapKeysMatchIntegerCodingKeys() throws {
        struct Cose: Decodable {
            var alg: Int
            var kid: Data
            private enum CodingKeys: Int, CodingKey { case alg = 1, kid = 4 }
        }
        let value = try decode(Cose.self, "a2012604420102")
        #expect(value.alg == -7 && value.kid == Data([1, 2]))
    }

    @Test func integersThatAFloatHoldsExactlyDecodeAsFloats() throws {
        // -2^54 (3b 003fffffffffffff) is exact in Double and in Float.
        #expect(try decode(Double.self, "3b003fffffffffffff") == -0x1p54)
        #expect(try decode(Float.self, "3b003fffffffffffff") == -0x1p54)
        #expect(try decode(Double.self, "3bffffffffffffffff") == -0x1p64)
        #expect(try decode(Float.self, "3bffffffffffffffff") == -0x1p64)
        #expect(try decode(Double.self, "3b7fffffffffffffff") == -0x1p63)
        #expect(try decode(Double.self, "3b001fffffffffffff") == -0x1p53)
        #expect(try decode(Float.self, "3a00ffffff") == -0x1p24)
        #expect(try decode(Float.self, "1a01000000") == 0x1p24)
        #expect(try decode(Double.self, "1b8000000000000000") == 0x1p63)
        for inexact in ["1bffffffffffffffff", "3bfffffffffffffffe", "3b0020000000000000", "3b003ffffffffffffe", "1b0020000000000001"] {
            #expect(failure(Double.self, inexact)?.0.contains("cannot be represented exactly as a Double") == true, "\(inexact)")
        }
        for inexact in ["1a01000001", "3a01000000", "1bffffffffffffffff", "3b0020000000000000"] {
            #expect(failure(Float.self, inexact)?.0.contains("cannot be represented exactly as a Float") == true, "\(inexact)")
        }
        // Every power of two and its neighbours, both signs, against the standard library's exactness.
        var values: [Int128] = []
        for k in 0 ... 64 {
            let p = Int128(1) << k
            values += [p - 1, p, p + 1, -p + 1, -p, -p - 1]
        }
        for value in values where value >= -(Int128(1) << 64) && value < (Int128(1) << 64) {
            let encoded = CBOR(value).encoded()
            let hex = hexString(encoded)
            if let exact = Double(exactly: value) {
                #expect(try decode(Double.self, hex) == exact, "\(value)")
            } else {
                #expect(failure(Double.self, hex) != nil, "\(value)")
            }
            if let exact = Float(exactly: value) {
                #expect(try decode(Float.self, hex) == exact, "\(value)")
            } else {
                #expect(failure(Float.self, hex) != nil, "\(value)")
            }
        }
    }

    @Test func decodesFromAnUnsafeBuffer() throws {
        let encoded = try CBOREncoder().encodeBytes(Person(name: "Ada", age: 36, email: "a@b.c"))
        let person = try encoded.withUnsafeBytes { try CBORDecoder().decode(Person.self, from: $0) }
        #expect(person == Person(name: "Ada", age: 36, email: "a@b.c"))
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        #expect(throws: DecodingError.self) { try CBORDecoder().decode(Int.self, from: empty) }
    }

    @Test func maxDepthApplies() throws {
        var decoder = CBORDecoder()
        decoder.maxDepth = 3
        #expect(try decoder.decode([[[Int]]].self, from: bytes("81818101")) == [[[1]]])
        #expect(throws: DecodingError.self) { try decoder.decode([[[[Int]]]].self, from: bytes("8181818101")) }
    }

    @Test func superDecoderOfAMissingKeyReadsNull() throws {
        struct S: Decodable {
            var isNil: Bool
            private enum K: String, CodingKey { case x }
            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: K.self)
                isNil = try c.superDecoder().singleValueContainer().decodeNil()
            }
        }
        #expect(try decode(S.self, "a0").isNil)
    }
}
