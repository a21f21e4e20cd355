// libFuzzer target for the CBOR decoder. Not part of the SwiftPM build: Tools/Fuzz/run.sh
// compiles it together with Sources/CBORCoding/*.swift into one module, with
// -sanitize=fuzzer,address.
//
// Every input is decoded to `CBOR` and to several Decodable shapes, in the default and
// the deterministic mode, and checked by both well-formedness checkers (which must agree). Errors are expected; a crash, a sanitizer report or a failed
// check below is a finding. For inputs that decode to `CBOR`, encoding and decoding
// again must give an equal item, and the deterministic encoding must be stable.

import Foundation

/// A Decodable with optional members of every kind, so most inputs get deep into it.
struct FuzzRecord: Codable {
    var a: Int?
    var b: String?
    var c: [Double]?
    var d: [String: Int]?
    var e: Data?
    var f: Date?
    var g: UUID?
    var h: Decimal?
    var i: [FuzzRecord]?
    var j: [Int: FuzzShape]?
    var k: URL?
    var l: [Int8]?
    var m: Float?
}

enum FuzzShape: Codable {
    case none
    case one(Int)
    case two(String, [UInt16])
}

/// Every decoded Date must be finite and printable (Foundation traps printing a NaN Date).
func checkDates(_ value: Any) {
    if let date = value as? Date {
        guard date.timeIntervalSinceReferenceDate.isFinite else {
            fatalError("decoded a Date of \(date.timeIntervalSinceReferenceDate) seconds")
        }
        _ = date.description
    } else if let record = value as? FuzzRecord {
        if let date = record.f { checkDates(date) }
        record.i?.forEach(checkDates)
    } else if let records = value as? [FuzzRecord] {
        records.forEach(checkDates)
    }
}

@inline(never)
func attempt<T: Decodable>(_ type: T.Type, _ decoder: CBORDecoder, _ buffer: UnsafeRawBufferPointer) {
    do {
        checkDates(try decoder.decode(T.self, from: buffer))
    } catch is DecodingError {
        // Expected for most inputs.
    } catch {
        fatalError("\(T.self): an error that is not a DecodingError: \(error)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDecoder(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let buffer = UnsafeRawBufferPointer(start: data, count: size)

    // The decoder's iterative validator and the recursive skip must agree.
    let reader = CBORReader(buffer)
    let validated = Result { () throws(CBORReadError) -> Int in try reader.validate(at: 0, maxDepth: 40) }
    let skipped = Result { () throws(CBORReadError) -> Int in try reader.skip(at: 0, depth: 0, maxDepth: 40, validatingUTF8: true) }
    switch (validated, skipped) {
    case let (.success(a), .success(b)) where a != b: fatalError("validate ends at \(a), skip at \(b)")
    case (.success, .failure), (.failure, .success): fatalError("validate and skip disagree: \(validated) vs \(skipped)")
    default: break
    }

    // skipChecked (iterative, with and without the recorded container ends) must end where
    // validation does, and every recorded end must be where skipping that container ends.
    if case .success(let end) = validated {
        guard (try? reader.skipChecked(at: 0)) == end else { fatalError("skipChecked does not end at \(end)") }
        var ends = CBORContainerEnds(levels: reader.validationLevels(at: 0, maxDepth: 40))
        defer { ends.deallocate() }
        guard (try? reader.validate(at: 0, maxDepth: 40, recordingIn: &ends)) == end else { fatalError("recording validation does not end at \(end)") }
        let table = ends.table
        for i in 0 ..< table[0] {
            let start = table[1 + 2 * i], recorded = table[2 + 2 * i]
            guard (try? reader.skipChecked(at: start)) == recorded, recorded - start >= CBORContainerEnds.minimumSize else {
                fatalError("recorded end \(recorded) of the container at \(start) is wrong")
            }
        }
        var indexed = reader
        indexed.ends = UnsafePointer(table)
        guard (try? indexed.skipChecked(at: 0)) == end else { fatalError("skipChecked with recorded ends does not end at \(end)") }
    }

    // Input the deterministic check accepts is exactly the deterministic encoding of its item.
    if (try? reader.validateDeterministic(at: 0, maxDepth: 40)) == size {
        guard let item = try? CBOR(decoding: buffer), item.encoded(deterministic: true).elementsEqual(buffer) else {
            fatalError("validateDeterministic accepts input that is not the deterministic encoding of its item")
        }
    }

    if let item = try? CBOR(decoding: buffer) {
        let encoded = item.encoded()
        guard let back = try? CBOR(decoding: encoded), back == item else {
            fatalError("CBOR round trip changed \(item)")
        }
        let canonical = item.encoded(deterministic: true)
        var strict = CBORDecoder()
        strict.deterministic = true
        // Items with duplicate map keys have no valid deterministic form; the rest must re-encode identically.
        if let again = try? strict.decode(CBOR.self, from: canonical) {
            guard again.encoded(deterministic: true) == canonical else {
                fatalError("deterministic encoding is not stable for \(item)")
            }
        }
        _ = item.description
        _ = item.jsonString()
    }

    for deterministic in [false, true] {
        var decoder = CBORDecoder()
        decoder.deterministic = deterministic
        attempt(CBOR.self, decoder, buffer)
        attempt(Int.self, decoder, buffer)
        attempt(UInt8.self, decoder, buffer)
        attempt(Double.self, decoder, buffer)
        attempt(Float.self, decoder, buffer)
        attempt(UInt64.self, decoder, buffer)
        attempt(String.self, decoder, buffer)
        attempt(Data.self, decoder, buffer)
        attempt(Date.self, decoder, buffer)
        attempt(Decimal.self, decoder, buffer)
        attempt([Int].self, decoder, buffer)
        attempt([String: Int].self, decoder, buffer)
        attempt([String: [String]].self, decoder, buffer)
        attempt(FuzzRecord.self, decoder, buffer)
        attempt([FuzzRecord].self, decoder, buffer)
        attempt([UUID: FuzzShape].self, decoder, buffer)
    }
    return 0
}
