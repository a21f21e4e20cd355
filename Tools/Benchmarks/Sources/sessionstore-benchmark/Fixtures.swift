import CBORCoding
import Foundation

/// The value every workload stores: two Strings, an Int and an array of Strings
/// (88 bytes as JSON, about 70 as CBOR).
struct Profile: Codable, Sendable, Equatable {
    var name: String
    var email: String
    var visits: Int
    var roles: [String]

    static func sample(_ i: Int) -> Profile {
        Profile(name: "Ada Lovelace", email: "ada@example.com", visits: i, roles: ["admin", "editor"])
    }
}

/// One stored key, in each peer's form.
struct KeySpec: Sendable {
    /// Session id (22 URL-safe characters).
    var session: String
    /// The user key, a String.
    var name: String
    /// The LMDB record key: `session/<sid>/` + the key as a CBOR text string (what SessionStore stores).
    var recordKey: [UInt8]
    /// The SQLite primary key: `session/<sid>/<name>`.
    var sqlKey: String
}

enum Fixtures {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static func sessionID(_ rng: inout SplitMix) -> String {
        String(decoding: (0..<22).map { _ in alphabet[Int(rng.next() % 64)] }, as: UTF8.self)
    }

    /// `sessions` sessions of `perSession` keys each; names are `nameLength` characters.
    static func keys(sessions: Int, perSession: Int, nameLength: Int, seed: UInt64) -> [KeySpec] {
        var rng = SplitMix(seed: seed)
        var result: [KeySpec] = []
        result.reserveCapacity(sessions * perSession)
        for _ in 0..<sessions {
            let sid = sessionID(&rng)
            for _ in 0..<perSession {
                let name = keyName(result.count, length: nameLength)
                result.append(spec(session: sid, name: name))
            }
        }
        return result
    }

    /// A key name of exactly `length` characters ending in the index, e.g. `user.preferences…000042`.
    static func keyName(_ index: Int, length: Int) -> String {
        let digits = String(index)
        let stem = "user.preferences.display.settings.section.entry."
        let body = String(stem.prefix(max(0, length - digits.count - 1)))
        let padded = body + String(repeating: "0", count: max(0, length - body.count - digits.count)) + digits
        return String(padded.suffix(length))
    }

    static func spec(session sid: String, name: String) -> KeySpec {
        var key = Array("session/\(sid)/".utf8)
        CBOR.appendText(name, to: &key)
        return KeySpec(session: sid, name: name, recordKey: key, sqlKey: "session/\(sid)/\(name)")
    }

    static func shuffled(_ count: Int, seed: UInt64) -> [Int] {
        var rng = SplitMix(seed: seed)
        return (0..<count).shuffled(using: &rng)
    }

    // MARK: Record format (what SessionStore writes; see Sources/SessionStore/Store/Record.swift)

    static let recordTag = 21331
    static let formatVersion = 1

    /// The record type name of `Profile`, computed once: a raw LMDB user would write it as a
    /// constant, and `String(reflecting:)` on every put would cost the raw peer about 6,400
    /// instructions that SessionStore (which caches type names) does not pay.
    static let profileTypeName = Array(String(reflecting: Profile.self).utf8)

    /// `21331([1, typeName, value])`, with the value encoded by the library's CBOREncoder.
    static func record<V: Encodable>(_ value: V, encoder: CBOREncoder) throws -> [UInt8] {
        let typeName = V.self == Profile.self ? profileTypeName : Array(String(reflecting: V.self).utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(typeName.count + 96)
        CBOR.appendHead(major: 6, argument: UInt64(recordTag), to: &bytes)
        CBOR.appendHead(major: 4, argument: 3, to: &bytes)
        CBOR.appendHead(major: 0, argument: UInt64(formatVersion), to: &bytes)
        CBOR.appendHead(major: 3, argument: UInt64(typeName.count), to: &bytes)
        bytes.append(contentsOf: typeName)
        try encoder.encode(value, appendingTo: &bytes)
        return bytes
    }

    /// The value part of a record: skips the tag, the array head, the version and the type name.
    @inline(__always)
    static func recordValue(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        var offset = 0
        @inline(__always) func head() -> Int? {
            guard let head = CBOR.head(in: bytes, at: offset), head.argument <= UInt64(Int.max) else { return nil }
            offset = head.next
            return Int(head.argument)
        }
        guard head() == recordTag, head() == 3, head() != nil, let nameLength = head() else { return nil }
        offset += nameLength
        guard offset < bytes.count else { return nil }
        return UnsafeRawBufferPointer(rebasing: bytes[offset...])
    }
}
