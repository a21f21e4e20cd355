import Foundation
import Testing
@testable import CBORCoding

/// A struct for decoding hostile input into, with nested and optional members.
private struct Probe: Codable {
    var a: Int?
    var b: [String]?
    var c: [String: Double]?
    var d: Data?
}

@Suite struct CBORReaderTests {
    static let malformed = (try? loadHexFixtures("malformed")) ?? []
    static let wellformed = (try? loadHexFixtures("wellformed")) ?? []

    @Test func corpusIsPresent() {
        #expect(Self.malformed.count >= 60)
        #expect(Self.wellformed.count == appendixA.count)
    }

    @Test("Malformed input throws a DecodingError naming the problem", arguments: malformed.map(\.name))
    func malformedInput(_ name: String) throws {
        let fixture = try #require(Self.malformed.first { $0.name == name })
        // The low-level item.
        do {
            let item = try CBOR(decoding: fixture.bytes)
            Issue.record("\(name) decoded as \(item)")
        } catch {
            let message = try #require(decodingErrorDescription(error), "\(name): \(error) is not a DecodingError")
            if let expect = fixture.expect {
                #expect(message.contains(expect), "\(name): \"\(message)\" does not mention \"\(expect)\"")
            }
            #expect(message.contains("byte offset"), "\(name): \(message)")
        }
        // Typed decoding of several shapes: always a DecodingError, never a crash.
        let decoder = CBORDecoder()
        func check<T: Decodable>(_ type: T.Type) {
            do {
                _ = try decoder.decode(T.self, from: fixture.bytes)
                Issue.record("\(name) decoded as \(T.self)")
            } catch {
                #expect(error is DecodingError, "\(name) as \(T.self): \(error)")
            }
        }
        check(CBOR.self)
        check(Int.self)
        check(String.self)
        check([Int].self)
        check([String: Int].self)
        check(Probe.self)
        check([Probe].self)
        check(Data.self)
        // Deterministic mode rejects them too.
        var strict = CBORDecoder()
        strict.deterministic = true
        #expect(throws: DecodingError.self) { try strict.decode(CBOR.self, from: fixture.bytes) }
    }

    @Test("Appendix A fixtures decode", arguments: wellformed.map(\.name))
    func wellformedInput(_ name: String) throws {
        let fixture = try #require(Self.wellformed.first { $0.name == name })
        let item = try CBOR(decoding: fixture.bytes)
        #expect(try CBORDecoder().decode(CBOR.self, from: fixture.bytes) == item)
        // Re-encoding gives an item that decodes to the same value.
        #expect(try CBOR(decoding: item.encoded()) == item)
    }

    @Test func truncationAtEveryLengthIsAnError() throws {
        // Every strict prefix of a well-formed item is malformed.
        let full = try CBOREncoder().encodeBytes(["key": [1, 2, 300, 70000], "other": [5000000000]])
        for length in 0 ..< full.count {
            #expect(throws: DecodingError.self) { try CBOR(decoding: full[..<length]) }
            #expect(throws: DecodingError.self) { try CBORDecoder().decode([String: [Int]].self, from: Array(full[..<length])) }
        }
    }

    @Test func hugeLengthsAreRejectedBeforeAllocating() {
        // 2^63 - 1 elements announced with 1 byte of data: must fail fast, not reserve memory.
        let array = bytes("9b7fffffffffffffff00")
        let start = Date()
        #expect(throws: DecodingError.self) { try CBOR(decoding: array) }
        #expect(throws: DecodingError.self) { try CBORDecoder().decode([Int].self, from: array) }
        #expect(Date().timeIntervalSince(start) < 1)
    }

    @Test func readerSkipsEveryAppendixExample() throws {
        for example in appendixA {
            let raw = bytes(example.hex)
            let end = try raw.withUnsafeBytes { try CBORReader($0).skip(at: 0, depth: 0, maxDepth: 16) }
            #expect(end == raw.count, "\(example.hex)")
        }
    }

    @Test("The iterative validator agrees with the recursive skip on random and mutated input")
    func validatorAgreesWithSkip() throws {
        var rng = SplitMix64(seed: 2024)
        let seeds = (Self.wellformed + Self.malformed).map(\.bytes)
        for i in 0 ..< 20_000 {
            var input: [UInt8]
            if i % 2 == 0, let seed = seeds.randomElement(using: &rng), !seed.isEmpty {
                input = seed
                for _ in 0 ..< 1 + Int(rng.next() % 3) {
                    let at = Int(rng.next() % UInt64(input.count))
                    switch rng.next() % 3 {
                    case 0: input[at] = UInt8(truncatingIfNeeded: rng.next())
                    case 1: input.insert(UInt8(truncatingIfNeeded: rng.next()), at: at)
                    default: input.remove(at: at)
                    }
                    if input.isEmpty { break }
                }
            } else {
                input = (0 ..< Int(rng.next() % 24)).map { _ in UInt8(truncatingIfNeeded: rng.next() % 8 == 0 ? 0xFF : rng.next()) }
            }
            let maxDepth = Int(rng.next() % 6)
            input.withUnsafeBytes { raw in
                let reader = CBORReader(raw)
                let a = Result { () throws(CBORReadError) -> Int in try reader.validate(at: 0, maxDepth: maxDepth) }
                let b = Result { () throws(CBORReadError) -> Int in try reader.skip(at: 0, depth: 0, maxDepth: maxDepth, validatingUTF8: true) }
                switch (a, b) {
                case let (.success(x), .success(y)): #expect(x == y, "\(hexString(input))")
                case (.failure, .failure): break
                default: Issue.record("validate and skip disagree on \(hexString(input)) (maxDepth \(maxDepth)): \(a) vs \(b)")
                }
            }
        }
    }

    @Test func utf8Validation() {
        func valid(_ b: [UInt8]) -> Bool { b.withUnsafeBufferPointer { isValidUTF8($0) } }
        #expect(valid(Array("plain ascii text that is long enough".utf8)))
        #expect(valid(Array("ümlaut, 水, 𐅑, and emoji 🎉".utf8)))
        #expect(!valid([0x80]))
        #expect(!valid([0xC1, 0xBF]))          // overlong
        #expect(!valid([0xE0, 0x9F, 0xBF]))    // overlong 3-byte
        #expect(!valid([0xED, 0xA0, 0x80]))    // surrogate
        #expect(!valid([0xF4, 0x90, 0x80, 0x80])) // above U+10FFFF
        #expect(!valid([0xF5, 0x80, 0x80, 0x80]))
        #expect(!valid([0xE2, 0x82]))          // truncated
        #expect(valid([0xF4, 0x8F, 0xBF, 0xBF])) // U+10FFFF
        #expect(valid([0xED, 0x9F, 0xBF]))     // U+D7FF
        // Agreement with the standard library on random bytes.
        var rng = SplitMix64(seed: 99)
        for _ in 0 ..< 2000 {
            let n = Int(rng.next() % 12)
            var b = (0 ..< n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if rng.next() % 2 == 0 { b = b.map { $0 & 0x7F | ($0 & 0x40 == 0 ? 0x80 : 0) } }
            let expected = String(validating: b, as: UTF8.self) != nil
            #expect(valid(b) == expected, "\(b)")
        }
    }
}
