import Foundation

/// Decodes `Decodable` values from CBOR (RFC 8949), shaped like `JSONDecoder`.
///
/// Accepts every well-formed encoding: integers of any width (checked against the
/// target type's range, bignums included), half, single and double floats,
/// indefinite-length strings, arrays and maps, and tags it does not know (skipped,
/// the inner value decoded). The input must hold exactly one data item; trailing
/// bytes are an error. It reads the mapping ``CBOREncoder`` writes, and also:
///
/// - `Double` and `Float` from any float width, and from an integer (-2^64 ... 2^64-1)
///   that the type holds exactly; `Float` from a double when it is within `Float`'s
///   range (rounded); integers from a float holding an exact whole value.
/// - `Date` from tag 1, tag 1001 (keys 1, 4, 5 and -3/-6/-9), tag 0 (RFC 3339 text)
///   or an untagged number of epoch seconds (bignums included); a date that comes out
///   NaN or infinite is an error.
/// - `UUID` from tag 37, a 16-byte byte string or a UUID text string; `URL` from
///   tag 32 or a text string; `Decimal` from tag 4, an integer, a bignum or a float
///   (a float NaN gives `Decimal.nan`; other floats are converted, so may round).
/// - Keyed containers match a text key to `CodingKey.stringValue`, and an integer
///   key to `CodingKey.intValue`.
///
/// Hostile input throws `DecodingError` (never traps, never allocates more than the
/// input justifies): the whole item is checked before decoding for well-formedness
/// (truncation, lengths longer than the input, reserved values, misplaced breaks,
/// bad chunks in indefinite-length strings), nesting deeper than ``maxDepth``, and
/// UTF-8 in every text string, used or not. Each error has the coding path and a
/// debug description that names the problem and its byte offset.
///
/// Keyed lookups scan the map from where the last match ended, so decoding the
/// keys in the order they were written costs one key comparison each. In the
/// default mode a map with duplicate keys decodes one of its entries; set
/// ``deterministic`` to reject it. Decoding time is linear in the input: for
/// inputs of 512 bytes or more the validation pass records where the larger
/// arrays and maps end, so a value that is not decoded (an unknown key, the rest
/// of a map after a missing key) is skipped in one step, however deep it is.
public struct CBORDecoder: Sendable {
    /// The default ``maxDepth``: 100, derived from the stack a decode may have.
    ///
    /// Decoding a recursive `Codable` type recurses on the call stack once per level
    /// (through its `init(from:)`). Measured with Swift 6.3 on x86_64 Linux, one level of
    /// `final class Node: Codable { var a: Node? }` takes about 1.1 KB of stack in a
    /// release build and 2.2 KB in a debug build (a level of an array of such structs,
    /// or of an enum with an associated value, less per CBOR level). The smallest stack
    /// a decode may run on is a Swift concurrency or NIO thread's, 512 KiB: 100 levels
    /// keep such types within half of it in a debug build, a quarter in release,
    /// leaving the rest to the caller's frames and to types whose `init(from:)` frames
    /// are larger. Validation, skipping and ``CBOR`` values do not recurse.
    public static let defaultMaxDepth = 100

    /// Accept only the core deterministic encoding (RFC 8949 §4.2.1). Default `false`.
    ///
    /// When set, input is rejected with `DecodingError.dataCorrupted` if it has a
    /// duplicate map key, map keys out of bytewise order, a head longer than needed,
    /// an indefinite length, or a float that a shorter width would hold exactly.
    public var deterministic: Bool = false

    /// The deepest nesting of arrays, maps and tags accepted (default 100, see ``defaultMaxDepth``).
    ///
    /// An item inside `maxDepth` enclosing arrays, maps or tags is accepted; one
    /// deeper throws `DecodingError.dataCorrupted` ("nesting … is deeper than the
    /// limit"), checked before anything is decoded. Decoding a recursive type recurses
    /// once per level, so raise the limit only where the decoding threads have the
    /// stack for it (about 1.1 KB a level in release builds, 2.2 KB in debug builds,
    /// plus the type's own `init(from:)` frame).
    public var maxDepth: Int = CBORDecoder.defaultMaxDepth

    /// Values passed to `init(from:)` implementations through `Decoder.userInfo`.
    public var userInfo: [CodingUserInfoKey: any Sendable] = [:]

    /// Creates a decoder that accepts any well-formed CBOR.
    public init() {}

