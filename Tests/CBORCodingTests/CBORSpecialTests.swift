import Foundation
import Testing
@testable import CBORCoding

/// The `DecodingError` debug description for decoding `hex` as a `Date`, or nil when it decodes.
private func dateFailure(_ hex: String) -> String? {
    do {
        let date = try CBORDecoder().decode(Date.self, from: bytes(hex))
        // Printing a NaN Date traps in Foundation: a decoded Date must be printable.
        _ = date.description
        return nil
    } catch {
        return decodingErrorDescription(error) ?? "not a DecodingError: \(error)"
    }
}

@Suite struct CBORSpecialTests {
    @Test func dateFromABignumBeyondInt128DecodesWithoutTrapping() throws {
        // Tag 2 over 16 bytes: 2^127, which Int128 cannot hold.
        let hex = "c250" + "80" + String(repeating: "00", count: 15)
        let date = try CBORDecoder().decode(Date.self, from: bytes(hex))
        // 2^127 - 978,307,200 rounds to 2^127.
        #expect(date.timeIntervalSinceReferenceDate == 0x1p127)
        // The largest 128-bit magnitude, both signs.
        let top = try CBORDecoder().decode(Date.self, from: bytes("c250" + String(repeating: "ff", count: 16)))
        #expect(top.timeIntervalSinceReferenceDate == 0x1p128)
        let bottom = try CBORDecoder().decode(Date.self, from: bytes("c350" + String(repeating: "ff", count: 16)))
        #expect(bottom.timeIntervalSinceReferenceDate == -0x1p128)
    }

    @Test func dateFromANegativeBignumAtTheEdgeOfInt128DecodesWithoutTrapping() throws {
        // -1 - 0x7fff…c5b03780 fits Int128; subtracting the 1970→2001 offset then goes one past Int128.min.
        let date = try CBORDecoder().decode(Date.self, from: bytes("c3507fffffffffffffffffffffffc5b03780"))
        #expect(date.timeIntervalSinceReferenceDate == -0x1p127)
        // Bignums that fit keep their exact value.
        #expect(try CBORDecoder().decode(Date.self, from: bytes("c2420100")).timeIntervalSince1970 == 256)
        #expect(try CBORDecoder().decode(Date.self, from: bytes("c3420100")).timeIntervalSince1970 == -257)
        // Wider than 128 bits is an error, not a trap.
        #expect(dateFailure("c251" + "01" + String(repeating: "00", count: 16))?.contains("wider than 128 bits") == true)
    }

    @Test("A decoded Date that is NaN or infinite is a DecodingError", arguments: [
        "c1f97e00",                 // tag 1 over a half-precision NaN
        "c1f97c00",                 // tag 1 over +infinity
        "c1f9fc00",                 // tag 1 over -infinity
        "c1fb7ff8000000000001",     // tag 1 over a double NaN with a payload
        "f97e00",                   // untagged NaN seconds
        "fa7f800000",               // untagged single-precision infinity
        "d903e9a101f97e00",         // tag 1001 {1: NaN}
        "d903e9a105821907ff01",     // tag 1001 {5: [2047, 1]}: 2^2047 seconds is infinite
        "d903e9a105821907ff00",     // tag 1001 {5: [2047, 0]}: 0 × 2^2047 is NaN
    ])
    func nonFiniteDatesAreRejected(_ hex: String) {
        let message = dateFailure(hex)
        #expect(message?.contains("not a finite date") == true, "\(hex): \(message ?? "decoded")")
    }

    @Test func nonFiniteDatesDoNotEncode() throws {
        for seconds in [Double.nan, .infinity, -.infinity] {
            #expect(throws: EncodingError.self) { try CBOREncoder().encode(Date(timeIntervalSinceReferenceDate: seconds)) }
            #expect(throws: EncodingError.self) { try CBOREncoder().encode(["when": Date(timeIntervalSinceReferenceDate: seconds)]) }
        }
        // The largest finite dates still round-trip.
        for seconds in [Double.greatestFiniteMagnitude, -.greatestFiniteMagnitude, 0x1p100] {
            let date = Date(timeIntervalSinceReferenceDate: seconds)
            #expect(try CBORDecoder().decode(Date.self, from: CBOREncoder().encode(date)) == date)
        }
    }

    @Test("The fuzzer's seeds of once-crashing classes decode or throw a DecodingError, as every type the fuzzer tries")
    func fuzzSeedsDecodeOrThrow() throws {
        let directory = fixturesDirectory.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Tools/Fuzz/Seeds")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".hex") }.sorted()
        #expect(names.count >= 10)
        func attempt<T: Decodable>(_ type: T.Type, _ input: [UInt8], _ name: String) {
            do {
                _ = String(describing: try CBORDecoder().decode(T.self, from: input))
            } catch {
                #expect(error is DecodingError, "\(name) as \(T.self): \(error)")
            }
        }
        for name in names {
            let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
            let hex = text.split(separator: "\n").filter { !$0.hasPrefix("#") }.joined()
            let input = bytes(hex)
            #expect(!input.isEmpty, "\(name)")
            attempt(Date.self, input, name)
            attempt(Decimal.self, input, name)
            attempt(Double.self, input, name)
            attempt(Float.self, input, name)
            attempt(Int.self, input, name)
            attempt([Date].self, input, name)
            attempt([Decimal].self, input, name)
            attempt(SeedRecord.self, input, name)
        }
    }
}

/// The shape of the fuzzer's record, for the seeds meant for it.
private struct SeedRecord: Codable {
    var a: Int?
    var f: Date?
    var h: Decimal?
    var l: [Int8]?
    var m: Float?
}
