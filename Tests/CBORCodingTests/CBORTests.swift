import Foundation
import Testing
@testable import CBORCoding

@Suite struct CBORTests {
    @Test("Appendix A: every example decodes to the RFC's value", arguments: appendixA)
    func appendixDecodes(_ example: AppendixExample) throws {
        let decoded = try CBOR(decoding: bytes(example.hex))
        #expect(decoded == example.value, "\(example.hex) decoded as \(decoded)")
    }

    @Test("Appendix A: preferred examples encode to the RFC's exact bytes", arguments: appendixA.filter(\.preferred))
    func appendixEncodes(_ example: AppendixExample) {
        #expect(hexString(example.value.encoded()) == example.hex)
        #expect(hexString(example.value.encoded(deterministic: true)) == example.hex)
    }

    @Test("Appendix A: non-preferred examples re-encode in preferred form", arguments: appendixA.filter { !$0.preferred })
    func appendixReencodes(_ example: AppendixExample) throws {
        let decoded = try CBOR(decoding: bytes(example.hex))
        let preferred = decoded.encoded()
        #expect(preferred.count <= bytes(example.hex).count)
        #expect(try CBOR(decoding: preferred) == decoded)
    }

    @Test("Appendix A: diagnostic notation", arguments: appendixA)
    func appendixDiagnostic(_ example: AppendixExample) throws {
        #expect(try CBOR(decoding: bytes(example.hex)).description == example.diagnostic)
    }

    @Test func decodesFromDataArrayAndSlice() throws {
        let raw = bytes("83010203")
        #expect(try CBOR(decoding: Data(raw)) == [1, 2, 3])
        #expect(try CBOR(decoding: raw[...]) == [1, 2, 3])
        #expect(try CBOR(decoding: AnyCollection(raw)) == [1, 2, 3])
    }

    @Test func trailingBytesAreAnError() {
        #expect(throws: DecodingError.self) { try CBOR(decoding: bytes("0000")) }
        do {
            _ = try CBOR(decoding: bytes("8101ff"))
            Issue.record("8101ff decoded although a byte follows the array")
        } catch {
            #expect(decodingErrorDescription(error)?.contains("trailing bytes") == true)
        }
    }

    @Test func emptyInputIsAnError() {
        #expect(throws: DecodingError.self) { try CBOR(decoding: [UInt8]()) }
    }

    @Test("Deterministic map order follows RFC 8949 §4.2.1: 10, 100, -1, \"z\", \"aa\", [100], [-1], false")
    func deterministicKeyOrder() throws {
        let ordered: [CBOR] = [10, 100, -1, "z", "aa", [100], [-1], false]
        var shuffled = ordered
        var rng = SplitMix64(seed: 7)
        for _ in 0 ..< 20 {
            shuffled.shuffle(using: &rng)
            let map = CBOR.map(shuffled.enumerated().map { (key: $0.element, value: CBOR($0.offset)) })
            let encoded = map.encoded(deterministic: true)
            guard case .map(let entries) = try CBOR(decoding: encoded) else {
                Issue.record("not a map")
                return
            }
            #expect(entries.map(\.key) == ordered)
            // The deterministic decoder accepts it; the preferred (insertion order) form usually not.
            var decoder = CBORDecoder()
            decoder.deterministic = true
            #expect(try decoder.decode(CBOR.self, from: encoded) == (try CBOR(decoding: encoded)))
        }
    }

    @Test func nestedMapsAreSortedToo() {
        let value: CBOR = ["b": ["y": 1, "x": 2], "a": [["d": 1, "c": 2]]]
        #expect(value.encoded(deterministic: true) == bytes("a2 6161 81 a2 6163 02 6164 01 6162 a2 6178 02 6179 01"))
    }

    @Test func headReaderRefusesOffsetsOutsideTheBuffer() {
        // The byte before the buffer is a valid head: an offset of -1 must not read it.
        let bytes: [UInt8] = [0x01, 0x02]
        bytes.withUnsafeBytes { all in
            let buffer = UnsafeRawBufferPointer(rebasing: all[1...])
            #expect(CBOR.head(in: buffer, at: 0)?.argument == 2)
            #expect(CBOR.head(in: buffer, at: -1) == nil)
            #expect(CBOR.head(in: buffer, at: 1) == nil)
        }
    }

    @Test func negativeIntegersAtTheLimits() throws {
        #expect(CBOR(Int64.min) == .negative(UInt64(Int64.max)))
        #expect(CBOR(-1) == .negative(0))
        #expect(CBOR(UInt64.max) == .unsigned(.max))
        #expect(CBOR.negative(.max).description == "-18446744073709551616")
        #expect(CBOR(Int64.min).intValue == Int.min)
        #expect(CBOR.negative(.max).intValue == nil)
    }

    @Test func floatsCompareByBits() {
        #expect(CBOR.float(.nan) == CBOR.float(.nan))
        #expect(CBOR.float(0.0) != CBOR.float(-0.0))
        #expect(Set([CBOR.float(.nan), CBOR.float(.nan)]).count == 1)
    }

    @Test func floatWidthsRoundTripWithPayloads() throws {
        let cases: [(Double, String)] = [
            (Double(bitPattern: 0x7FF8_0000_0000_0000), "f97e00"),
            (Double(bitPattern: 0x7FF4_0000_0000_0000), "f97d00"), // signalling NaN payload fits a half
            (Double(bitPattern: 0xFFF8_0000_2000_0000), "faffc00001"),
            (Double(bitPattern: 0x7FF8_0000_0000_0001), "fb7ff8000000000001"),
            (Double.leastNonzeroMagnitude, "fb0000000000000001"),
            (Double(Float.leastNonzeroMagnitude), "fa00000001"),
            (0x1p-24, "f90001"),
            (0x1p-25, "fa33000000"),
            (65504, "f97bff"),
            (65505, "fa477fe100"),
            (-0.0, "f98000"),
        ]
        for (value, hex) in cases {
            let encoded = CBOR.float(value).encoded()
            #expect(hexString(encoded) == hex, "\(value.bitPattern)")
            guard case .float(let back) = try CBOR(decoding: encoded) else { Issue.record("not a float"); continue }
            #expect(back.bitPattern == value.bitPattern)
        }
    }

    @Test func subscriptAndAccessors() {
        let value: CBOR = ["a": 1, 2: "two"]
        #expect(value["a"]?.intValue == 1)
        #expect(value[2]?.stringValue == "two")
        #expect(value["missing"] == nil)
    }

    @Test func simpleValuesOutsideTheirRangeAreWrittenAsUndefined() {
        #expect(CBOR.simple(25).encoded() == [0xF7])
        #expect(CBOR.simple(20).encoded() == [0xF4])
        #expect(CBOR.simple(32).encoded() == [0xF8, 0x20])
    }

    @Test func depthLimit() throws {
        let deep = [UInt8](repeating: 0x81, count: 20) + [0x00]
        #expect(try CBOR(decoding: deep, maxDepth: 20) != nil)
        do {
            _ = try CBOR(decoding: deep, maxDepth: 19)
            Issue.record("expected an error")
        } catch {
            #expect(decodingErrorDescription(error)?.contains("deeper than the limit of 19") == true)
        }
        // Tags count as nesting too.
        #expect(throws: DecodingError.self) { try CBOR(decoding: [UInt8](repeating: 0xC1, count: 10) + [0x00], maxDepth: 5) }
    }
}