    /// Decodes a value of type `T` from exactly one CBOR data item.
    public func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        try data.withUnsafeBytes { try decode(type, from: $0) }
    }

    /// Decodes a value of type `T` from exactly one CBOR data item.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try bytes.withUnsafeBytes { try decode(type, from: $0) }
    }

    /// Decodes from memory the caller owns for the call's duration (such as an mmap'd LMDB value), without copying it first.
    ///
    /// The decoded value never refers to `buffer` after the call returns.
    public func decode<T: Decodable>(_ type: T.Type, from buffer: UnsafeRawBufferPointer) throws -> T {
        try decode(type, reader: CBORReader(buffer))
    }

    #if DEBUG
    /// Decodes like ``decode(_:from:)-([UInt8])`` and adds the number of CBOR heads read (validation
    /// included) to `headsRead`: the tests' measure of decoding work.
    func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], headsRead: inout Int) throws -> T {
        try bytes.withUnsafeBytes { buffer in
            try withUnsafeMutablePointer(to: &headsRead) { counter in
                var reader = CBORReader(buffer)
                reader.headsRead = counter
                return try decode(type, reader: reader)
            }
        }
    }
    #endif

    private func decode<T: Decodable>(_ type: T.Type, reader: CBORReader) throws -> T {
        guard reader.count >= CBORContainerEnds.minimumInputSize else {
            try validate(reader) { () throws(CBORReadError) in
                deterministic
                    ? try reader.validateDeterministic(at: 0, maxDepth: maxDepth)
                    : try reader.validate(at: 0, maxDepth: maxDepth)
            }
            return try _CBORDecoder.make(reader: reader, userInfo: userInfo).decodeValue(T.self, at: 0, key: _CBORIndexKey(0), push: false)
        }
        // Larger input: record where its larger arrays and maps end, so skipping stays linear.
        var ends = CBORContainerEnds(levels: reader.validationLevels(at: 0, maxDepth: maxDepth))
        defer { ends.deallocate() }
        try validate(reader) { () throws(CBORReadError) in
            if deterministic { _ = try reader.validateDeterministic(at: 0, maxDepth: maxDepth) }
            return try reader.validate(at: 0, maxDepth: maxDepth, recordingIn: &ends)
        }
        var indexed = reader
        indexed.ends = UnsafePointer(ends.table)
        return try _CBORDecoder.make(reader: indexed, userInfo: userInfo).decodeValue(T.self, at: 0, key: _CBORIndexKey(0), push: false)
    }

    /// Runs `check` (which returns where the item ends) and throws its error, or one for trailing bytes, as a `DecodingError`.
    @inline(__always)
    private func validate(_ reader: CBORReader, _ check: () throws(CBORReadError) -> Int) throws {
        let end: Int
        do throws(CBORReadError) {
            end = try check()
        } catch {
            throw DecodingError.dataCorrupted(DecodingError.Context(codingPath: [], debugDescription: error.description))
        }
        guard end == reader.count else {
            throw DecodingError.dataCorrupted(DecodingError.Context(codingPath: [], debugDescription: "trailing bytes: the data item ends at byte offset \(end) but the input has \(reader.count) bytes"))
        }
    }
}

/// A one-byte CBOR `null`, the value `superDecoder()` reads when the key is missing.
nonisolated(unsafe) let cborNullItem: UnsafeRawBufferPointer = {
    let p = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
    p[0] = 0xF6
    return UnsafeRawBufferPointer(p)
}()

/// Where the last key lookup in a map ended, so in-order lookups cost one key comparison.
struct _CBORMapCursor {
    var mapStart: Int
    /// The next entry's key, or (when `pendingValue`) the value of the last match, not yet skipped.
    var position: Int
    /// The index of the entry at `position` (of the next entry when `pendingValue`).
    var index: Int
    var pendingValue: Bool
}

/// The mutable state of one decode call, kept in the decoder object's header and
/// reached through a pointer, so hot paths pay no dynamic exclusivity checks
/// (class stored properties would).
struct _CBORDecoderState {
    static let cursorCapacity = 32
    let reader: CBORReader
    let sendableUserInfo: [CodingUserInfoKey: any Sendable]
    var path: [any CodingKey] = []
    /// Offset of the value whose `init(from:)` is running.
    var offset = 0
    /// How many of the map cursors (the object's tail elements, by coding-path depth) are initialized.
    var cursorsInitialized = 0
}

/// The `Decoder` behind ``CBORDecoder``: one object per top-level call, reused for every nested value.
///
/// The state and the map cursors live in the object itself (one allocation).
final class _CBORDecoder: ManagedBuffer<_CBORDecoderState, _CBORMapCursor>, Decoder {
    static func make(reader: CBORReader, userInfo: [CodingUserInfoKey: any Sendable]) -> _CBORDecoder {
        let object = _CBORDecoder.create(minimumCapacity: _CBORDecoderState.cursorCapacity) { _ in
            _CBORDecoderState(reader: reader, sendableUserInfo: userInfo)
        }
        return unsafeDowncast(object, to: _CBORDecoder.self)
    }

    /// The state; valid as long as the object lives.
    @inline(__always)
    var s: UnsafeMutablePointer<_CBORDecoderState> { withUnsafeMutablePointerToHeader { $0 } }

    @inline(__always)
    var cursors: UnsafeMutablePointer<_CBORMapCursor> { withUnsafeMutablePointerToElements { $0 } }

    @inline(__always)
    var reader: CBORReader { s.pointee.reader }

    var sendableUserInfo: [CodingUserInfoKey: any Sendable] { s.pointee.sendableUserInfo }

    var codingPath: [any CodingKey] { s.pointee.path }

    /// The user info, upcast to the type `Decoder` requires.
    var userInfo: [CodingUserInfoKey: Any] { s.pointee.sendableUserInfo }

    /// The `DecodingError` for `error`, at the current path plus `key`, for a requested `type`.
    func fail<K: CodingKey>(_ error: CBORReadError, _ key: K, _ push: Bool, _ type: Any.Type) -> DecodingError {
        var path = s.pointee.path
        if push { path.append(key) }
        return error.decodingError(path, requested: type)
    }

    // MARK: Values

    /// Decodes a `T` from the item at `offset`; `key` is its coding path entry.
    @inline(__always)
    func decodeValue<T: Decodable, K: CodingKey>(_ type: T.Type, at offset: Int, key: K, push: Bool) throws -> T {
        var end = -1
        return try decodeValue(type, at: offset, end: &end, key: key, push: push)
    }

    /// Decodes a `T` from the item at `offset`; `end` becomes the offset after it, or -1 when the
    /// type decoded itself (through `init(from:)`) and the end is not known.
    ///
    /// Recursive types come back here once per level: the scalar fast paths are a separate
    /// function so that their temporaries are not part of every level's stack frame.
    @inline(__always)
    func decodeValue<T: Decodable, K: CodingKey>(_ type: T.Type, at offset: Int, end: inout Int, key: K, push: Bool) throws -> T {
        if T.self == String.self || T.self == Int.self || T.self == Double.self || T.self == Bool.self {
            return try decodeScalar(type, at: offset, end: &end, key: key, push: push)
        }
        return try decodeValueSlow(type, at: offset, end: &end, key: key, push: push)
    }

