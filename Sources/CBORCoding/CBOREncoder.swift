import Foundation

/// Encodes `Encodable` values as CBOR (RFC 8949), shaped like `JSONEncoder`.
///
/// Output always uses the preferred serialization of RFC 8949 §4.1: the shortest
/// head for every integer, length and tag, definite lengths only, and every float
/// in the shortest of half, single or double precision that keeps its exact bits
/// (so `1.5` is `f9 3e00`, a `Float` never grows, and NaN payloads survive). With
/// ``deterministic`` set it also sorts every map's keys bytewise by their encoded
/// bytes (RFC 8949 §4.2.1, core deterministic encoding) and the elements of every
/// `Set` by their encoded bytes (a rule of this package, see ``deterministic``), so
/// equal values give equal bytes. With ``normalizesStringsToNFC`` set, strings are
/// written in Unicode Normalization Form C.
///
/// ## Mapping
/// | Swift | CBOR |
/// |---|---|
/// | `Int`, `Int8`...`UInt64` | major type 0 or 1 |
/// | `Float`, `Double` | major type 7, shortest exact width |
/// | `Bool`, `nil` | `true`/`false`, `null` |
/// | `String` | text string |
/// | `Data` | byte string |
/// | keyed container (structs, classes) | map with text keys (`CodingKey.stringValue`) |
/// | unkeyed container, arrays | array |
/// | `[String: V]` | map with text keys |
/// | `[Int: V]` and other keys whose `stringValue` is the decimal form of their `intValue` | map with integer keys |
/// | other dictionaries | Swift's own form: an array of alternating keys and values |
/// | `Date` | tag 1 over epoch seconds (integer when whole, else the shortest exact float); when that float cannot give back the same `Date`, tag 1001 (RFC 9581) `{5: [exponent, mantissa]}`, the exact epoch seconds as a bigfloat; a NaN or infinite `Date` throws `EncodingError.invalidValue` |
/// | `URL` | tag 32 over `absoluteString` |
/// | `UUID` | tag 37 over its 16 bytes |
/// | `Decimal` | tag 4 decimal fraction `[exponent, mantissa]` (mantissa a bignum, tag 2 or 3, when above 64 bits); `Decimal.nan` as the half-precision NaN `f9 7e00` |
/// | ``CBOR`` | written as is |
/// | `superEncoder()` | the value under key `"super"` (like `JSONEncoder`) |
///
/// A value whose `encode(to:)` writes nothing becomes an empty map. If a keyed
/// container is given the same key twice, the deterministic mode keeps the last
/// value; the default mode writes both entries.
///
/// The encoder writes straight into one byte buffer (no intermediate tree): a
/// container's head is patched when it closes. Containers must be used in the
/// usual nested order; writing to a container after a sibling container of the
/// same parent has been used again throws ``EncodingError/invalidValue(_:_:)``.
public struct CBOREncoder: Sendable {
    /// Sort map keys, and the elements of every `Set`, by their encoded bytes so equal values give equal bytes. Default `false`.
    ///
    /// Map keys are sorted bytewise by their encodings as RFC 8949 §4.2.1 (core
    /// deterministic encoding) requires, and of duplicate keys the last one is kept.
    /// A Swift `Set` is an array in CBOR, in the order the set iterates, which depends
    /// on the process's hash seed: so, a rule of this package beyond RFC 8949 (which
    /// orders map keys only), its elements are sorted bytewise by their encodings too
    /// (a `Set` is recognised by its type, at any depth). The arrays of alternating keys
    /// and values Swift writes for dictionaries whose keys are neither `String` nor
    /// `Int` are sorted by key. ``CBORDecoder`` reads all of these like any array or map.
    public var deterministic: Bool = false

    /// Write every string of the value in Unicode Normalization Form C (NFC). Default `false`.
    ///
    /// Swift compares strings by canonical equivalence, so `"caf\u{E9}"` (é precomposed)
    /// and `"cafe\u{301}"` (e and a combining accent) are equal `String`s with different
    /// UTF-8; by default each is written as given, so they encode differently. With this
    /// set, the strings of the value (`String` values, keyed-container and dictionary keys,
    /// strings in arrays, sets and dictionaries) are written as ``normalizedToNFC(_:)``
    /// gives them, so canonically equivalent strings encode alike. NFC is not NFKC:
    /// compatibility characters such as the ligature "ﬁ" are kept. A string of ASCII
    /// bytes only is written without a look at Unicode data; other strings cost a
    /// normalization each. `URL`s and raw ``CBOR`` values are written as they are.
    /// Decoding never normalizes.
    public var normalizesStringsToNFC: Bool = false

    /// Values passed to `encode(to:)` implementations through `Encoder.userInfo`.
    public var userInfo: [CodingUserInfoKey: any Sendable] = [:]

    /// Creates an encoder with preferred serialization and no user info.
    public init() {}

    /// `string` in Unicode Normalization Form C, the form ``normalizesStringsToNFC`` writes.
    ///
    /// For code that builds CBOR text without the encoder (such as a store's record
    /// keys) and must agree with it byte for byte. A string whose UTF-8 is all ASCII is
    /// already in NFC and is returned as it is, without a copy; any other string goes
    /// through Foundation's `precomposedStringWithCanonicalMapping`.
    public static func normalizedToNFC(_ string: String) -> String {
        if isASCII(string) { return string }
        return string.precomposedStringWithCanonicalMapping
    }

