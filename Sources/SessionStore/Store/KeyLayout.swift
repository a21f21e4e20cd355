import CBORCoding

/// The byte layout of record keys: `session/<sid>/<key>` and `instance/<sid>/<iid>/<key>`.
///
/// Ids are checked against a URL-safe alphabet without `/`, so an id can never end its
/// own scope's prefix early and reach into another scope's key range: the prefix of
/// session `a` (`session/a/`) is not a prefix of session `ab`'s or `a-b`'s. The user key
/// follows as deterministic CBOR (RFC 8949 §4.2), so equal keys are equal bytes, in every
/// process: map keys and (a rule of this project) a `Set`'s elements are sorted bytewise,
/// and every string of a key is written in Unicode NFC, so two spellings Swift calls
/// equal (`"Caf\u{E9}"`, `"Cafe\u{301}"`) name one record. ASCII keys need no
/// normalization and take a fast path. Values are stored as given.
enum KeyLayout {
    /// The longest id accepted, in bytes.
    static let maxIDLength = 128

    static let sessionRoot = Array("session/".utf8)
    static let instanceRoot = Array("instance/".utf8)

    /// Checks `id` and returns its bytes, or throws `.invalidID` saying which rule failed.
    static func validatedID(_ id: String, kind: String) throws(SessionStoreError) -> [UInt8] {
        let bytes = Array(id.utf8)
        func fail(_ reason: String) -> SessionStoreError {
            let shown = bytes.count > 40 ? String(id.prefix(40)) + "…" : id
            return SessionStoreError(.invalidID, "\(kind) id \(shown.debugDescription) is invalid: \(reason)")
        }
        if bytes.isEmpty { throw fail("it is empty") }
        if bytes.count > maxIDLength { throw fail("it is \(bytes.count) bytes long; the limit is \(maxIDLength)") }
        for byte in bytes where !isAllowed(byte) {
            if byte == UInt8(ascii: "/") { throw fail("it contains '/'") }
            if byte >= 0x80 { throw fail("it contains non-ASCII characters; use [A-Za-z0-9._~-]") }
            throw fail("it contains the character \(String(UnicodeScalar(byte)).debugDescription); use [A-Za-z0-9._~-]")
        }
        if bytes == [0x2E] || containsDotDot(bytes) { throw fail("it is '.' or contains '..'") }
        return bytes
    }

    private static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    private static func containsDotDot(_ bytes: [UInt8]) -> Bool {
        zip(bytes, bytes.dropFirst()).contains { $0 == 0x2E && $1 == 0x2E }
    }

    /// `session/<sid>/`
    static func sessionPrefix(_ sid: [UInt8]) -> [UInt8] {
        sessionRoot + sid + [UInt8(ascii: "/")]
    }

    /// `instance/<sid>/`: the prefix of every instance of one session.
    static func instancesPrefix(_ sid: [UInt8]) -> [UInt8] {
        instanceRoot + sid + [UInt8(ascii: "/")]
    }

    /// `instance/<sid>/<iid>/`
    static func instancePrefix(_ sid: [UInt8], _ iid: [UInt8]) -> [UInt8] {
        instancesPrefix(sid) + iid + [UInt8(ascii: "/")]
    }

    /// Runs `body` with the record key of the text key `name` under `prefix`, built in
    /// temporary memory rather than on the heap; returns nil, without calling `body`, when
    /// the key would exceed `limit` bytes.
    @inline(__always)
    static func withRecordKey<R>(_ prefix: UnsafeRawBufferPointer, text name: String, limit: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R? {
        // Native strings lend their UTF-8 without a copy; others (bridged) are copied once.
        if let result = name.utf8.withContiguousStorageIfAvailable({ utf8 -> R? in
            isASCII(utf8) ? withRecordKey(prefix, utf8: utf8, limit: limit, body) : withNormalizedRecordKey(prefix, text: name, limit: limit, body)
        }) {
            return result
        }
        return withNormalizedRecordKey(prefix, text: name, limit: limit, body)
    }

    /// ``withRecordKey(_:text:limit:_:)`` for a key that may not be in NFC (or not native).
    @inline(never)
    private static func withNormalizedRecordKey<R>(_ prefix: UnsafeRawBufferPointer, text name: String, limit: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R? {
        Array(CBOREncoder.normalizedToNFC(name).utf8).withUnsafeBufferPointer { withRecordKey(prefix, utf8: $0, limit: limit, body) }
    }

    /// Whether every byte is below 0x80, eight at a time.
    @inline(__always)
    static func isASCII(_ utf8: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = utf8.baseAddress else { return true }
        let raw = UnsafeRawPointer(base)
        var bits: UInt64 = 0
        var offset = 0
        while utf8.count &- offset >= 8 {
            bits |= raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            offset &+= 8
        }
        while offset < utf8.count {
            bits |= UInt64(utf8[offset])
            offset &+= 1
        }
        return bits & 0x8080_8080_8080_8080 == 0
    }

    @inline(__always)
    private static func withRecordKey<R>(_ prefix: UnsafeRawBufferPointer, utf8: UnsafeBufferPointer<UInt8>, limit: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R? {
        let count = prefix.count + CBOR.headSize(UInt64(utf8.count)) + utf8.count
        guard count <= limit else { return nil }
        return withUnsafeTemporaryAllocation(byteCount: count + 9, alignment: 8) { buffer in
            let start = buffer.baseAddress!
            start.copyMemory(from: prefix.baseAddress!, byteCount: prefix.count)
            let head = CBOR.writeHead(major: 3, argument: UInt64(utf8.count), to: start + prefix.count)
            if utf8.count > 0 {
                (start + prefix.count + head).copyMemory(from: utf8.baseAddress!, byteCount: utf8.count)
            }
            return body(UnsafeRawBufferPointer(start: start, count: count))
        }
    }

    /// The full record key: `prefix` followed by `key` in deterministic CBOR.
    ///
    /// - Throws: `.encodingFailed` when the key does not encode, `.keyTooLong` when the
    ///   result exceeds `limit` bytes.
    static func recordKey<K: Encodable>(_ prefix: [UInt8], _ key: K, limit: Int) throws(SessionStoreError) -> [UInt8] {
        var bytes: [UInt8]
        // A type comparison instead of `as? String`: a dynamic cast costs more than the
        // rest of building the key.
        if K.self == String.self {
            let name = CBOREncoder.normalizedToNFC(unsafeBitCast(key, to: String.self))
            bytes = []
            bytes.reserveCapacity(prefix.count + name.utf8.count + 9)
            bytes.append(contentsOf: prefix)
            CBOR.appendText(name, to: &bytes)
        } else {
            bytes = prefix
            do {
                var encoder = CBOREncoder()
                encoder.deterministic = true
                encoder.normalizesStringsToNFC = true
                try encoder.encode(key, appendingTo: &bytes)
            } catch {
                throw SessionStoreError(.encodingFailed, "key \(String(describing: key)) does not encode: \(error)")
            }
        }
        if bytes.count > limit {
            throw SessionStoreError(.keyTooLong, "key \(String(describing: key).prefix(60).debugDescription) makes a record key of \(bytes.count) bytes with its scope prefix; LMDB's limit is \(limit) bytes")
        }
        return bytes
    }
}