    /// Decodes a `String`, `Int`, `Double` or `Bool` (the caller has checked that `T` is one).
    @inline(__always)
    func decodeScalar<T: Decodable, K: CodingKey>(_ type: T.Type, at offset: Int, end: inout Int, key: K, push: Bool) throws -> T {
        do throws(CBORReadError) {
            if T.self == String.self { return unsafeBitCast(try reader.readString(at: offset, end: &end), to: T.self) }
            if T.self == Int.self { return unsafeBitCast(try reader.readInt(Int.self, at: offset, end: &end), to: T.self) }
            if T.self == Double.self { return unsafeBitCast(try reader.readDouble(at: offset, end: &end), to: T.self) }
            return unsafeBitCast(try reader.readBool(at: offset, end: &end), to: T.self)
        } catch {
            throw fail(error, key, push, T.self)
        }
    }

    /// Decodes a `T` for a container whose coding path is `containerPath` (nil when it is the
    /// decoder's current path), like ``decodeValue(_:at:end:key:push:)``.
    @inline(__always)
    func decodeNested<T: Decodable, K: CodingKey>(_ type: T.Type, at offset: Int, end: inout Int, key: K, push: Bool, containerPath: [any CodingKey]?) throws -> T {
        // Normally the decoder's path already is the container's path.
        if let containerPath, containerPath.count != s.pointee.path.count {
            return try decodeNested(type, at: offset, end: &end, key: key, push: push, settingPath: containerPath)
        }
        // decodeValue(_:at:end:key:push:) written out: one frame less per level in debug builds.
        if T.self == String.self || T.self == Int.self || T.self == Double.self || T.self == Bool.self {
            return try decodeScalar(type, at: offset, end: &end, key: key, push: push)
        }
        return try decodeValueSlow(type, at: offset, end: &end, key: key, push: push)
    }

    /// Sets the decoder's path to `path` for the decode, then restores it.
    @inline(never)
    func decodeNested<T: Decodable, K: CodingKey>(_ type: T.Type, at offset: Int, end: inout Int, key: K, push: Bool, settingPath path: [any CodingKey]) throws -> T {
        let saved = s.pointee.path
        s.pointee.path = path
        defer { s.pointee.path = saved }
        return try decodeValue(type, at: offset, end: &end, key: key, push: push)
    }

    /// Decodes a `T` at `offset` and stores the offset after the item in `end`.
    @inline(__always)
    func decodeElement<T: Decodable, K: CodingKey>(_ type: T.Type, at offset: Int, end: inout Int, key: K, containerPath: [any CodingKey]) throws -> T {
        end = -1
        let value = try decodeNested(type, at: offset, end: &end, key: key, push: true, containerPath: containerPath)
        if end < 0 { end = try skipElement(at: offset, key: key, type) }
        return value
    }

    /// The end of the element at `offset`, whose `init(from:)` did not report it.
    @inline(never)
    func skipElement<K: CodingKey>(at offset: Int, key: K, _ type: Any.Type) throws -> Int {
        do throws(CBORReadError) {
            return try reader.skipChecked(at: offset)
        } catch {
            throw fail(error, key, true, type)
        }
    }

    /// Decodes a type without a fast path: one with a CBOR form of its own, or through `init(from:)`.
    ///
    /// Every level of a recursive type passes through here, so this frame is kept small: the
    /// known types are read out of line.
    func decodeValueSlow<T: Decodable, K: CodingKey>(_ type: T.Type, at offset: Int, end: inout Int, key: K, push: Bool) throws -> T {
        if let kind = _CBORKnownType.of(T.self) { return try decodeKnown(type, kind, at: offset, end: &end, key: key, push: push) }
        end = -1
        let st = s
        let savedOffset = st.pointee.offset
        let savedCount = st.pointee.path.count
        if push { st.pointee.path.append(key) }
        st.pointee.offset = offset
        defer {
            st.pointee.offset = savedOffset
            if st.pointee.path.count > savedCount { st.pointee.path.removeLast(st.pointee.path.count &- savedCount) }
        }
        return try T(from: self)
    }