    /// Whether every UTF-8 byte of `string` is below 0x80 (eight bytes at a time).
    static func isASCII(_ string: String) -> Bool {
        if let ascii = string.utf8.withContiguousStorageIfAvailable({ utf8 -> Bool in
            guard let base = utf8.baseAddress else { return true }
            var i = 0
            var bits: UInt64 = 0
            while utf8.count &- i >= 8 {
                bits |= UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
                i &+= 8
            }
            while i < utf8.count {
                bits |= UInt64(base[i])
                i &+= 1
            }
            return bits & 0x8080_8080_8080_8080 == 0
        }) {
            return ascii
        }
        return string.utf8.allSatisfy { $0 < 0x80 }
    }

    /// Encodes `value` as one CBOR data item.
    public func encode<T: Encodable>(_ value: T) throws -> Data {
        let encoder = _CBOREncoder.make(deterministic: deterministic, normalizesStrings: normalizesStringsToNFC, userInfo: userInfo)
        do {
            try encoder.encodeTopLevel(value)
        } catch {
            encoder.w.pointee.deallocate()
            throw error
        }
        // The Data takes over the buffer.
        return encoder.w.pointee.takeData()
    }

    /// Encodes `value` as one CBOR data item, returned as a byte array.
    public func encodeBytes<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = _CBOREncoder.make(deterministic: deterministic, normalizesStrings: normalizesStringsToNFC, userInfo: userInfo)
        defer { encoder.w.pointee.deallocate() }
        try encoder.encodeTopLevel(value)
        return encoder.w.pointee.bytes
    }

    /// Appends one CBOR data item for `value` to `buffer` (one copy of the item's bytes, nothing else).
    ///
    /// On error `buffer` is left as it was.
    public func encode<T: Encodable>(_ value: T, appendingTo buffer: inout [UInt8]) throws {
        let encoder = _CBOREncoder.make(deterministic: deterministic, normalizesStrings: normalizesStringsToNFC, userInfo: userInfo)
        defer { encoder.w.pointee.deallocate() }
        try encoder.encodeTopLevel(value)
        let writer = encoder.w.pointee
        buffer.append(contentsOf: writer.buffer(0, writer.count))
    }
}

/// A marker for `Dictionary<String, _>`, whose numeric-looking keys stay text keys.
protocol _CBORStringKeyedDictionary {}
extension Dictionary: _CBORStringKeyedDictionary where Key == String {}

/// The unordered collections whose arrays deterministic mode sorts.
protocol _CBORUnorderedCollection {
    /// Items per sorted unit: 2 for the alternating keys and values Swift writes for a
    /// `Dictionary` with keys other than String and Int (sorted by key, last duplicate
    /// kept), 1 for the elements of a `Set` (sorted by their whole encoding).
    static var cborSortUnit: UInt8 { get }
}
extension Dictionary: _CBORUnorderedCollection {
    static var cborSortUnit: UInt8 { 2 }
}
extension Set: _CBORUnorderedCollection {
    static var cborSortUnit: UInt8 { 1 }
}

/// One open container or pending value of ``_CBOREncoder``.
struct _CBORFrame {
    enum Kind: UInt8 { case map, array, slot }
    var kind: Kind
    /// In deterministic mode, an array to sort: 2 for the alternating keys and values of a
    /// Dictionary (by key), 1 for the elements of a Set, 0 for any other array.
    var sortUnit: UInt8 = 0
    /// 0 unknown, 1 a `[String: V]` (numeric-looking keys stay text), 2 not.
    var stringKeyed: UInt8
    /// Unique among the frames of one encode call; containers carry it to detect stale use.
    var id: UInt32
    /// Offset of the placeholder head (map, array) or of the value's first byte (slot).
    var start: Int
    /// Entries (map) or elements (array) written so far.
    var count: Int
    /// The coding path length to restore when the frame closes.
    var pathCount: Int
    /// The type whose `encode(to:)` opened this container, to tell `[String: V]` apart.
    var owner: Any.Type?
}

/// Where a container lives: its frame index and the frame's id, packed in one word.
struct _CBORFrameRef {
    let index: Int32
    let id: UInt32
    static let invalid = _CBORFrameRef(index: -1, id: 0)
}

/// The mutable state of one encode call, kept behind a pointer so that hot paths
/// pay no dynamic exclusivity checks (class stored properties would).
struct _CBOREncoderState {
    static let inlineFrames = 16
    let deterministic: Bool
    let sendableUserInfo: [CodingUserInfoKey: any Sendable]
    var writer = CBORWriter()
    /// The open frames: the object's tail elements at first, a heap buffer once that is too small.
    var frames: UnsafeMutablePointer<_CBORFrame>
    var framesOnHeap = false
    var frameCount = 0
    var frameCapacity = _CBOREncoderState.inlineFrames
    var path: [any CodingKey] = []
    /// Frames at or above this index belong to the value whose `encode(to:)` is running.
    var slotBase = 0
    /// Offset where the value whose `encode(to:)` is running starts.
    var slotStart = 0
    /// The type whose `encode(to:)` is running.
    var currentType: Any.Type?
    var nextID: UInt32 = 1
    /// A misuse found where the API cannot throw; thrown when the current value finishes.
    var pendingError: EncodingError? {
        didSet { hasPendingError = pendingError != nil }
    }
    var hasPendingError = false
    /// Set by `encodeSpecial` for a NaN or infinite `Date` (not written), with its seconds.
    var nonFiniteDate = false
    var nonFiniteSeconds = 0.0

    init(deterministic: Bool, userInfo: [CodingUserInfoKey: any Sendable], frames: UnsafeMutablePointer<_CBORFrame>) {
        self.deterministic = deterministic
        self.sendableUserInfo = userInfo
        self.frames = frames
    }

