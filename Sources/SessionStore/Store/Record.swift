import CBORCoding

/// A stored record: one CBOR data item, `21331([version, typeName, value])`.
///
/// Tag 21331 (0x5353, "SS") marks a SessionStore record; inside is an array of the
/// record format version (an unsigned integer), the Swift type name of the value (text,
/// from ``TypeName``, for type checks and the dump tool) and the value itself.
/// Any CBOR decoder reads the whole record; unknown tags are allowed by RFC 8949.
enum Record {
    static let tag = 21331
    /// The record format this version writes and the newest it reads.
    static let formatVersion = 1

    /// Encodes `value` as a record.
    static func encode<V: Encodable>(_ value: V, encoder: CBOREncoder) throws(SessionStoreError) -> [UInt8] {
        let typeName = TypeName.bytes(of: V.self)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(typeName.count + 32)
        CBOR.appendHead(major: 6, argument: UInt64(tag), to: &bytes)
        CBOR.appendHead(major: 4, argument: 3, to: &bytes)
        CBOR.appendHead(major: 0, argument: UInt64(formatVersion), to: &bytes)
        CBOR.appendHead(major: 3, argument: UInt64(typeName.count), to: &bytes)
        bytes.append(contentsOf: typeName)
        do {
            try encoder.encode(value, appendingTo: &bytes)
        } catch {
            throw SessionStoreError(.encodingFailed, "a value of type \(V.self) does not encode: \(error)")
        }
        return bytes
    }

    /// The parts of a stored record, pointing into the record's bytes.
    struct Parts {
        var typeName: UnsafeRawBufferPointer
        var value: UnsafeRawBufferPointer

        var typeNameString: String { String(decoding: typeName, as: UTF8.self) }
    }

    /// Splits a record into its header fields and value bytes.
    ///
    /// - Throws: `.corruptedRecord` when the bytes are not a record, `.newerFormat` when
    ///   the version is newer than ``formatVersion``.
    static func parse(_ bytes: UnsafeRawBufferPointer, key: @autoclosure () -> String) throws(SessionStoreError) -> Parts {
        var offset = 0
        func head() -> (major: UInt8, argument: Int)? {
            guard let head = CBOR.head(in: bytes, at: offset), head.argument <= UInt64(Int.max) else { return nil }
            offset = head.next
            return (head.major, Int(head.argument))
        }
        func corrupted(_ what: String) -> SessionStoreError {
            SessionStoreError(.corruptedRecord, "the record under key \(key()) is not a SessionStore record: \(what)")
        }
        guard let tagHead = head(), tagHead.major == 6, tagHead.argument == tag else { throw corrupted("missing tag \(tag)") }
        guard let arrayHead = head(), arrayHead.major == 4, arrayHead.argument == 3 else { throw corrupted("expected an array of 3 items") }
        guard let versionHead = head(), versionHead.major == 0 else { throw corrupted("missing format version") }
        if versionHead.argument > formatVersion {
            throw SessionStoreError(.newerFormat, "the record under key \(key()) has format version \(versionHead.argument); this SessionStore reads up to \(formatVersion). Upgrade SessionStore to read it")
        }
        guard let nameHead = head(), nameHead.major == 3, nameHead.argument <= bytes.count - offset else {
            throw corrupted("missing type name")
        }
        let name = UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + nameHead.argument])
        offset += nameHead.argument
        guard offset < bytes.count else { throw corrupted("missing value") }
        return Parts(typeName: name,
                     value: UnsafeRawBufferPointer(rebasing: bytes[offset...]))
    }

    /// Decodes a record as a `V`.
    ///
    /// - Throws: `.typeMismatch` naming the key and both types when the record holds
    ///   another type; `.corruptedRecord` when it does not decode.
    static func decode<V: Decodable>(_ type: V.Type, from bytes: UnsafeRawBufferPointer, key: @autoclosure () -> String,
                                     decoder: CBORDecoder) throws(SessionStoreError) -> V {
        let parts = try parse(bytes, key: key())
        let expected = TypeName.bytes(of: V.self)
        guard TypeName.matches(parts.typeName, expected) else {
            throw SessionStoreError(.typeMismatch, "key \(key()) holds a value of type \(parts.typeNameString), not \(String(decoding: expected, as: UTF8.self))")
        }
        do {
            return try decoder.decode(V.self, from: parts.value)
        } catch {
            throw SessionStoreError(.corruptedRecord, "the value under key \(key()) (type \(parts.typeNameString)) does not decode: \(error)")
        }
    }
}

/// Type names as stored in records, computed once per type.
///
/// The name is `String(reflecting:)` with every `(unknown context at $…).` part removed:
/// Swift names private and local types after the address of their context, which moves
/// from one run (and build) to the next, so a value saved by one process would not load in
/// the next. Without it, `Module.(unknown context at $55d0…).Draft` is stored as
/// `Module.Draft`. Two private types of one module with the same name (in different files
/// or functions) therefore share a stored name; the name is a sanity check and a label for
/// tools, not a proof of identity, and the value must still decode.
enum TypeName {
    private static let cache = Lock<[ObjectIdentifier: [UInt8]]>([:])

    /// The UTF-8 bytes of the stable name of `type`.
    static func bytes(of type: Any.Type) -> [UInt8] {
        let id = ObjectIdentifier(type)
        if let known = cache.withLock({ $0[id] }) { return known }
        let name = stable(Array(String(reflecting: type).utf8))
        cache.withLock { $0[id] = name }
        return name
    }

    /// Whether the stored name `stored` names the type whose stable name is `expected`.
    ///
    /// Records written before names were made stable may hold an address; they match
    /// once it is removed.
    static func matches(_ stored: UnsafeRawBufferPointer, _ expected: [UInt8]) -> Bool {
        let equal = stored.count == expected.count && expected.withUnsafeBytes { name in
            name.count == 0 || memcmp(stored.baseAddress!, name.baseAddress!, name.count) == 0
        }
        if equal { return true }
        guard stored.count > expected.count, stored.firstRange(of: unknownContext) != nil else { return false }
        return stable(Array(stored)) == expected
    }

    private static let unknownContext = Array("(unknown context at $".utf8)

    /// `name` without its `(unknown context at $<hex>).` parts.
    static func stable(_ name: [UInt8]) -> [UInt8] {
        guard name.firstRange(of: unknownContext) != nil else { return name }
        var result: [UInt8] = []
        result.reserveCapacity(name.count)
        var index = 0
        while index < name.count {
            if name[index...].starts(with: unknownContext),
               let close = name[index...].firstIndex(of: UInt8(ascii: ")")) {
                index = close + 1
                // The separator after the context goes with it.
                if index < name.count, name[index] == UInt8(ascii: ".") { index += 1 }
                continue
            }
            result.append(name[index])
            index += 1
        }
        return result
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