    /// Reads a `T` that has a CBOR form of its own, of the `kind` that ``_CBORKnownType/of(_:)`` gave for `T`.
    ///
    /// Out of line: every level of a recursive type passes through ``decodeValueSlow(_:at:end:key:push:)``,
    /// whose frame would otherwise hold the temporaries of all these readers.
    @inline(never)
    func decodeKnown<T: Decodable, K: CodingKey>(_ type: T.Type, _ kind: _CBORKnownType, at offset: Int, end: inout Int, key: K, push: Bool) throws -> T {
        let t: Any.Type = T.self
        let r = reader
        var failedIndex = -1
        do throws(CBORReadError) {
            switch kind {
            case .int64: return unsafeBitCast(try r.readInt(Int64.self, at: offset, end: &end), to: T.self)
            case .uint64: return unsafeBitCast(try r.readUInt(UInt64.self, at: offset, end: &end), to: T.self)
            case .float: return unsafeBitCast(try r.readFloat(at: offset, end: &end), to: T.self)
            case .int32: return unsafeBitCast(try r.readInt(Int32.self, at: offset, end: &end), to: T.self)
            case .uint32: return unsafeBitCast(try r.readUInt(UInt32.self, at: offset, end: &end), to: T.self)
            case .int16: return unsafeBitCast(try r.readInt(Int16.self, at: offset, end: &end), to: T.self)
            case .uint16: return unsafeBitCast(try r.readUInt(UInt16.self, at: offset, end: &end), to: T.self)
            case .int8: return unsafeBitCast(try r.readInt(Int8.self, at: offset, end: &end), to: T.self)
            case .uint8: return unsafeBitCast(try r.readUInt(UInt8.self, at: offset, end: &end), to: T.self)
            case .uint: return unsafeBitCast(try r.readUInt(UInt.self, at: offset, end: &end), to: T.self)
            case .data: return unsafeBitCast(try r.readData(at: offset, end: &end), to: T.self)
            case .date: return unsafeBitCast(try r.readDate(at: offset, end: &end), to: T.self)
            case .url: return unsafeBitCast(try r.readURL(at: offset, end: &end), to: T.self)
            case .uuid: return unsafeBitCast(try r.readUUID(at: offset, end: &end), to: T.self)
            case .decimal: return unsafeBitCast(try r.readDecimal(at: offset, end: &end), to: T.self)
            case .cbor:
                let (item, e) = try CBOR.parse(r, at: offset, maxDepth: Int.max)
                end = e
                return unsafeBitCast(item, to: T.self)
            case .intArray:
                return unsafeBitCast(try r.readArray(t, at: offset, end: &end, failedIndex: &failedIndex) { (p, e) throws(CBORReadError) in try r.readInt(Int.self, at: p, end: &e) }, to: T.self)
            case .stringArray:
                return unsafeBitCast(try r.readArray(t, at: offset, end: &end, failedIndex: &failedIndex) { (p, e) throws(CBORReadError) in try r.readString(at: p, end: &e) }, to: T.self)
            case .doubleArray:
                return unsafeBitCast(try r.readArray(t, at: offset, end: &end, failedIndex: &failedIndex) { (p, e) throws(CBORReadError) in try r.readDouble(at: p, end: &e) }, to: T.self)
            case .boolArray:
                return unsafeBitCast(try r.readArray(t, at: offset, end: &end, failedIndex: &failedIndex) { (p, e) throws(CBORReadError) in try r.readBool(at: p, end: &e) }, to: T.self)
            case .uint8Array:
                return unsafeBitCast(try r.readArray(t, at: offset, end: &end, failedIndex: &failedIndex) { (p, e) throws(CBORReadError) in try r.readUInt(UInt8.self, at: p, end: &e) }, to: T.self)
            case .int64Array:
                return unsafeBitCast(try r.readArray(t, at: offset, end: &end, failedIndex: &failedIndex) { (p, e) throws(CBORReadError) in try r.readInt(Int64.self, at: p, end: &e) }, to: T.self)
            case .uint64Array:
                return unsafeBitCast(try r.readArray(t, at: offset, end: &end, failedIndex: &failedIndex) { (p, e) throws(CBORReadError) in try r.readUInt(UInt64.self, at: p, end: &e) }, to: T.self)
            case .floatArray:
                return unsafeBitCast(try r.readArray(t, at: offset, end: &end, failedIndex: &failedIndex) { (p, e) throws(CBORReadError) in try r.readFloat(at: p, end: &e) }, to: T.self)
            case .stringToString:
                return unsafeBitCast(try r.readStringKeyedMap(t, at: offset, end: &end, failedIndex: &failedIndex) { (p, e) throws(CBORReadError) in try r.readString(at: p, end: &e) }, to: T.self)
            case .stringToInt:
                return unsafeBitCast(try r.readStringKeyedMap(t, at: offset, end: &end, failedIndex: &failedIndex) { (p, e) throws(CBORReadError) in try r.readInt(Int.self, at: p, end: &e) }, to: T.self)
            case .stringToBool:
                return unsafeBitCast(try r.readStringKeyedMap(t, at: offset, end: &end, failedIndex: &failedIndex) { (p, e) throws(CBORReadError) in try r.readBool(at: p, end: &e) }, to: T.self)
            case .stringToDouble:
                return unsafeBitCast(try r.readStringKeyedMap(t, at: offset, end: &end, failedIndex: &failedIndex) { (p, e) throws(CBORReadError) in try r.readDouble(at: p, end: &e) }, to: T.self)
            }
        } catch {
            var e = error
            if e.type == Any.self { e.type = T.self }
            var path = s.pointee.path
            if push { path.append(key) }
            if failedIndex >= 0 { path.append(_CBORIndexKey(failedIndex)) }
            throw e.decodingError(path)
        }
    }