    @inline(__always)
    mutating func pushFrame(_ frame: _CBORFrame) -> _CBORFrameRef {
        if frameCount == frameCapacity {
            let bigger = UnsafeMutablePointer<_CBORFrame>.allocate(capacity: frameCapacity * 2)
            bigger.moveInitialize(from: frames, count: frameCount)
            if framesOnHeap { frames.deallocate() }
            frames = bigger
            framesOnHeap = true
            frameCapacity *= 2
        }
        (frames + frameCount).initialize(to: frame)
        frameCount &+= 1
        return _CBORFrameRef(index: Int32(truncatingIfNeeded: frameCount &- 1), id: frame.id)
    }

    @inline(__always)
    mutating func makeID() -> UInt32 {
        let id = nextID
        nextID = nextID == .max ? 1 : nextID &+ 1
        return id
    }
}

/// The `Encoder` behind ``CBOREncoder``: one object per top-level call, reused for every nested value.
///
/// Open containers are kept on a stack of frames; each keyed or unkeyed container
/// wrote a one-byte placeholder head when it opened and is closed (head patched,
/// keys sorted in deterministic mode) when its parent is written to again or when
/// the `encode(to:)` call that opened it returns.
final class _CBOREncoder: ManagedBuffer<_CBOREncoderState, _CBORFrame>, Encoder {
    static func make(deterministic: Bool, normalizesStrings: Bool, userInfo: [CodingUserInfoKey: any Sendable]) -> _CBOREncoder {
        let object = _CBOREncoder.create(minimumCapacity: _CBOREncoderState.inlineFrames) { buffer in
            var state = _CBOREncoderState(deterministic: deterministic, userInfo: userInfo, frames: buffer.withUnsafeMutablePointerToElements { $0 })
            state.writer.normalizesStrings = normalizesStrings
            return state
        }
        return unsafeDowncast(object, to: _CBOREncoder.self)
    }

    deinit {
        // The writer's storage is freed or handed over by the caller.
        if s.pointee.framesOnHeap { s.pointee.frames.deallocate() }
    }

    /// The state; valid as long as the object lives.
    @inline(__always)
    var s: UnsafeMutablePointer<_CBOREncoderState> { withUnsafeMutablePointerToHeader { $0 } }

    /// The state's writer, addressed directly.
    @inline(__always)
    var w: UnsafeMutablePointer<CBORWriter> { withUnsafeMutablePointerToHeader { $0.pointer(to: \.writer)! } }

    var deterministic: Bool { s.pointee.deterministic }

    var codingPath: [any CodingKey] { s.pointee.path }

    /// The user info, upcast to the type `Encoder` requires.
    var userInfo: [CodingUserInfoKey: Any] { s.pointee.sendableUserInfo }

    /// The coding path of a container made at path length `depth`.
    func path(depth: Int) -> [any CodingKey] {
        let path = s.pointee.path
        return depth >= path.count ? path : Array(path.prefix(depth))
    }

    /// Encodes the top-level value; the caller owns (frees or takes) the writer's storage either way.
    func encodeTopLevel<T: Encodable>(_ value: T) throws {
        try encodeValue(value, key: _CBORIndexKey(0), push: false)
        if s.pointee.hasPendingError, let error = s.pointee.pendingError { throw error }
    }

    // MARK: Frames

    /// Makes frame `ref` the innermost open frame, closing any frames above it.
    @inline(__always)
    func prepare(_ ref: _CBORFrameRef) throws {
        let index = Int(ref.index)
        if index == s.pointee.frameCount &- 1 && index >= 0 && s.pointee.frames[index].id == ref.id { return }
        try prepareSlow(ref)
    }

    func prepareSlow(_ ref: _CBORFrameRef) throws {
        let index = Int(ref.index)
        guard index >= 0, index < s.pointee.frameCount, s.pointee.frames[index].id == ref.id else {
            throw EncodingError.invalidValue((), EncodingError.Context(codingPath: codingPath, debugDescription: "CBOREncoder: a container was written to after it was closed (a sibling container of the same parent was used after it, or the encode(to:) call that created it has returned)"))
        }
        guard index >= s.pointee.slotBase else {
            throw EncodingError.invalidValue((), EncodingError.Context(codingPath: codingPath, debugDescription: "CBOREncoder: a container of an enclosing value was written to from inside a nested value's encode(to:)"))
        }
        while s.pointee.frameCount &- 1 > index { closeTop() }
    }

    func pushContainer(isMap: Bool, pathCount: Int) -> _CBORFrameRef {
        let id = s.pointee.makeID()
        var frame = _CBORFrame(kind: isMap ? .map : .array, stringKeyed: 0, id: id, start: s.pointee.writer.count, count: 0, pathCount: pathCount, owner: s.pointee.currentType)
        if !isMap && deterministic, let owner = frame.owner, let unordered = owner as? any _CBORUnorderedCollection.Type {
            frame.sortUnit = unordered.cborSortUnit
        }
        let ref = s.pointee.pushFrame(frame)
        s.pointee.writer.append(isMap ? 0xA0 : 0x80)
        return ref
    }

    func pushSlot(pathCount: Int) -> _CBORFrameRef {
        let id = s.pointee.makeID()
        return s.pointee.pushFrame(_CBORFrame(kind: .slot, stringKeyed: 2, id: id, start: s.pointee.writer.count, count: 0, pathCount: pathCount, owner: nil))
    }

    /// Adds `key` to the coding path and opens a frame of `kind` for the value under it;
    /// returns the frame and the coding path length of that value.
    func pushNested<K: CodingKey>(_ kind: _CBORFrame.Kind, key: K) -> (_CBORFrameRef, Int) {
        let pathCount = s.pointee.path.count
        s.pointee.path.append(key)
        let ref = kind == .slot ? pushSlot(pathCount: pathCount) : pushContainer(isMap: kind == .map, pathCount: pathCount)
        return (ref, pathCount &+ 1)
    }

