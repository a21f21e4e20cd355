import Foundation
import Testing
@testable import CBORCoding

// Equal values must be equal bytes in deterministic mode: a Set's elements are sorted (a
// project rule beyond RFC 8949 §4.2.1, which orders map keys only), and with the NFC option
// canonically equivalent strings encode alike.

private struct Tagged: Codable, Hashable {
    var name: String
    var labels: Set<String>
    var scores: [String: Set<Int>]
}

/// 64 words, a Set of them built in a way that gives this process's hash order.
private let setWords = (0 ..< 64).map { "w\($0 &* 7919 % 1000)" }

/// The deterministic encoding of a Set of `setWords` (and of a struct holding Sets), in hex.
func deterministicSetHex() throws -> String {
    var encoder = CBOREncoder()
    encoder.deterministic = true
    let value = Tagged(name: "t", labels: Set(setWords), scores: ["a": Set(-20 ... 20), "b": [1, 1000, -1000]])
    return hexString(try encoder.encodeBytes(Set(setWords))) + "/" + hexString(try encoder.encodeBytes(value))
}

/// The order this process's Set iterates `setWords` in.
func setIterationOrder() -> String {
    Set(setWords).joined(separator: ",")
}

/// Whether `elements` are in strictly increasing bytewise order of their encodings.
private func inBytewiseOrder(_ elements: [CBOR]) -> Bool {
    let encodings = elements.map { $0.encoded() }
    return zip(encodings, encodings.dropFirst()).allSatisfy { $0.lexicographicallyPrecedes($1) }
}

@Suite struct CBOREncoderCanonicalTests {
    @Test func deterministicModeSortsSetElementsBytewise() throws {
        var a = Set<String>()
        for word in setWords { a.insert(word) }
        var b = Set<String>(minimumCapacity: 4096)
        for word in setWords.reversed() { b.insert(word) }
        try #require(Array(a) != Array(b), "the two sets should iterate in different orders")
        var encoder = CBOREncoder()
        encoder.deterministic = true
        let encoded = try encoder.encodeBytes(a)
        #expect(try encoder.encodeBytes(b) == encoded)
        guard case .array(let elements) = try CBOR(decoding: encoded) else {
            Issue.record("a Set should encode as an array")
            return
        }
        #expect(elements.count == setWords.count)
        #expect(inBytewiseOrder(elements))
        #expect(try CBORDecoder().decode(Set<String>.self, from: encoded) == a)

        // Integers of both signs and widths; Sets inside Sets, structs and dictionaries.
        let ints: Set<Int> = [0, -1, 23, 24, -25, 255, 256, 65_536, -65_537, .max, .min]
        var reversedInts = Set<Int>(minimumCapacity: 1000)
        for i in ints.reversed() { reversedInts.insert(i) }
        let intsEncoded = try encoder.encodeBytes(ints)
        #expect(try encoder.encodeBytes(reversedInts) == intsEncoded)
        if case .array(let elements) = try CBOR(decoding: intsEncoded) { #expect(inBytewiseOrder(elements)) }
        let nested: Set<Set<Int>> = [[1, 2], [3], [], [-4, 100_000]]
        var nestedOther = Set<Set<Int>>(minimumCapacity: 100)
        for inner in nested { var copy = Set<Int>(minimumCapacity: 64); copy.formUnion(inner); nestedOther.insert(copy) }
        #expect(try encoder.encodeBytes(nested) == encoder.encodeBytes(nestedOther))
        let value = Tagged(name: "x", labels: a, scores: ["k": ints])
        let other = Tagged(name: "x", labels: b, scores: ["k": reversedInts])
        #expect(try encoder.encodeBytes(value) == encoder.encodeBytes(other))
        #expect(try CBORDecoder().decode(Tagged.self, from: encoder.encodeBytes(value)) == value)
    }

    @Test func setOrderIsKeptOutsideDeterministicMode() throws {
        // The default mode writes elements as the Set iterates them (no sorting cost).
        let set = Set(setWords)
        let encoded = try CBOREncoder().encodeBytes(set)
        guard case .array(let elements) = try CBOR(decoding: encoded) else {
            Issue.record("a Set should encode as an array")
            return
        }
        #expect(elements.compactMap(\.stringValue) == Array(set))
    }

    @Test("A Set encodes to the same bytes in another process, whose hash seed differs")
    func setEncodingIsTheSameAcrossProcesses() async throws {
        let here = try deterministicSetHex()
        var orders: Set<String> = [setIterationOrder()]
        for _ in 0 ..< 3 {
            let result = await #expect(processExitsWith: .success, observing: [\.standardOutputContent]) {
                print(try deterministicSetHex())
                print(setIterationOrder())
                exit(0)
            }
            let lines = String(decoding: result?.standardOutputContent ?? [], as: UTF8.self).split(separator: "\n").map(String.init)
            #expect(lines.first == here)
            if lines.count > 1 { orders.insert(lines[1]) }
        }
        // The check means something only if the processes hashed differently.
        if ProcessInfo.processInfo.environment["SWIFT_DETERMINISTIC_HASHING"] == nil {
            #expect(orders.count > 1, "every process iterated the Set in the same order")
        }
    }