    // MARK: Decoder

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(try makeKeyed(Key.self, at: s.pointee.offset, codingPath: nil))
    }

    /// The first `depth` entries of the current coding path.
    func pathPrefix(_ depth: Int) -> [any CodingKey] {
        let path = s.pointee.path
        return depth >= path.count ? path : Array(path.prefix(depth))
    }

    /// A keyed container over the map at `offset`; `codingPath` is nil when it is the
    /// decoder's current path (the container of the value being decoded).
    func makeKeyed<Key: CodingKey>(_ type: Key.Type, at offset: Int, codingPath: [any CodingKey]?) throws -> _CBORKeyedDecodingContainer<Key> {
        do throws(CBORReadError) {
            let (h, _) = try reader.untaggedHead(at: offset)
            guard h.major == 5 else {
                throw reader.mismatch([String: Any].self, at: offset, expected: "a map")
            }
            var count: Int
            if h.isIndefinite {
                count = 0
                var p = h.next
                while p < reader.count && reader.byte(p) != 0xFF {
                    p = try reader.skipChecked(at: p)
                    p = try reader.skipChecked(at: p)
                    count &+= 1
                }
            } else {
                count = Int(truncatingIfNeeded: h.argument)
            }
            return _CBORKeyedDecodingContainer(decoder: self, mapStart: h.next, count: count, depth: codingPath?.count ?? s.pointee.path.count, nestedPath: codingPath)
        } catch {
            throw error.decodingError(codingPath ?? s.pointee.path)
        }
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try makeUnkeyed(at: s.pointee.offset, codingPath: s.pointee.path)
    }

    func makeUnkeyed(at offset: Int, codingPath: [any CodingKey]) throws -> _CBORUnkeyedDecodingContainer {
        do throws(CBORReadError) {
            let (count, first, _) = try reader.arrayHead([Any].self, at: offset)
            return _CBORUnkeyedDecodingContainer(decoder: self, position: first, count: count, codingPath: codingPath)
        } catch {
            throw error.decodingError(codingPath)
        }
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        _CBORSingleValueDecodingContainer(decoder: self, offset: s.pointee.offset, codingPath: s.pointee.path)
    }

    // MARK: Keyed lookup

    /// Finds the value offset of the entry whose key is `utf8` (text) or `int`, or nil.
    ///
    /// Scans from where the last match in this map ended (the cursor for `slot`),
    /// wrapping around once, so keys read in the order they were written cost one
    /// comparison each.
    func findEntry(mapStart: Int, count: Int, slot: Int, utf8: UnsafeBufferPointer<UInt8>, int: Int?) throws(CBORReadError) -> Int? {
        guard count > 0 else { return nil }
        var position = mapStart
        var index = 0
        let st = s
        let useCursor = slot < _CBORDecoderState.cursorCapacity
        if useCursor {
            while st.pointee.cursorsInitialized <= slot {
                (cursors + st.pointee.cursorsInitialized).initialize(to: _CBORMapCursor(mapStart: -1, position: 0, index: 0, pendingValue: false))
                st.pointee.cursorsInitialized &+= 1
            }
            let c = cursors[slot]
            if c.mapStart == mapStart {
                position = c.pendingValue ? try reader.skipChecked(at: c.position) : c.position
                index = c.index
            }
        }
        let r = reader
        var scanned = 0
        while scanned < count {
            if index >= count {
                index = 0
                position = mapStart
            }
            let keyHead = try r.head(at: position)
            var matched = false
            let valueStart: Int
            if keyHead.major == 3 && !keyHead.isIndefinite {
                let end = try r.stringEnd(keyHead, at: position)
                let length = end &- keyHead.next
                if length == utf8.count {
                    matched = length == 0 || bytesEqual(r.base.unsafelyUnwrapped + keyHead.next, UnsafeRawPointer(utf8.baseAddress.unsafelyUnwrapped), length)
                }
                valueStart = end
            } else if keyHead.major == 0 || keyHead.major == 1 {
                if let int {
                    matched = keyHead.major == 0 ? (int >= 0 && UInt64(int) == keyHead.argument)
                                                 : (int < 0 && UInt64(~int) == keyHead.argument)
                }
                valueStart = keyHead.next
            } else if keyHead.major == 3 {
                let (text, end) = try r.readText(keyHead, at: position)
                matched = text.utf8.elementsEqual(utf8)
                valueStart = end
            } else {
                valueStart = try r.skipChecked(at: position)
            }
            index &+= 1
            scanned &+= 1
            if matched {
                // The value is skipped lazily: the caller may report where it ends.
                if useCursor { cursors[slot] = _CBORMapCursor(mapStart: mapStart, position: valueStart, index: index, pendingValue: true) }
                return valueStart
            }
            position = try r.skipChecked(at: valueStart)
        }
        return nil
    }

    /// Records that the value at `valueStart`, just found in the map at `mapStart`, ends at `end`.
    @inline(__always)
    func valueEnded(slot: Int, mapStart: Int, valueStart: Int, end: Int) {
        guard slot < s.pointee.cursorsInitialized else { return }
        let c = cursors + slot
        if c.pointee.mapStart == mapStart && c.pointee.pendingValue && c.pointee.position == valueStart {
            c.pointee.position = end
            c.pointee.pendingValue = false
        }
    }

    /// Finds the value offset for a key given as text and optional integer.
    @inline(__always)
    func findEntry(mapStart: Int, count: Int, slot: Int, string: String, int: Int?) throws(CBORReadError) -> Int? {
        var string = string
        var result: Int? = nil
        var failure: CBORReadError? = nil
        string.withUTF8 { utf8 in
            do throws(CBORReadError) {
                result = try findEntry(mapStart: mapStart, count: count, slot: slot, utf8: utf8, int: int)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        return result
    }
}

/// Whether `length` bytes at `a` and `b` are equal (short keys compared in registers).
@inline(__always)
func bytesEqual(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ length: Int) -> Bool {
    var i = 0
    while length &- i >= 8 {
        if a.loadUnaligned(fromByteOffset: i, as: UInt64.self) != b.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
        i &+= 8
    }
    while i < length {
        if a.load(fromByteOffset: i, as: UInt8.self) != b.load(fromByteOffset: i, as: UInt8.self) { return false }
        i &+= 1
    }
    return true
}

/// A single-value container positioned at one item.
struct _CBORSingleValueDecodingContainer: SingleValueDecodingContainer {
    let decoder: _CBORDecoder
    let offset: Int
    let codingPath: [any CodingKey]

    @inline(__always)
    private func read<T>(_ type: T.Type, _ body: (CBORReader, Int, inout Int) throws(CBORReadError) -> T) throws -> T {
        var end = 0
        do throws(CBORReadError) {
            return try body(decoder.reader, offset, &end)
        } catch {
            throw error.decodingError(codingPath, requested: T.self)
        }
    }

    func decodeNil() -> Bool { decoder.reader.isNil(at: offset) }
    func decode(_ type: Bool.Type) throws -> Bool { try read(Bool.self) { (r, o, e) throws(CBORReadError) in try r.readBool(at: o, end: &e) } }
    func decode(_ type: String.Type) throws -> String { try read(String.self) { (r, o, e) throws(CBORReadError) in try r.readString(at: o, end: &e) } }
    func decode(_ type: Double.Type) throws -> Double { try read(Double.self) { (r, o, e) throws(CBORReadError) in try r.readDouble(at: o, end: &e) } }
    func decode(_ type: Float.Type) throws -> Float { try read(Float.self) { (r, o, e) throws(CBORReadError) in try r.readFloat(at: o, end: &e) } }
    func decode(_ type: Int.Type) throws -> Int { try read(Int.self) { (r, o, e) throws(CBORReadError) in try r.readInt(Int.self, at: o, end: &e) } }
    func decode(_ type: Int8.Type) throws -> Int8 { try read(Int8.self) { (r, o, e) throws(CBORReadError) in try r.readInt(Int8.self, at: o, end: &e) } }
    func decode(_ type: Int16.Type) throws -> Int16 { try read(Int16.self) { (r, o, e) throws(CBORReadError) in try r.readInt(Int16.self, at: o, end: &e) } }
    func decode(_ type: Int32.Type) throws -> Int32 { try read(Int32.self) { (r, o, e) throws(CBORReadError) in try r.readInt(Int32.self, at: o, end: &e) } }
    func decode(_ type: Int64.Type) throws -> Int64 { try read(Int64.self) { (r, o, e) throws(CBORReadError) in try r.readInt(Int64.self, at: o, end: &e) } }
    func decode(_ type: UInt.Type) throws -> UInt { try read(UInt.self) { (r, o, e) throws(CBORReadError) in try r.readUInt(UInt.self, at: o, end: &e) } }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try read(UInt8.self) { (r, o, e) throws(CBORReadError) in try r.readUInt(UInt8.self, at: o, end: &e) } }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try read(UInt16.self) { (r, o, e) throws(CBORReadError) in try r.readUInt(UInt16.self, at: o, end: &e) } }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try read(UInt32.self) { (r, o, e) throws(CBORReadError) in try r.readUInt(UInt32.self, at: o, end: &e) } }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try read(UInt64.self) { (r, o, e) throws(CBORReadError) in try r.readUInt(UInt64.self, at: o, end: &e) } }
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        // The nested value's path is this container's path: no key to add.
        var end = -1
        return try decoder.decodeNested(T.self, at: offset, end: &end, key: _CBORIndexKey(0), push: false, containerPath: codingPath)
    }
}

