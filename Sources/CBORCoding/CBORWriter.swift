import Foundation

/// Appends CBOR heads, scalars and strings to a growable byte buffer in preferred serialization.
///
/// Every head uses the shortest argument form (RFC 8949 §4.1 and §4.2.1), every
/// float the shortest of half, single and double precision that keeps the value
/// bit for bit (NaN payloads included). The writer never produces indefinite
/// lengths. It is the only place that knows the byte layout of a head, so
/// `CBOREncoder` and `CBOR.encoded(deterministic:)` share it.
///
/// The storage is raw `malloc` memory owned by the writer (so each write is a
/// capacity check and a store, with no copy-on-write or exclusivity checks); the
/// owner must call ``deallocate()`` or hand the memory over with ``takeData()``.
struct CBORWriter {
    var base: UnsafeMutableRawPointer
    var count: Int
    var capacity: Int
    /// Whether ``writeString(_:)`` writes strings in Unicode Normalization Form C.
    var normalizesStrings = false

    init(capacity: Int = 256) {
        let capacity = max(capacity, 16)
        base = malloc(capacity)!
        count = 0
        self.capacity = capacity
    }

    /// Frees the storage; the writer must not be used afterwards.
    func deallocate() { free(base) }

    /// The bytes written so far, copied into an array.
    var bytes: [UInt8] { Array(UnsafeRawBufferPointer(start: base, count: count)) }

    /// The bytes written so far as `Data`; the writer's storage is freed or taken over (it is spent).
    ///
    /// Small outputs are copied (cheaper than a `Data` with a custom deallocator);
    /// large ones hand the buffer over without a copy.
    func takeData() -> Data {
        if count <= 4096 {
            defer { free(base) }
            return Data(bytes: base, count: count)
        }
        return Data(bytesNoCopy: base, count: count, deallocator: .free)
    }

    /// The bytes `range` of the buffer.
    func buffer(_ start: Int, _ end: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + start, count: end &- start)
    }

    @inline(__always)
    mutating func reserve(_ n: Int) {
        if capacity &- count < n { grow(n) }
    }

    mutating func grow(_ n: Int) {
        var newCapacity = capacity &* 2
        while newCapacity &- count < n { newCapacity &*= 2 }
        base = realloc(base, newCapacity)!
        capacity = newCapacity
    }

    @inline(__always)
    mutating func append(_ byte: UInt8) {
        reserve(1)
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count &+= 1
    }

    mutating func append(_ raw: UnsafeRawBufferPointer) {
        guard let source = raw.baseAddress, raw.count > 0 else { return }
        reserve(raw.count)
        (base + count).copyMemory(from: source, byteCount: raw.count)
        count &+= raw.count
    }

    subscript(offset: Int) -> UInt8 {
        get { base.load(fromByteOffset: offset, as: UInt8.self) }
        set { base.storeBytes(of: newValue, toByteOffset: offset, as: UInt8.self) }
    }

    /// Opens a gap of `n` bytes at `offset`, moving what follows.
    mutating func insertGap(_ n: Int, at offset: Int) {
        reserve(n)
        memmove(base + offset + n, base + offset, count &- offset)
        count &+= n
    }

    /// Forgets everything from `offset` on.
    mutating func truncate(to offset: Int) { count = offset }

    /// Writes the head of a data item: major type (0...7) and its argument, shortest form.
    @inline(__always)
    mutating func writeHead(major: UInt8, argument: UInt64) {
        reserve(9)
        count &+= CBOR.writeHead(major: major, argument: argument, to: base + count)
    }

    /// The number of bytes `writeHead` uses for `argument`.
    static func headSize(_ argument: UInt64) -> Int {
        if argument < 24 { return 1 }
        if argument <= 0xFF { return 2 }
        if argument <= 0xFFFF { return 3 }
        if argument <= 0xFFFF_FFFF { return 5 }
        return 9
    }

    /// Writes the head for `argument` at `offset`, which has exactly `headSize(argument)` bytes reserved.
    func patchHead(at offset: Int, major: UInt8, argument: UInt64) {
        _ = CBOR.writeHead(major: major, argument: argument, to: base + offset)
    }

    @inline(__always)
    mutating func writeInt(_ value: Int64) {
        if value >= 0 {
            writeHead(major: 0, argument: UInt64(truncatingIfNeeded: value))
        } else {
            // -1 - value == ~value, never overflows.
            writeHead(major: 1, argument: UInt64(truncatingIfNeeded: ~value))
        }
    }

    @inline(__always)
    mutating func writeUInt(_ value: UInt64) {
        writeHead(major: 0, argument: value)
    }

    
    mutating func writeBool(_ value: Bool) { append(value ? 0xF5 : 0xF4) }

    
    mutating func writeNull() { append(0xF6) }

    /// Writes a string of the value being encoded: as ``writeText(_:)``, in NFC when
    /// ``normalizesStrings`` is set (see ``CBOREncoder/normalizesStringsToNFC``).
    @inline(__always)
    mutating func writeString(_ value: String) {
        if _slowPath(normalizesStrings) {
            writeNormalized(value)
            return
        }
        writeText(value)
    }

    /// Writes `value` in NFC; out of line, so that the usual path inlines one `writeText`.
    @inline(never)
    mutating func writeNormalized(_ value: String) {
        writeText(CBOREncoder.normalizedToNFC(value))
    }

    /// Writes a text string (major type 3) from a Swift string's UTF-8, as it is.
    mutating func writeText(_ value: String) {
        if let done = value.utf8.withContiguousStorageIfAvailable({ utf8 -> Bool in
            writeHead(major: 3, argument: UInt64(utf8.count))
            append(UnsafeRawBufferPointer(utf8))
            return true
        }), done {
            return
        }
        var copy = value
        copy.withUTF8 { utf8 in
            writeHead(major: 3, argument: UInt64(utf8.count))
            append(UnsafeRawBufferPointer(utf8))
        }
    }

    /// Writes a byte string (major type 2).
    mutating func writeByteString(_ raw: UnsafeRawBufferPointer) {
        writeHead(major: 2, argument: UInt64(raw.count))
        append(raw)
    }

    /// Writes a Double in the shortest IEEE 754 width that keeps its exact bits.
    mutating func writeDouble(_ value: Double) {
        reserve(9)
        let p = base + count
        switch CBORFloat.shortest(value) {
        case .half(let h):
            p.storeBytes(of: 0xF9, as: UInt8.self)
            p.storeBytes(of: h.bigEndian, toByteOffset: 1, as: UInt16.self)
            count &+= 3
        case .single(let s):
            p.storeBytes(of: 0xFA, as: UInt8.self)
            p.storeBytes(of: s.bigEndian, toByteOffset: 1, as: UInt32.self)
            count &+= 5
        case .double(let d):
            p.storeBytes(of: 0xFB, as: UInt8.self)
            p.storeBytes(of: d.bigEndian, toByteOffset: 1, as: UInt64.self)
            count &+= 9
        }
    }

    /// Writes a Float in half precision when that keeps its exact bits, else single.
    mutating func writeFloat(_ value: Float) {
        reserve(5)
        let p = base + count
        if let h = CBORFloat.halfBits(exactly: value.bitPattern) {
            p.storeBytes(of: 0xF9, as: UInt8.self)
            p.storeBytes(of: h.bigEndian, toByteOffset: 1, as: UInt16.self)
            count &+= 3
        } else {
            p.storeBytes(of: 0xFA, as: UInt8.self)
            p.storeBytes(of: value.bitPattern.bigEndian, toByteOffset: 1, as: UInt32.self)
            count &+= 5
        }
    }
}