    @Test func nfcOptionEncodesCanonicallyEquivalentStringsAlike() throws {
        let composed = "caf\u{E9}"           // é as one scalar (NFC)
        let decomposed = "cafe\u{301}"       // e + combining acute (NFD)
        try #require(Array(composed.utf8) != Array(decomposed.utf8))
        let plain = CBOREncoder()
        var normalizing = CBOREncoder()
        normalizing.normalizesStringsToNFC = true
        #expect(!plain.normalizesStringsToNFC)

        // Off (the default): stored as given, so the two spellings differ.
        #expect(try plain.encodeBytes(composed) != plain.encodeBytes(decomposed))
        // On: both are written as NFC.
        #expect(try normalizing.encodeBytes(decomposed) == plain.encodeBytes(composed))
        #expect(try normalizing.encodeBytes(composed) == plain.encodeBytes(composed))

        // Everywhere a String is written: fields, keys, arrays, Sets, dictionaries of scalars, nested values.
        struct Fields: Codable { var s: String; var list: [String]; var map: [String: String]; var counts: [String: Int]; var set: Set<String>; var inner: [String: [String]] }
        let nfd = Fields(s: decomposed, list: [decomposed, "x"], map: [decomposed: decomposed], counts: [decomposed: 1], set: [decomposed], inner: [decomposed: [decomposed]])
        let nfc = Fields(s: composed, list: [composed, "x"], map: [composed: composed], counts: [composed: 1], set: [composed], inner: [composed: [composed]])
        for deterministic in [false, true] {
            var on = normalizing, off = plain
            on.deterministic = deterministic
            off.deterministic = deterministic
            #expect(try on.encodeBytes(nfd) == off.encodeBytes(nfc), "deterministic: \(deterministic)")
            #expect(try off.encodeBytes(nfd) != off.encodeBytes(nfc), "deterministic: \(deterministic)")
        }
        // Normalization form C, not KC: a compatibility ligature stays as it is.
        #expect(try normalizing.encodeBytes("\u{FB01}") == plain.encodeBytes("\u{FB01}"))
    }

    @Test func nfcHelperNormalizesAndLeavesASCIIAlone() {
        #expect(Array(CBOREncoder.normalizedToNFC("cafe\u{301}").utf8) == Array("caf\u{E9}".utf8))
        #expect(Array(CBOREncoder.normalizedToNFC("caf\u{E9}").utf8) == Array("caf\u{E9}".utf8))
        #expect(CBOREncoder.normalizedToNFC("plain ascii, 0-9 ~") == "plain ascii, 0-9 ~")
        #expect(CBOREncoder.normalizedToNFC("") == "")
        // Hangul jamo compose; a lone combining mark stays.
        #expect(Array(CBOREncoder.normalizedToNFC("\u{1100}\u{1161}").utf8) == Array("\u{AC00}".utf8))
        #expect(Array(CBOREncoder.normalizedToNFC("\u{301}").utf8) == Array("\u{301}".utf8))
    }
}