    /// Drops the frames from `index` up without closing them (after an error).
    func dropFrames(from index: Int) {
        if s.pointee.frameCount > index { s.pointee.frameCount = index }
    }

    /// Closes the innermost frame: patches its head (sorting keys first in deterministic mode).
    func closeTop() {
        s.pointee.frameCount &-= 1
        let frame = s.pointee.frames[s.pointee.frameCount]
        if s.pointee.path.count > frame.pathCount { s.pointee.path.removeSubrange(frame.pathCount...) }
        switch frame.kind {
        case .slot:
            if s.pointee.writer.count == frame.start { s.pointee.writer.append(0xA0) }
        case .map, .array:
            var count = frame.count
            if frame.kind == .map && deterministic && count > 1 {
                count = sortMapEntries(contentStart: frame.start &+ 1, count: count)
            } else if frame.sortUnit == 2 && count > 2 && count & 1 == 0 {
                count = 2 &* sortMapEntries(contentStart: frame.start &+ 1, count: count / 2)
            } else if frame.sortUnit == 1 && count > 1 {
                _ = sortMapEntries(contentStart: frame.start &+ 1, count: count, elements: true)
            }
            let major: UInt8 = frame.kind == .map ? 5 : 4
            if count < 24 {
                s.pointee.writer[frame.start] = major &<< 5 | UInt8(truncatingIfNeeded: count)
            } else {
                let size = CBORWriter.headSize(UInt64(count))
                s.pointee.writer.insertGap(size &- 1, at: frame.start &+ 1)
                s.pointee.writer.patchHead(at: frame.start, major: major, argument: UInt64(count))
            }
        }
    }

    /// Sorts the `count` entries after `contentStart` bytewise by key (last duplicate wins); returns the new count.
    ///
    /// With `elements`, the entries are single items (a Set's elements) sorted by their whole
    /// encoding, and equal ones are all kept.
    func sortMapEntries(contentStart: Int, count: Int, elements: Bool = false) -> Int {
        struct Entry { var keyStart: Int; var keyEnd: Int; var end: Int; var order: Int }
        let writer = s.pointee.writer
        let raw = writer.buffer(0, writer.count)
        let reader = CBORReader(raw)
        var entries: [Entry] = []
        entries.reserveCapacity(count)
        var position = contentStart
        for i in 0 ..< count {
            guard let keyEnd = try? reader.skipChecked(at: position),
                  let end = elements ? keyEnd : try? reader.skipChecked(at: keyEnd) else { return count }
            entries.append(Entry(keyStart: position, keyEnd: keyEnd, end: end, order: i))
            position = end
        }
        let contentEnd = position
        entries.sort { a, b in
            let c = compareBytes(raw, a.keyStart, a.keyEnd, b.keyStart, b.keyEnd)
            return c != 0 ? c < 0 : a.order < b.order
        }
        let sorted = UnsafeMutableRawPointer.allocate(byteCount: contentEnd &- contentStart, alignment: 1)
        defer { sorted.deallocate() }
        var length = 0
        var kept = 0
        for (i, e) in entries.enumerated() {
            // Equal keys are adjacent and in write order: keep only the last one.
            if !elements, i &+ 1 < entries.count,
               compareBytes(raw, e.keyStart, e.keyEnd, entries[i &+ 1].keyStart, entries[i &+ 1].keyEnd) == 0 {
                continue
            }
            (sorted + length).copyMemory(from: writer.base + e.keyStart, byteCount: e.end &- e.keyStart)
            length &+= e.end &- e.keyStart
            kept &+= 1
        }
        // Copy back; duplicates dropped make the content shorter, so move what follows.
        (writer.base + contentStart).copyMemory(from: sorted, byteCount: length)
        if length < contentEnd &- contentStart {
            memmove(writer.base + contentStart + length, writer.base + contentEnd, writer.count &- contentEnd)
            s.pointee.writer.count &-= (contentEnd &- contentStart) &- length
        }
        return kept
    }

    // MARK: Containers

    /// The frame of the container for the value that starts at `start`, whose containers begin at frame `base`.
    func openContainer(isMap: Bool, base: Int, start: Int) -> _CBORFrameRef {
        if s.pointee.frameCount > base {
            let f = s.pointee.frames[base]
            if f.start == start && f.kind == (isMap ? .map : .array) {
                // A second request for the same value's container (a subclass after its superclass).
                while s.pointee.frameCount &- 1 > base { closeTop() }
                return _CBORFrameRef(index: Int32(truncatingIfNeeded: base), id: f.id)
            }
            s.pointee.pendingError = s.pointee.pendingError ?? EncodingError.invalidValue((), EncodingError.Context(codingPath: codingPath, debugDescription: "CBOREncoder: requested a \(isMap ? "keyed" : "unkeyed") container for a value that already has a different container"))
            while s.pointee.frameCount > base { closeTop() }
        } else if s.pointee.writer.count != start {
            s.pointee.pendingError = s.pointee.pendingError ?? EncodingError.invalidValue((), EncodingError.Context(codingPath: codingPath, debugDescription: "CBOREncoder: requested a \(isMap ? "keyed" : "unkeyed") container for a value that was already encoded as a single value"))
        }
        return pushContainer(isMap: isMap, pathCount: s.pointee.path.count)
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let ref = openContainer(isMap: true, base: s.pointee.slotBase, start: s.pointee.slotStart)
        return KeyedEncodingContainer(_CBORKeyedEncodingContainer<Key>(encoder: self, ref: ref, depth: s.pointee.path.count))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let ref = openContainer(isMap: false, base: s.pointee.slotBase, start: s.pointee.slotStart)
        return _CBORUnkeyedEncodingContainer(encoder: self, ref: ref, depth: s.pointee.path.count)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        _CBORSingleValueEncodingContainer(encoder: self, base: Int32(truncatingIfNeeded: s.pointee.slotBase), start: s.pointee.slotStart, depth: s.pointee.path.count)
    }