/// A keyed container of ``CBORDecoder`` over one map.
struct _CBORKeyedDecodingContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: _CBORDecoder
    let mapStart: Int
    let count: Int
    /// The length of this container's coding path (also its map-cursor slot).
    let depth: Int
    /// The full coding path of a nested container; nil when it is the decoder's path
    /// prefix (which avoids carrying an array in the common case).
    let nestedPath: [any CodingKey]?

    var codingPath: [any CodingKey] { nestedPath ?? decoder.pathPrefix(depth) }

    /// The value offset for `key`, or nil when the map has no such key.
    @inline(__always)
    func find(_ key: Key) throws -> Int? {
        do throws(CBORReadError) {
            return try decoder.findEntry(mapStart: mapStart, count: count, slot: depth, string: key.stringValue, int: key.intValue)
        } catch {
            throw error.decodingError(codingPath + [key])
        }
    }

    /// ``find(_:)`` out of line, for the paths a recursive type goes through at every level:
    /// the lookup's temporaries stay out of their stack frames.
    @inline(never)
    func findOutOfLine(_ key: Key) throws -> Int? {
        try find(key)
    }

    /// The value offset for `key`; throws `keyNotFound` when missing.
    @inline(__always)
    func require(_ key: Key) throws -> Int {
        if let offset = try find(key) { return offset }
        throw missing(key)
    }

    /// ``require(_:)`` out of line (see ``findOutOfLine(_:)``).
    @inline(never)
    func requireOutOfLine(_ key: Key) throws -> Int {
        try require(key)
    }

    /// The `keyNotFound` error for `key`.
    @inline(never)
    func missing(_ key: Key) -> DecodingError {
        DecodingError.keyNotFound(key, DecodingError.Context(codingPath: codingPath, debugDescription: "no value for key \"\(key.stringValue)\"\(key.intValue.map { " (\($0))" } ?? "") in the map"))
    }

    @inline(__always)
    private func read<T>(_ key: Key, _ body: (CBORReader, Int, inout Int) throws(CBORReadError) -> T) throws -> T {
        try read(key, at: try require(key), body)
    }

    @inline(__always)
    private func readIfPresent<T>(_ key: Key, _ body: (CBORReader, Int, inout Int) throws(CBORReadError) -> T) throws -> T? {
        guard let offset = try find(key), !decoder.reader.isNil(at: offset) else { return nil }
        return try read(key, at: offset, body)
    }

    /// Reads the value of `key`, found at `offset`, with `body`; the map cursor moves past it.
    @inline(__always)
    private func read<T>(_ key: Key, at offset: Int, _ body: (CBORReader, Int, inout Int) throws(CBORReadError) -> T) throws -> T {
        var end = 0
        do throws(CBORReadError) {
            let value = try body(decoder.reader, offset, &end)
            decoder.valueEnded(slot: depth, mapStart: mapStart, valueStart: offset, end: end)
            return value
        } catch {
            throw error.decodingError(codingPath + [key], requested: T.self)
        }
    }

    var allKeys: [Key] {
        var keys: [Key] = []
        let reader = decoder.reader
        var position = mapStart
        for _ in 0 ..< count {
            guard let h = try? reader.head(at: position) else { break }
            var next = h.next
            if h.major == 3, let (text, end) = try? reader.readText(h, at: position) {
                if let key = Key(stringValue: text) { keys.append(key) }
                next = end
            } else if h.major == 0 || h.major == 1 {
                if h.argument <= UInt64(Int.max) {
                    let n = h.major == 0 ? Int(h.argument) : -1 - Int(h.argument)
                    if let key = Key(intValue: n) ?? Key(stringValue: String(n)) { keys.append(key) }
                }
            } else {
                guard let end = try? reader.skipChecked(at: position) else { break }
                next = end
            }
            guard let end = try? reader.skipChecked(at: next) else { break }
            position = end
        }
        return keys
    }

    func contains(_ key: Key) -> Bool { (try? find(key)) != nil }

    func decodeNil(forKey key: Key) throws -> Bool { decoder.reader.isNil(at: try require(key)) }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try read(key) { (r, o, e) throws(CBORReadError) in try r.readBool(at: o, end: &e) } }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try read(key) { (r, o, e) throws(CBORReadError) in try r.readString(at: o, end: &e) } }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try read(key) { (r, o, e) throws(CBORReadError) in try r.readDouble(at: o, end: &e) } }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try read(key) { (r, o, e) throws(CBORReadError) in try r.readFloat(at: o, end: &e) } }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try read(key) { (r, o, e) throws(CBORReadError) in try r.readInt(Int.self, at: o, end: &e) } }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try read(key) { (r, o, e) throws(CBORReadError) in try r.readInt(Int8.self, at: o, end: &e) } }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try read(key) { (r, o, e) throws(CBORReadError) in try r.readInt(Int16.self, at: o, end: &e) } }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try read(key) { (r, o, e) throws(CBORReadError) in try r.readInt(Int32.self, at: o, end: &e) } }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try read(key) { (r, o, e) throws(CBORReadError) in try r.readInt(Int64.self, at: o, end: &e) } }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try read(key) { (r, o, e) throws(CBORReadError) in try r.readUInt(UInt.self, at: o, end: &e) } }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try read(key) { (r, o, e) throws(CBORReadError) in try r.readUInt(UInt8.self, at: o, end: &e) } }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try read(key) { (r, o, e) throws(CBORReadError) in try r.readUInt(UInt16.self, at: o, end: &e) } }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try read(key) { (r, o, e) throws(CBORReadError) in try r.readUInt(UInt32.self, at: o, end: &e) } }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try read(key) { (r, o, e) throws(CBORReadError) in try r.readUInt(UInt64.self, at: o, end: &e) } }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try decodeValue(T.self, key, at: try requireOutOfLine(key))
    }

    /// Decodes the value of `key`, found at `offset`; the map cursor moves past it when its end is known.
    @inline(__always)
    private func decodeValue<T: Decodable>(_ type: T.Type, _ key: Key, at offset: Int) throws -> T {
        var end = -1
        let value = try decoder.decodeNested(T.self, at: offset, end: &end, key: key, push: true, containerPath: nestedPath)
        if end >= 0 { decoder.valueEnded(slot: depth, mapStart: mapStart, valueStart: offset, end: end) }
        return value
    }

    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try readIfPresent(key) { (r, o, e) throws(CBORReadError) in try r.readBool(at: o, end: &e) } }
    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? { try readIfPresent(key) { (r, o, e) throws(CBORReadError) in try r.readString(at: o, end: &e) } }
    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? { try readIfPresent(key) { (r, o, e) throws(CBORReadError) in try r.readDouble(at: o, end: &e) } }
    func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? { try readIfPresent(key) { (r, o, e) throws(CBORReadError) in try r.readFloat(at: o, end: &e) } }
    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try readIfPresent(key) { (r, o, e) throws(CBORReadError) in try r.readInt(Int.self, at: o, end: &e) } }
    func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws -> Int8? { try readIfPresent(key) { (r, o, e) throws(CBORReadError) in try r.readInt(Int8.self, at: o, end: &e) } }
    func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws -> Int16? { try readIfPresent(key) { (r, o, e) throws(CBORReadError) in try r.readInt(Int16.self, at: o, end: &e) } }
    func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? { try readIfPresent(key) { (r, o, e) throws(CBORReadError) in try r.readInt(Int32.self, at: o, end: &e) } }
    func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? { try readIfPresent(key) { (r, o, e) throws(CBORReadError) in try r.readInt(Int64.self, at: o, end: &e) } }
    func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws -> UInt? { try readIfPresent(key) { (r, o, e) throws(CBORReadError) in try r.readUInt(UInt.self, at: o, end: &e) } }
    func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws -> UInt8? { try readIfPresent(key) { (r, o, e) throws(CBORReadError) in try r.readUInt(UInt8.self, at: o, end: &e) } }
    func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws -> UInt16? { try readIfPresent(key) { (r, o, e) throws(CBORReadError) in try r.readUInt(UInt16.self, at: o, end: &e) } }
    func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws -> UInt32? { try readIfPresent(key) { (r, o, e) throws(CBORReadError) in try r.readUInt(UInt32.self, at: o, end: &e) } }
    func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws -> UInt64? { try readIfPresent(key) { (r, o, e) throws(CBORReadError) in try r.readUInt(UInt64.self, at: o, end: &e) } }
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let offset = try findOutOfLine(key), !decoder.reader.isNil(at: offset) else { return nil }
        return try decodeValue(T.self, key, at: offset)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        let offset = try requireOutOfLine(key)
        return KeyedDecodingContainer(try decoder.makeKeyed(NestedKey.self, at: offset, codingPath: codingPath + [key]))
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        let offset = try requireOutOfLine(key)
        return try decoder.makeUnkeyed(at: offset, codingPath: codingPath + [key])
    }

    func superDecoder() throws -> any Decoder {
        let offset: Int?
        do throws(CBORReadError) {
            offset = try decoder.findEntry(mapStart: mapStart, count: count, slot: depth, string: "super", int: nil)
        } catch {
            throw error.decodingError(codingPath + [_CBORKey.super])
        }
        return makeSuperDecoder(_CBORKey.super, offset)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        makeSuperDecoder(key, try find(key))
    }

    private func makeSuperDecoder(_ key: any CodingKey, _ offset: Int?) -> any Decoder {
        let sub: _CBORDecoder
        if let offset {
            sub = _CBORDecoder.make(reader: decoder.reader, userInfo: decoder.sendableUserInfo)
            sub.s.pointee.offset = offset
        } else {
            // JSONDecoder's behaviour: a missing key gives a decoder over null.
            sub = _CBORDecoder.make(reader: CBORReader(cborNullItem), userInfo: decoder.sendableUserInfo)
        }
        sub.s.pointee.path = codingPath + [key]
        return sub
    }
}

