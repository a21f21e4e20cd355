import Foundation
import Testing
@testable import CBORCoding

@Suite struct CBORDiagnosticTests {
    @Test func diagnosticNotation() {
        let value: CBOR = [
            "text": "a\"b\\c\n\u{01}", "bytes": .bytes([0xDE, 0xAD]), "tag": .tagged(1, 1_363_896_240),
            "neg": .negative(.max), "nested": [1, [2.5, nil], .undefined, .simple(16)],
        ]
        #expect(value.description == #"{"text": "a\"b\\c\n\u0001", "bytes": h'dead', "tag": 1(1363896240), "neg": -18446744073709551616, "nested": [1, [2.5, null], undefined, simple(16)]}"#)
    }

    @Test func floatFormatting() {
        #expect(CBOR.float(1e300).description == "1.0e+300")
        #expect(CBOR.float(1e-7).description == "1.0e-7")
        #expect(CBOR.float(100).description == "100.0")
        #expect(CBOR.float(-.infinity).description == "-Infinity")
        #expect(CBOR.float(.nan).description == "NaN")
    }

    @Test func jsonRendering() {
        let value: CBOR = [
            "n": 1, "neg": -5, "big": .unsigned(.max), "f": 1.5, "nan": .float(.nan),
            "bytes": .bytes([0xFB, 0xFF, 0x01]), "t": .tagged(1, 10), 1: "int key",
            "uuid": .tagged(37, .bytes(Array(0 ..< 16))), "bignum": .tagged(2, .bytes([1, 0, 0, 0, 0, 0, 0, 0, 0])),
            "negbig": .tagged(3, .bytes([1, 0, 0, 0, 0, 0, 0, 0, 0])),
            "u": .undefined, "s": .simple(99), "b": true, "a": [nil, "x\u{7f}"],
        ]
        #expect(value.jsonString() == #"{"n":1,"neg":-5,"big":18446744073709551615,"f":1.5,"nan":null,"bytes":"-_8B","t":10,"1":"int key","uuid":"00010203-0405-0607-0809-0a0b0c0d0e0f","bignum":18446744073709551616,"negbig":-18446744073709551617,"u":null,"s":null,"b":true,"a":[null,"x\u007f"]}"#)
        // And it is JSON that Foundation reads.
        #expect((try? JSONSerialization.jsonObject(with: Data(value.jsonString().utf8))) != nil)
        #expect((try? JSONSerialization.jsonObject(with: Data(value.jsonString(prettyPrinted: true).utf8))) != nil)
    }

    @Test func prettyJSON() {
        let value: CBOR = ["a": [1, 2], "b": [:], "c": []]
        #expect(value.jsonString(prettyPrinted: true) == """
        {
          "a": [
            1,
            2
          ],
          "b": {},
          "c": []
        }
        """)
    }

    @Test func base64url() {
        #expect(CBOR.base64url([]) == "")
        #expect(CBOR.base64url([0x66]) == "Zg")
        #expect(CBOR.base64url([0x66, 0x6F]) == "Zm8")
        #expect(CBOR.base64url([0x66, 0x6F, 0x6F]) == "Zm9v")
        #expect(CBOR.base64url([0xFF, 0xFE]) == "__4")
    }
}