    /// Records a misuse where the API cannot throw.
    func record(_ error: any Error) {
        if s.pointee.pendingError == nil, let error = error as? EncodingError { s.pointee.pendingError = error }
    }

    // MARK: Keys

    /// Writes `key` as a map key of frame `index` and counts the entry.
    @inline(__always)
    func writeKey<Key: CodingKey>(_ key: Key, frame index: Int) {
        s.pointee.frames[index].count &+= 1
        if let int = key.intValue, integerKey(key.stringValue, int, frame: index) {
            s.pointee.writer.writeInt(Int64(int))
        } else {
            s.pointee.writer.writeString(key.stringValue)
        }
    }

    /// Whether a key with an `intValue` is written as a CBOR integer.
    func integerKey(_ string: String, _ int: Int, frame index: Int) -> Bool {
        // Only keys whose string form is exactly the decimal integer (what Int-keyed dictionaries use).
        guard let first = string.utf8.first, first == UInt8(ascii: "-") || (first >= 0x30 && first <= 0x39) else { return false }
        guard string == String(int) else { return false }
        if s.pointee.frames[index].stringKeyed == 0 {
            let isString = s.pointee.frames[index].owner.map { $0 is any _CBORStringKeyedDictionary.Type } ?? false
            s.pointee.frames[index].stringKeyed = isString ? 1 : 2
        }
        return s.pointee.frames[index].stringKeyed == 2
    }

    // MARK: Values

    /// Encodes one nested value at the end of the buffer; `key` is its coding path entry.
    @inline(__always)
    func encodeValue<T: Encodable, K: CodingKey>(_ value: T, key: K, push: Bool) throws {
        // Fast paths for the common leaf types, without a dynamic cast.
        if T.self == String.self { s.pointee.writer.writeString(unsafeBitCast(value, to: String.self)); return }
        if T.self == Int.self { s.pointee.writer.writeInt(Int64(unsafeBitCast(value, to: Int.self))); return }
        if T.self == Double.self { s.pointee.writer.writeDouble(unsafeBitCast(value, to: Double.self)); return }
        if T.self == Bool.self { s.pointee.writer.writeBool(unsafeBitCast(value, to: Bool.self)); return }
        try encodeValueSlow(value, key: key, push: push)
    }

    func encodeValueSlow<T: Encodable, K: CodingKey>(_ value: T, key: K, push: Bool) throws {
        if encodeSpecial(value) {
            if s.pointee.nonFiniteDate { throw nonFiniteDate(key: key, push: push) }
            return
        }
        let st = s
        let savedBase = st.pointee.slotBase, savedStart = st.pointee.slotStart, savedType = st.pointee.currentType
        let savedPath = st.pointee.path.count
        if push { st.pointee.path.append(key) }
        st.pointee.slotBase = st.pointee.frameCount
        st.pointee.slotStart = st.pointee.writer.count
        st.pointee.currentType = T.self
        defer {
            st.pointee.slotBase = savedBase
            st.pointee.slotStart = savedStart
            st.pointee.currentType = savedType
        }
        do {
            try value.encode(to: self)
        } catch {
            // Drop whatever this value opened, so a caller that catches can go on.
            dropFrames(from: st.pointee.slotBase)
            if st.pointee.path.count > savedPath { st.pointee.path.removeSubrange(savedPath...) }
            throw error
        }
        while st.pointee.frameCount > st.pointee.slotBase { closeTop() }
        if st.pointee.writer.count == st.pointee.slotStart { st.pointee.writer.append(0xA0) }
        let extra = st.pointee.path.count &- savedPath
        if extra == 1 { st.pointee.path.removeLast() } else if extra > 0 { st.pointee.path.removeLast(extra) }
        if st.pointee.hasPendingError, let error = st.pointee.pendingError { throw error }
    }

    /// The error for a `Date` that is NaN or infinite, which the decoder would refuse.
    @inline(never)
    func nonFiniteDate<K: CodingKey>(key: K, push: Bool) -> EncodingError {
        s.pointee.nonFiniteDate = false
        // The seconds, not the Date, as the value: Foundation traps when it prints a NaN Date.
        let seconds = s.pointee.nonFiniteSeconds
        return EncodingError.invalidValue(seconds, EncodingError.Context(codingPath: push ? codingPath + [key] : codingPath, debugDescription: "CBOREncoder: a Date of \(seconds) seconds is not a finite date (CBORDecoder refuses NaN and infinite dates)"))
    }