/// An unkeyed container of ``CBORDecoder`` over one array.
struct _CBORUnkeyedDecodingContainer: UnkeyedDecodingContainer {
    let decoder: _CBORDecoder
    var position: Int
    let total: Int
    var currentIndex = 0
    let codingPath: [any CodingKey]

    init(decoder: _CBORDecoder, position: Int, count: Int, codingPath: [any CodingKey]) {
        self.decoder = decoder
        self.position = position
        self.total = count
        self.codingPath = codingPath
    }

    var count: Int? { total }
    var isAtEnd: Bool { currentIndex >= total }

    private func atEnd(_ type: Any.Type) -> DecodingError {
        DecodingError.valueNotFound(type, DecodingError.Context(codingPath: codingPath + [_CBORIndexKey(currentIndex)], debugDescription: "unkeyed container is at end (it has \(total) elements)"))
    }

    @inline(__always)
    private mutating func read<T>(_ body: (CBORReader, Int, inout Int) throws(CBORReadError) -> T) throws -> T {
        guard currentIndex < total else { throw atEnd(T.self) }
        var end = 0
        do throws(CBORReadError) {
            let value = try body(decoder.reader, position, &end)
            position = end
            currentIndex &+= 1
            return value
        } catch {
            throw error.decodingError(codingPath + [_CBORIndexKey(currentIndex)], requested: T.self)
        }
    }

