@testable import CBORCoding

/// One example of RFC 8949 Appendix A: the encoded hex, the decoded value, its
/// diagnostic notation, and whether the encoding is the preferred serialization
/// (so encoding the value must give exactly these bytes).
struct AppendixExample: Sendable, CustomStringConvertible {
    var hex: String
    var value: CBOR
    var diagnostic: String
    var preferred: Bool
    var description: String { hex }
}

private func ex(_ hex: String, _ value: CBOR, _ diagnostic: String, preferred: Bool = true) -> AppendixExample {
    AppendixExample(hex: hex, value: value, diagnostic: diagnostic, preferred: preferred)
}

private let oneTo25: [CBOR] = (1 ... 25).map { CBOR($0) }

/// RFC 8949 Appendix A, Table 6, written out from the RFC's table.
let appendixA: [AppendixExample] = [
    ex("00", 0, "0"),
    ex("01", 1, "1"),
    ex("0a", 10, "10"),
    ex("17", 23, "23"),
    ex("1818", 24, "24"),
    ex("1819", 25, "25"),
    ex("1864", 100, "100"),
    ex("1903e8", 1000, "1000"),
    ex("1a000f4240", 1_000_000, "1000000"),
    ex("1b000000e8d4a51000", 1_000_000_000_000, "1000000000000"),
    ex("1bffffffffffffffff", .unsigned(.max), "18446744073709551615"),
    ex("c249010000000000000000", .tagged(2, .bytes([1, 0, 0, 0, 0, 0, 0, 0, 0])), "2(h'010000000000000000')"),
    ex("3bffffffffffffffff", .negative(.max), "-18446744073709551616"),
    ex("c349010000000000000000", .tagged(3, .bytes([1, 0, 0, 0, 0, 0, 0, 0, 0])), "3(h'010000000000000000')"),
    ex("20", -1, "-1"),
    ex("29", -10, "-10"),
    ex("3863", -100, "-100"),
    ex("3903e7", -1000, "-1000"),
    ex("f90000", 0.0, "0.0"),
    ex("f98000", .float(-0.0), "-0.0"),
    ex("f93c00", 1.0, "1.0"),
    ex("fb3ff199999999999a", 1.1, "1.1"),
    ex("f93e00", 1.5, "1.5"),
    ex("f97bff", 65504.0, "65504.0"),
    ex("fa47c35000", 100000.0, "100000.0"),
    ex("fa7f7fffff", 3.4028234663852886e+38, "3.4028234663852886e+38"),
    ex("fb7e37e43c8800759c", 1.0e+300, "1.0e+300"),
    ex("f90001", 5.960464477539063e-8, "5.960464477539063e-8"),
    ex("f90400", 0.00006103515625, "6.103515625e-5"),
    ex("f9c400", -4.0, "-4.0"),
    ex("fbc010666666666666", -4.1, "-4.1"),
    ex("f97c00", .float(.infinity), "Infinity"),
    ex("f97e00", .float(.nan), "NaN"),
    ex("f9fc00", .float(-.infinity), "-Infinity"),
    ex("fa7f800000", .float(.infinity), "Infinity", preferred: false),
    ex("fa7fc00000", .float(.nan), "NaN", preferred: false),
    ex("faff800000", .float(-.infinity), "-Infinity", preferred: false),
    ex("fb7ff0000000000000", .float(.infinity), "Infinity", preferred: false),
    ex("fb7ff8000000000000", .float(.nan), "NaN", preferred: false),
    ex("fbfff0000000000000", .float(-.infinity), "-Infinity", preferred: false),
    ex("f4", false, "false"),
    ex("f5", true, "true"),
    ex("f6", nil, "null"),
    ex("f7", .undefined, "undefined"),
    ex("f0", .simple(16), "simple(16)"),
    ex("f8ff", .simple(255), "simple(255)"),
    ex("c074323031332d30332d32315432303a30343a30305a", .tagged(0, "2013-03-21T20:04:00Z"), "0(\"2013-03-21T20:04:00Z\")"),
    ex("c11a514b67b0", .tagged(1, 1_363_896_240), "1(1363896240)"),
    ex("c1fb41d452d9ec200000", .tagged(1, 1_363_896_240.5), "1(1363896240.5)"),
    ex("d74401020304", .tagged(23, .bytes([1, 2, 3, 4])), "23(h'01020304')"),
    ex("d818456449455446", .tagged(24, .bytes([0x64, 0x49, 0x45, 0x54, 0x46])), "24(h'6449455446')"),
    ex("d82076687474703a2f2f7777772e6578616d706c652e636f6d", .tagged(32, "http://www.example.com"), "32(\"http://www.example.com\")"),
    ex("40", .bytes([]), "h''"),
    ex("4401020304", .bytes([1, 2, 3, 4]), "h'01020304'"),
    ex("60", "", "\"\""),
    ex("6161", "a", "\"a\""),
    ex("6449455446", "IETF", "\"IETF\""),
    ex("62225c", "\"\\", "\"\\\"\\\\\""),
    ex("62c3bc", "\u{00fc}", "\"\u{00fc}\""),
    ex("63e6b0b4", "\u{6c34}", "\"\u{6c34}\""),
    ex("64f0908591", "\u{10151}", "\"\u{10151}\""),
    ex("80", [], "[]"),
    ex("83010203", [1, 2, 3], "[1, 2, 3]"),
    ex("8301820203820405", [1, [2, 3], [4, 5]], "[1, [2, 3], [4, 5]]"),
    ex("98190102030405060708090a0b0c0d0e0f101112131415161718181819", .array(oneTo25),
       "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25]"),
    ex("a0", [:], "{}"),
    ex("a201020304", [1: 2, 3: 4], "{1: 2, 3: 4}"),
    ex("a26161016162820203", ["a": 1, "b": [2, 3]], "{\"a\": 1, \"b\": [2, 3]}"),
    ex("826161a161626163", ["a", ["b": "c"]], "[\"a\", {\"b\": \"c\"}]"),
    ex("a56161614161626142616361436164614461656145", ["a": "A", "b": "B", "c": "C", "d": "D", "e": "E"],
       "{\"a\": \"A\", \"b\": \"B\", \"c\": \"C\", \"d\": \"D\", \"e\": \"E\"}"),
    ex("5f42010243030405ff", .bytes([1, 2, 3, 4, 5]), "h'0102030405'", preferred: false),
    ex("7f657374726561646d696e67ff", "streaming", "\"streaming\"", preferred: false),
    ex("9fff", [], "[]", preferred: false),
    ex("9f018202039f0405ffff", [1, [2, 3], [4, 5]], "[1, [2, 3], [4, 5]]", preferred: false),
    ex("9f01820203820405ff", [1, [2, 3], [4, 5]], "[1, [2, 3], [4, 5]]", preferred: false),
    ex("83018202039f0405ff", [1, [2, 3], [4, 5]], "[1, [2, 3], [4, 5]]", preferred: false),
    ex("83019f0203ff820405", [1, [2, 3], [4, 5]], "[1, [2, 3], [4, 5]]", preferred: false),
    ex("9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff", .array(oneTo25),
       "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25]", preferred: false),
    ex("bf61610161629f0203ffff", ["a": 1, "b": [2, 3]], "{\"a\": 1, \"b\": [2, 3]}", preferred: false),
    ex("826161bf61626163ff", ["a", ["b": "c"]], "[\"a\", {\"b\": \"c\"}]", preferred: false),
    ex("bf6346756ef563416d7421ff", ["Fun": true, "Amt": -2], "{\"Fun\": true, \"Amt\": -2}", preferred: false),
]