    /// Writes the types with a CBOR form of their own; returns false for everything else.
    ///
    /// A `Date` that is NaN or infinite is not written: it sets the state's `nonFiniteDate`,
    /// for the caller to throw (which keeps this hot function free of error paths).
    func encodeSpecial<T: Encodable>(_ value: T) -> Bool {
        let t: Any.Type = T.self
        let w = self.w
        if t == Int64.self { w.pointee.writeInt(unsafeBitCast(value, to: Int64.self)) }
        else if t == UInt64.self { w.pointee.writeUInt(unsafeBitCast(value, to: UInt64.self)) }
        else if t == Float.self { w.pointee.writeFloat(unsafeBitCast(value, to: Float.self)) }
        else if t == Int32.self { w.pointee.writeInt(Int64(unsafeBitCast(value, to: Int32.self))) }
        else if t == UInt32.self { w.pointee.writeUInt(UInt64(unsafeBitCast(value, to: UInt32.self))) }
        else if t == Int16.self { w.pointee.writeInt(Int64(unsafeBitCast(value, to: Int16.self))) }
        else if t == UInt16.self { w.pointee.writeUInt(UInt64(unsafeBitCast(value, to: UInt16.self))) }
        else if t == Int8.self { w.pointee.writeInt(Int64(unsafeBitCast(value, to: Int8.self))) }
        else if t == UInt8.self { w.pointee.writeUInt(UInt64(unsafeBitCast(value, to: UInt8.self))) }
        else if t == UInt.self { w.pointee.writeUInt(UInt64(unsafeBitCast(value, to: UInt.self))) }
        else if t == Data.self {
            let data = unsafeBitCast(value, to: Data.self)
            data.withUnsafeBytes { w.pointee.writeByteString($0) }
        }
        else if t == Date.self {
            let date = unsafeBitCast(value, to: Date.self)
            if date.timeIntervalSinceReferenceDate.isFinite {
                CBORSpecial.writeDate(date, to: &w.pointee)
            } else {
                s.pointee.nonFiniteDate = true
                s.pointee.nonFiniteSeconds = date.timeIntervalSinceReferenceDate
            }
        }
        else if t == URL.self {
            w.pointee.writeHead(major: 6, argument: 32)
            w.pointee.writeText(unsafeBitCast(value, to: URL.self).absoluteString)
        }
        else if t == UUID.self {
            w.pointee.writeHead(major: 6, argument: 37)
            withUnsafeBytes(of: unsafeBitCast(value, to: UUID.self).uuid) { w.pointee.writeByteString($0) }
        }
        else if t == Decimal.self { CBORSpecial.writeDecimal(unsafeBitCast(value, to: Decimal.self), to: &w.pointee) }
        else if t == CBOR.self { unsafeBitCast(value, to: CBOR.self).write(to: &w.pointee, deterministic: deterministic) }
        // Collections (one pointer wide) of scalars: the count is known, so no container or head patching.
        else if MemoryLayout<T>.size != MemoryLayout<[Int]>.size { return false }
        else if t == _CBORKnownTypes.intArray { writeArray(unsafeBitCast(value, to: [Int].self)) { $0.writeInt(Int64($1)) } }
        else if t == _CBORKnownTypes.stringArray { writeArray(unsafeBitCast(value, to: [String].self)) { $0.writeString($1) } }
        else if t == _CBORKnownTypes.doubleArray { writeArray(unsafeBitCast(value, to: [Double].self)) { $0.writeDouble($1) } }
        else if t == _CBORKnownTypes.boolArray { writeArray(unsafeBitCast(value, to: [Bool].self)) { $0.writeBool($1) } }
        else if t == _CBORKnownTypes.uint8Array { writeArray(unsafeBitCast(value, to: [UInt8].self)) { $0.writeUInt(UInt64($1)) } }
        else if t == _CBORKnownTypes.int64Array { writeArray(unsafeBitCast(value, to: [Int64].self)) { $0.writeInt($1) } }
        else if t == _CBORKnownTypes.uint64Array { writeArray(unsafeBitCast(value, to: [UInt64].self)) { $0.writeUInt($1) } }
        else if t == _CBORKnownTypes.floatArray { writeArray(unsafeBitCast(value, to: [Float].self)) { $0.writeFloat($1) } }
        // String-keyed dictionaries of scalars: text keys, no container box per dictionary.
        else if t == _CBORKnownTypes.stringToString { writeMap(unsafeBitCast(value, to: [String: String].self)) { $0.writeString($1) } }
        else if t == _CBORKnownTypes.stringToInt { writeMap(unsafeBitCast(value, to: [String: Int].self)) { $0.writeInt(Int64($1)) } }
        else if t == _CBORKnownTypes.stringToBool { writeMap(unsafeBitCast(value, to: [String: Bool].self)) { $0.writeBool($1) } }
        else if t == _CBORKnownTypes.stringToDouble { writeMap(unsafeBitCast(value, to: [String: Double].self)) { $0.writeDouble($1) } }
        else { return false }
        return true
    }
}

extension _CBOREncoder {
    /// Writes a text-keyed map (sorted in deterministic mode) with `element` writing each value.
    func writeMap<V>(_ map: [String: V], _ element: (inout CBORWriter, V) -> Void) {
        w.pointee.writeHead(major: 5, argument: UInt64(map.count))
        let contentStart = w.pointee.count
        for (k, v) in map {
            w.pointee.writeString(k)
            element(&w.pointee, v)
        }
        if deterministic && map.count > 1 { _ = sortMapEntries(contentStart: contentStart, count: map.count) }
    }

    /// Writes an array head and each element with `element`.
    @inline(__always)
    func writeArray<E>(_ array: [E], _ element: (inout CBORWriter, E) -> Void) {
        w.pointee.writeHead(major: 4, argument: UInt64(array.count))
        for e in array { element(&w.pointee, e) }
    }
}

/// Compares `raw[a0..<a1]` with `raw[b0..<b1]` bytewise (shorter first on a common prefix).
func compareBytes(_ raw: UnsafeRawBufferPointer, _ a0: Int, _ a1: Int, _ b0: Int, _ b1: Int) -> Int {
    let la = a1 &- a0, lb = b1 &- b0
    let n = min(la, lb)
    if n > 0, let base = raw.baseAddress {
        let c = memcmp(base + a0, base + b0, n)
        if c != 0 { return Int(c) }
    }
    return la == lb ? 0 : (la < lb ? -1 : 1)
}