    mutating func decodeNil() throws -> Bool {
        guard currentIndex < total else { throw atEnd(Any?.self) }
        guard decoder.reader.isNil(at: position) else { return false }
        do throws(CBORReadError) {
            position = try decoder.reader.skipChecked(at: position)
        } catch {
            throw error.decodingError(codingPath + [_CBORIndexKey(currentIndex)])
        }
        currentIndex &+= 1
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try read { (r, o, e) throws(CBORReadError) in try r.readBool(at: o, end: &e) } }
    mutating func decode(_ type: String.Type) throws -> String { try read { (r, o, e) throws(CBORReadError) in try r.readString(at: o, end: &e) } }
    mutating func decode(_ type: Double.Type) throws -> Double { try read { (r, o, e) throws(CBORReadError) in try r.readDouble(at: o, end: &e) } }
    mutating func decode(_ type: Float.Type) throws -> Float { try read { (r, o, e) throws(CBORReadError) in try r.readFloat(at: o, end: &e) } }
    mutating func decode(_ type: Int.Type) throws -> Int { try read { (r, o, e) throws(CBORReadError) in try r.readInt(Int.self, at: o, end: &e) } }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try read { (r, o, e) throws(CBORReadError) in try r.readInt(Int8.self, at: o, end: &e) } }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try read { (r, o, e) throws(CBORReadError) in try r.readInt(Int16.self, at: o, end: &e) } }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try read { (r, o, e) throws(CBORReadError) in try r.readInt(Int32.self, at: o, end: &e) } }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try read { (r, o, e) throws(CBORReadError) in try r.readInt(Int64.self, at: o, end: &e) } }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try read { (r, o, e) throws(CBORReadError) in try r.readUInt(UInt.self, at: o, end: &e) } }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try read { (r, o, e) throws(CBORReadError) in try r.readUInt(UInt8.self, at: o, end: &e) } }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try read { (r, o, e) throws(CBORReadError) in try r.readUInt(UInt16.self, at: o, end: &e) } }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try read { (r, o, e) throws(CBORReadError) in try r.readUInt(UInt32.self, at: o, end: &e) } }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try read { (r, o, e) throws(CBORReadError) in try r.readUInt(UInt64.self, at: o, end: &e) } }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        guard currentIndex < total else { throw atEnd(T.self) }
        var end = 0
        let start = position
        let key = _CBORIndexKey(currentIndex)
        let value = try decoder.decodeElement(T.self, at: start, end: &end, key: key, containerPath: codingPath)
        position = end
        currentIndex &+= 1
        return value
    }

    /// Skips the current element after making something of it.
    private mutating func advance<R>(_ make: (Int, [any CodingKey]) throws -> R) throws -> R {
        guard currentIndex < total else { throw atEnd(R.self) }
        let path = codingPath + [_CBORIndexKey(currentIndex)]
        let result = try make(position, path)
        do throws(CBORReadError) {
            position = try decoder.reader.skipChecked(at: position)
        } catch {
            throw error.decodingError(path)
        }
        currentIndex &+= 1
        return result
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let d = decoder
        return try advance { KeyedDecodingContainer(try d.makeKeyed(NestedKey.self, at: $0, codingPath: $1)) }
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let d = decoder
        return try advance { try d.makeUnkeyed(at: $0, codingPath: $1) }
    }

    mutating func superDecoder() throws -> any Decoder {
        let d = decoder
        return try advance { offset, path in
            let sub = _CBORDecoder.make(reader: d.reader, userInfo: d.sendableUserInfo)
            sub.s.pointee.offset = offset
            sub.s.pointee.path = path
            return sub
        }
    }
}