/// A keyed container of ``CBOREncoder``: writes each key and value straight into the buffer.
struct _CBORKeyedEncodingContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let encoder: _CBOREncoder
    let ref: _CBORFrameRef
    let depth: Int

    var codingPath: [any CodingKey] { encoder.path(depth: depth) }

    @inline(__always)
    private func begin(_ key: Key) throws -> UnsafeMutablePointer<CBORWriter> {
        try encoder.prepare(ref)
        encoder.writeKey(key, frame: Int(ref.index))
        return encoder.w
    }

    mutating func encodeNil(forKey key: Key) throws { try begin(key).pointee.writeNull() }
    mutating func encode(_ value: Bool, forKey key: Key) throws { try begin(key).pointee.writeBool(value) }
    mutating func encode(_ value: String, forKey key: Key) throws { try begin(key).pointee.writeString(value) }
    mutating func encode(_ value: Double, forKey key: Key) throws { try begin(key).pointee.writeDouble(value) }
    mutating func encode(_ value: Float, forKey key: Key) throws { try begin(key).pointee.writeFloat(value) }
    mutating func encode(_ value: Int, forKey key: Key) throws { try begin(key).pointee.writeInt(Int64(value)) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try begin(key).pointee.writeInt(Int64(value)) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try begin(key).pointee.writeInt(Int64(value)) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try begin(key).pointee.writeInt(Int64(value)) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try begin(key).pointee.writeInt(value) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try begin(key).pointee.writeUInt(UInt64(value)) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try begin(key).pointee.writeUInt(UInt64(value)) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try begin(key).pointee.writeUInt(UInt64(value)) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try begin(key).pointee.writeUInt(UInt64(value)) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try begin(key).pointee.writeUInt(value) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try encoder.prepare(ref)
        let s = encoder.s
        let mark = s.pointee.writer.count
        encoder.writeKey(key, frame: Int(ref.index))
        do {
            try encoder.encodeValue(value, key: key, push: true)
        } catch {
            // Undo the entry so a caller that catches the error leaves a well-formed map.
            s.pointee.writer.truncate(to: mark)
            s.pointee.frames[Int(ref.index)].count &-= 1
            throw error
        }
    }

    /// Writes `key` and opens a nested frame for its value (or records why it cannot).
    private func openNested(_ key: Key, kind: _CBORFrame.Kind) -> (_CBORFrameRef, Int) {
        do {
            try encoder.prepare(ref)
        } catch {
            encoder.record(error)
            return (.invalid, depth &+ 1)
        }
        encoder.writeKey(key, frame: Int(ref.index))
        return encoder.pushNested(kind, key: key)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let (r, d) = openNested(key, kind: .map)
        return KeyedEncodingContainer(_CBORKeyedEncodingContainer<NestedKey>(encoder: encoder, ref: r, depth: d))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let (r, d) = openNested(key, kind: .array)
        return _CBORUnkeyedEncodingContainer(encoder: encoder, ref: r, depth: d)
    }

    mutating func superEncoder() -> any Encoder {
        do {
            try encoder.prepare(ref)
        } catch {
            encoder.record(error)
            return _CBORSlotEncoder(encoder: encoder, ref: .invalid, depth: depth &+ 1)
        }
        let s = encoder.s
        s.pointee.frames[Int(ref.index)].count &+= 1
        s.pointee.writer.writeText("super")
        let (r, d) = encoder.pushNested(.slot, key: _CBORKey.super)
        return _CBORSlotEncoder(encoder: encoder, ref: r, depth: d)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        let (r, d) = openNested(key, kind: .slot)
        return _CBORSlotEncoder(encoder: encoder, ref: r, depth: d)
    }
}

/// The primitive `encode(_:)` overloads shared by the unkeyed and single-value
/// containers: each checks the container with `begin()` and writes the value.
protocol _CBORPrimitiveEncoding {
    /// Readies the container for one more value and returns the writer.
    func begin() throws -> UnsafeMutablePointer<CBORWriter>
}

extension _CBORPrimitiveEncoding {
    @inline(__always) mutating func encodeNil() throws { try begin().pointee.writeNull() }
    @inline(__always) mutating func encode(_ value: Bool) throws { try begin().pointee.writeBool(value) }
    @inline(__always) mutating func encode(_ value: String) throws { try begin().pointee.writeString(value) }
    @inline(__always) mutating func encode(_ value: Double) throws { try begin().pointee.writeDouble(value) }
    @inline(__always) mutating func encode(_ value: Float) throws { try begin().pointee.writeFloat(value) }
    @inline(__always) mutating func encode(_ value: Int) throws { try begin().pointee.writeInt(Int64(value)) }
    @inline(__always) mutating func encode(_ value: Int8) throws { try begin().pointee.writeInt(Int64(value)) }
    @inline(__always) mutating func encode(_ value: Int16) throws { try begin().pointee.writeInt(Int64(value)) }
    @inline(__always) mutating func encode(_ value: Int32) throws { try begin().pointee.writeInt(Int64(value)) }
    @inline(__always) mutating func encode(_ value: Int64) throws { try begin().pointee.writeInt(value) }
    @inline(__always) mutating func encode(_ value: UInt) throws { try begin().pointee.writeUInt(UInt64(value)) }
    @inline(__always) mutating func encode(_ value: UInt8) throws { try begin().pointee.writeUInt(UInt64(value)) }
    @inline(__always) mutating func encode(_ value: UInt16) throws { try begin().pointee.writeUInt(UInt64(value)) }
    @inline(__always) mutating func encode(_ value: UInt32) throws { try begin().pointee.writeUInt(UInt64(value)) }
    @inline(__always) mutating func encode(_ value: UInt64) throws { try begin().pointee.writeUInt(value) }
}

/// An unkeyed container of ``CBOREncoder``: writes each element straight into the buffer.
struct _CBORUnkeyedEncodingContainer: UnkeyedEncodingContainer, _CBORPrimitiveEncoding {
    let encoder: _CBOREncoder
    let ref: _CBORFrameRef
    let depth: Int

    var codingPath: [any CodingKey] { encoder.path(depth: depth) }

    var count: Int {
        let s = encoder.s
        let index = Int(ref.index)
        guard index >= 0, index < s.pointee.frameCount, s.pointee.frames[index].id == ref.id else { return 0 }
        return s.pointee.frames[index].count
    }

    @inline(__always)
    func begin() throws -> UnsafeMutablePointer<CBORWriter> {
        try encoder.prepare(ref)
        encoder.s.pointee.frames[Int(ref.index)].count &+= 1
        return encoder.w
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try encoder.prepare(ref)
        let s = encoder.s
        let index = Int(ref.index)
        let mark = s.pointee.writer.count
        let position = s.pointee.frames[index].count
        s.pointee.frames[index].count &+= 1
        do {
            try encoder.encodeValue(value, key: _CBORIndexKey(position), push: true)
        } catch {
            s.pointee.writer.truncate(to: mark)
            s.pointee.frames[index].count &-= 1
            throw error
        }
    }

    /// Counts a new element and opens a nested frame for it (or records why it cannot).
    private func openNested(kind: _CBORFrame.Kind) -> (_CBORFrameRef, Int) {
        let key = _CBORIndexKey(count)
        do {
            try encoder.prepare(ref)
        } catch {
            encoder.record(error)
            return (.invalid, depth &+ 1)
        }
        encoder.s.pointee.frames[Int(ref.index)].count &+= 1
        return encoder.pushNested(kind, key: key)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let (r, d) = openNested(kind: .map)
        return KeyedEncodingContainer(_CBORKeyedEncodingContainer<NestedKey>(encoder: encoder, ref: r, depth: d))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let (r, d) = openNested(kind: .array)
        return _CBORUnkeyedEncodingContainer(encoder: encoder, ref: r, depth: d)
    }

    mutating func superEncoder() -> any Encoder {
        let (r, d) = openNested(kind: .slot)
        return _CBORSlotEncoder(encoder: encoder, ref: r, depth: d)
    }
}

/// The single-value container of ``CBOREncoder``: writes the value at the start of its slot.
struct _CBORSingleValueEncodingContainer: SingleValueEncodingContainer, _CBORPrimitiveEncoding {
    let encoder: _CBOREncoder
    /// Frame index where containers of this value would start.
    let base: Int32
    /// Offset where the value starts.
    let start: Int
    let depth: Int

    var codingPath: [any CodingKey] { encoder.path(depth: depth) }

    @inline(__always)
    func begin() throws -> UnsafeMutablePointer<CBORWriter> {
        let s = encoder.s
        guard s.pointee.writer.count == start, s.pointee.frameCount == Int(base) else {
            throw EncodingError.invalidValue((), EncodingError.Context(codingPath: codingPath, debugDescription: "CBOREncoder: a single value container was asked to encode a second value, or its value already has a container"))
        }
        return encoder.w
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        _ = try begin()
        let s = encoder.s
        let savedBase = s.pointee.slotBase, savedStart = s.pointee.slotStart
        s.pointee.slotBase = Int(base)
        s.pointee.slotStart = start
        defer { s.pointee.slotBase = savedBase; s.pointee.slotStart = savedStart }
        try encoder.encodeValue(value, key: _CBORIndexKey(0), push: false)
    }
}

/// The `Encoder` returned by `superEncoder()`: its value fills a slot frame of the main encoder.
final class _CBORSlotEncoder: Encoder {
    let encoder: _CBOREncoder
    let ref: _CBORFrameRef
    let depth: Int
    var userInfo: [CodingUserInfoKey: Any] { encoder.userInfo }
    var codingPath: [any CodingKey] { encoder.path(depth: depth) }

    init(encoder: _CBOREncoder, ref: _CBORFrameRef, depth: Int) {
        self.encoder = encoder
        self.ref = ref
        self.depth = depth
    }

    /// Whether the slot is still open; records a pending error if not.
    private func check() -> Bool {
        do {
            try encoder.prepare(ref)
            return true
        } catch {
            encoder.record(error)
            return false
        }
    }

    private var slotStart: Int { encoder.s.pointee.frames[Int(ref.index)].start }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        guard check() else {
            return KeyedEncodingContainer(_CBORKeyedEncodingContainer<Key>(encoder: encoder, ref: .invalid, depth: depth))
        }
        let r = encoder.openContainer(isMap: true, base: Int(ref.index) &+ 1, start: slotStart)
        return KeyedEncodingContainer(_CBORKeyedEncodingContainer<Key>(encoder: encoder, ref: r, depth: depth))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        guard check() else {
            return _CBORUnkeyedEncodingContainer(encoder: encoder, ref: .invalid, depth: depth)
        }
        let r = encoder.openContainer(isMap: false, base: Int(ref.index) &+ 1, start: slotStart)
        return _CBORUnkeyedEncodingContainer(encoder: encoder, ref: r, depth: depth)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        guard check() else {
            return _CBORSingleValueEncodingContainer(encoder: encoder, base: -1, start: -1, depth: depth)
        }
        return _CBORSingleValueEncodingContainer(encoder: encoder, base: ref.index &+ 1, start: slotStart, depth: depth)
    }
}
