/// A problem found while reading CBOR bytes: what was wrong and at which byte offset.
///
/// The reader has no coding path; `CBORDecoder` and `CBOR.init(decoding:)` turn
/// this into a `DecodingError` that carries one.
// @unchecked Sendable: `type` is an `Any.Type` metatype, which is immutable and safe to
// share; every other field is a value.
struct CBORReadError: Error, @unchecked Sendable {
    /// Which `DecodingError` case this becomes.
    enum Kind: Sendable { case corrupted, typeMismatch, valueNotFound }

    var kind: Kind
    var offset: Int
    var message: String
    /// The Swift type that was asked for (typeMismatch, valueNotFound).
    var type: Any.Type

    init(_ kind: Kind = .corrupted, at offset: Int, _ message: String, type: Any.Type = Any.self) {
        self.kind = kind
        self.offset = offset
        self.message = message
        self.type = type
    }

    /// The message with the byte offset, as a `DecodingError` debug description.
    var description: String { "\(message) (at byte offset \(offset))" }

    /// The `DecodingError` for this problem at `codingPath`.
    func decodingError(_ codingPath: [any CodingKey]) -> DecodingError {
        let context = DecodingError.Context(codingPath: codingPath, debugDescription: description)
        switch kind {
        case .corrupted: return .dataCorrupted(context)
        case .typeMismatch: return .typeMismatch(type, context)
        case .valueNotFound: return .valueNotFound(type, context)
        }
    }

    /// The `DecodingError` at `codingPath`, naming `requested` when the reader named no type.
    func decodingError(_ codingPath: [any CodingKey], requested: Any.Type) -> DecodingError {
        var e = self
        if e.type == Any.self { e.type = requested }
        return e.decodingError(codingPath)
    }
}

/// The initial byte and argument of a CBOR data item (RFC 8949 §3).
struct CBORHead {
    /// Major type, 0...7.
    var major: UInt8
    /// Additional information, 0...27 or 31 (28...30 never get here).
    var info: UInt8
    /// The argument: the value, length, count, tag number or float bits.
    var argument: UInt64
    /// Offset of the first byte after the head.
    var next: Int

    var isIndefinite: Bool { info == 31 }

    
    init(major: UInt8, info: UInt8, argument: UInt64, next: Int) {
        self.major = major
        self.info = info
        self.argument = argument
        self.next = next
    }
}

/// The names of the major types, for error messages.
func cborMajorName(_ major: UInt8) -> String {
    switch major {
    case 0: return "an unsigned integer"
    case 1: return "a negative integer"
    case 2: return "a byte string"
    case 3: return "a text string"
    case 4: return "an array"
    case 5: return "a map"
    case 6: return "a tag"
    default: return "a simple value or float"
    }
}

/// Reads CBOR heads and skips whole data items in memory the caller owns.
///
/// Every read is bounds-checked against `count`, every length is compared with the
/// bytes that remain before anything is allocated, and all arithmetic on offsets
/// is overflow-free (a length above `Int.max` is an error, not a trap). The reader
/// never copies the input.
struct CBORReader {
    let base: UnsafeRawPointer?
    let count: Int
    /// The recorded ends of the input's larger arrays and maps (see ``CBORContainerEnds``), when
    /// the decoder made them; `skipChecked(at:)` uses them.
    var ends: UnsafePointer<Int>? = nil
    #if DEBUG
    /// Counts every head read, when set: the tests' measure of decoding work.
    var headsRead: UnsafeMutablePointer<Int>? = nil
    #endif

    
    init(_ buffer: UnsafeRawBufferPointer) {
        self.base = buffer.baseAddress
        self.count = buffer.count
    }

    /// The byte at `offset`; the caller has checked `offset < count`.
    @inline(__always)
    func byte(_ offset: Int) -> UInt8 {
        base.unsafelyUnwrapped.load(fromByteOffset: offset, as: UInt8.self)
    }

    /// The bytes `start..<start+length`; the caller has checked the range.
    @inline(__always)
    func slice(_ start: Int, _ length: Int) -> UnsafeRawBufferPointer {
        guard length > 0, let base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + start, count: length)
    }

    /// Reads the head at `offset`; throws on truncation and reserved additional information.
    @inline(__always)
    func head(at offset: Int) throws(CBORReadError) -> CBORHead {
        #if DEBUG
        if let headsRead { headsRead.pointee &+= 1 }
        #endif
        guard offset < count else {
            throw CBORReadError(at: offset, "unexpected end of input: expected a data item")
        }
        let initial = byte(offset)
        let major = initial &>> 5
        let info = initial & 0x1F
        if info < 24 {
            return CBORHead(major: major, info: info, argument: UInt64(info), next: offset &+ 1)
        }
        if info < 28 {
            let size = 1 &<< Int(info &- 24)
            guard count &- offset &- 1 >= size else { throw truncatedHead(offset, size, count &- offset &- 1) }
            let p = base.unsafelyUnwrapped + (offset &+ 1)
            let argument: UInt64
            switch info {
            case 24: argument = UInt64(p.load(as: UInt8.self))
            case 25: argument = UInt64(UInt16(bigEndian: p.loadUnaligned(as: UInt16.self)))
            case 26: argument = UInt64(UInt32(bigEndian: p.loadUnaligned(as: UInt32.self)))
            default: argument = UInt64(bigEndian: p.loadUnaligned(as: UInt64.self))
            }
            if major == 7 && info == 24 && argument < 32 { throw badSimple(offset, argument) }
            return CBORHead(major: major, info: info, argument: argument, next: offset &+ 1 &+ size)
        }
        return try specialHead(at: offset, major: major, info: info)
    }

    func badSimple(_ offset: Int, _ value: UInt64) -> CBORReadError {
        CBORReadError(at: offset, "simple value \(value) in a two-byte encoding is not well-formed (values below 32 use the one-byte form)")
    }

    /// Heads with additional information 28...31: reserved values, or an indefinite length.
    func specialHead(at offset: Int, major: UInt8, info: UInt8) throws(CBORReadError) -> CBORHead {
        if info == 31 {
            switch major {
            case 0, 1, 6:
                throw CBORReadError(at: offset, "additional information 31 (indefinite length) is not allowed for \(cborMajorName(major)) (initial byte 0x\(hexByte(major &<< 5 | info)))")
            default:
                return CBORHead(major: major, info: info, argument: 0, next: offset &+ 1)
            }
        }
        throw CBORReadError(at: offset, "reserved additional information value \(info) (initial byte 0x\(hexByte(major &<< 5 | info))) is not well-formed")
    }

    func truncatedHead(_ offset: Int, _ needed: Int, _ remaining: Int) -> CBORReadError {
        CBORReadError(at: offset, "unexpected end of input: the head needs \(needed) more byte\(needed == 1 ? "" : "s") but only \(max(remaining, 0)) remain")
    }

    /// The end offset of a definite string whose head is `head`, checking the length against the input.
    @inline(__always)
    func stringEnd(_ head: CBORHead, at offset: Int) throws(CBORReadError) -> Int {
        let remaining = count &- head.next
        guard head.argument <= UInt64(remaining) else {
            throw CBORReadError(at: offset, "\(cborMajorName(head.major)) of length \(head.argument) is longer than the \(remaining) bytes that remain")
        }
        return head.next &+ Int(truncatingIfNeeded: head.argument)
    }

    /// Whether another element of the array or map with head `h` follows at `position`,
    /// counting it off `remaining` (which starts at the count, or `Int.max` for an
    /// indefinite length, whose break is stepped over here). `start` is the item's offset.
    @inline(__always)
    func nextElement(of h: CBORHead, at position: inout Int, remaining: inout Int, start: Int) throws(CBORReadError) -> Bool {
        guard remaining > 0 else { return false }
        if h.isIndefinite {
            guard position < count else {
                throw CBORReadError(at: position, "unexpected end of input: indefinite-length \(h.major == 4 ? "array" : "map") starting at byte offset \(start) has no break")
            }
            if byte(position) == 0xFF { position &+= 1; return false }
        }
        remaining &-= 1
        return true
    }

    /// Checks that a definite array or map of `head.argument` entries can fit in the remaining input.
    @inline(__always)
    func checkedCount(_ head: CBORHead, at offset: Int) throws(CBORReadError) -> Int {
        let remaining = UInt64(count &- head.next)
        // Each array element takes at least one byte, each map entry at least two.
        let perEntry: UInt64 = head.major == 5 ? 2 : 1
        guard head.argument <= remaining / perEntry else {
            throw CBORReadError(at: offset, "\(cborMajorName(head.major)) of \(head.argument) \(head.major == 5 ? "entries" : "elements") cannot fit in the \(remaining) bytes that remain")
        }
        return Int(truncatingIfNeeded: head.argument)
    }

    /// Skips one well-formed data item at `offset` and returns the offset after it.
    ///
    /// Checks everything that makes an item well-formed (RFC 8949 §3 and Appendix C):
    /// heads, lengths against the input, indefinite-length string chunks, break
    /// placement, and nesting no deeper than `maxDepth` arrays, maps and tags.
    /// With `validatingUTF8` it also checks that every text string (and every chunk
    /// of an indefinite-length one) is valid UTF-8; `CBORDecoder` does that once for
    /// the whole input before decoding, so unused text is checked too.
    func skip(at offset: Int, depth: Int, maxDepth: Int, validatingUTF8: Bool = false) throws(CBORReadError) -> Int {
        let h = try head(at: offset)
        switch h.major {
        case 0, 1:
            return h.next
        case 2, 3:
            if h.isIndefinite { return try skipIndefiniteString(h, at: offset, validatingUTF8: validatingUTF8) }
            let end = try stringEnd(h, at: offset)
            if validatingUTF8 && h.major == 3 && end &- h.next > 0 {
                guard isValidText(h.next, end &- h.next) else {
                    throw CBORReadError(at: offset, "text string is not valid UTF-8")
                }
            }
            return end
        case 4, 5:
            guard depth < maxDepth else { throw tooDeep(offset, maxDepth) }
            var position = h.next
            if h.isIndefinite {
                var items = 0
                while true {
                    guard position < count else {
                        throw CBORReadError(at: position, "unexpected end of input: indefinite-length \(h.major == 4 ? "array" : "map") starting at byte offset \(offset) has no break")
                    }
                    if byte(position) == 0xFF {
                        if h.major == 5 && items & 1 == 1 {
                            throw CBORReadError(at: position, "break inside an indefinite-length map after a key without a value")
                        }
                        return position &+ 1
                    }
                    position = try skip(at: position, depth: depth &+ 1, maxDepth: maxDepth, validatingUTF8: validatingUTF8)
                    items &+= 1
                }
            }
            var n = try checkedCount(h, at: offset)
            if h.major == 5 { n &*= 2 }
            while n > 0 {
                position = try skip(at: position, depth: depth &+ 1, maxDepth: maxDepth, validatingUTF8: validatingUTF8)
                n &-= 1
            }
            return position
        case 6:
            guard depth < maxDepth else { throw tooDeep(offset, maxDepth) }
            return try skip(at: h.next, depth: depth &+ 1, maxDepth: maxDepth, validatingUTF8: validatingUTF8)
        default:
            if h.isIndefinite {
                throw CBORReadError(at: offset, "unexpected break code (0xff) outside an indefinite-length item")
            }
            return h.next
        }
    }

    /// Checks that the input from `offset` holds one well-formed data item with valid UTF-8
    /// text and nesting no deeper than `maxDepth`; returns the offset after it.
    ///
    /// The same checks as ``skip(at:depth:maxDepth:validatingUTF8:)`` with `validatingUTF8`,
    /// done without recursion: a stack (on the call stack for up to 15 levels) holds
    /// what remains of each open array, map and tag.
    func validate(at offset: Int, maxDepth: Int) throws(CBORReadError) -> Int {
        // Depth can exceed neither maxDepth nor the input length (each level takes a byte).
        // Most items nest less than 16 deep: try with a stack on the call stack first.
        var storage: (Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let shallow = try withUnsafeMutablePointer(to: &storage) { tuple throws(CBORReadError) in
            var none = CBORNoRecorder()
            return try validate(at: offset, maxDepth: maxDepth, stack: UnsafeMutableRawPointer(tuple).assumingMemoryBound(to: Int.self), capacity: 16, recorder: &none)
        }
        if shallow >= 0 { return shallow }
        let capacity = validationLevels(at: offset, maxDepth: maxDepth)
        let stack = UnsafeMutablePointer<Int>.allocate(capacity: capacity)
        defer { stack.deallocate() }
        var none = CBORNoRecorder()
        return try validate(at: offset, maxDepth: maxDepth, stack: stack, capacity: capacity, recorder: &none)
    }

    /// Validates like ``validate(at:maxDepth:)`` and records the ends of the larger arrays and
    /// maps in `ends`, which must have been made for ``validationLevels(at:maxDepth:)`` levels.
    func validate(at offset: Int, maxDepth: Int, recordingIn ends: inout CBORContainerEnds) throws(CBORReadError) -> Int {
        let capacity = validationLevels(at: offset, maxDepth: maxDepth)
        let stack = UnsafeMutablePointer<Int>.allocate(capacity: capacity)
        defer { stack.deallocate() }
        return try validate(at: offset, maxDepth: maxDepth, stack: stack, capacity: capacity, recorder: &ends)
    }

    /// The most nesting levels validation can meet: neither more than `maxDepth` nor than the
    /// input has bytes (each level takes one).
    func validationLevels(at offset: Int, maxDepth: Int) -> Int {
        max(1, min(maxDepth, count &- offset) &+ 1)
    }

    /// Stack entries: a positive count of items left in a definite array, map or tag;
    /// `indefiniteArray`, or `indefiniteMapKey`/`indefiniteMapValue` for what an
    /// indefinite-length map expects next.
    private static let indefiniteArray = -1
    private static let indefiniteMapKey = -2
    private static let indefiniteMapValue = -3

    /// Returns -1 when the nesting needs more than `capacity` stack entries. `recorder` hears
    /// of every array, map and tag that opens and closes.
    private func validate<R: CBORValidationRecorder>(at offset: Int, maxDepth: Int, stack: UnsafeMutablePointer<Int>, capacity: Int, recorder: inout R) throws(CBORReadError) -> Int {
        var depth = 0
        var position = offset
        while true {
            // An indefinite-length container may end here.
            if depth > 0 && stack[depth &- 1] < 0 {
                guard position < count else {
                    throw CBORReadError(at: position, "unexpected end of input: an indefinite-length \(stack[depth &- 1] == CBORReader.indefiniteArray ? "array" : "map") has no break")
                }
                if byte(position) == 0xFF {
                    if stack[depth &- 1] == CBORReader.indefiniteMapValue {
                        throw CBORReadError(at: position, "break inside an indefinite-length map after a key without a value")
                    }
                    position &+= 1
                    depth &-= 1
                    recorder.close(level: depth, end: position)
                    if let end = complete(&depth, stack, position, &recorder) { return end }
                    continue
                }
            }
            let h = try head(at: position)
            switch h.major {
            case 0, 1:
                position = h.next
            case 2, 3:
                if h.isIndefinite {
                    position = try skipIndefiniteString(h, at: position, validatingUTF8: true)
                } else {
                    let end = try stringEnd(h, at: position)
                    if h.major == 3 && end > h.next && !isValidText(h.next, end &- h.next) {
                        throw CBORReadError(at: position, "text string is not valid UTF-8")
                    }
                    position = end
                }
            case 4, 5, 6:
                guard depth < maxDepth else { throw tooDeep(position, maxDepth) }
                if depth == capacity { return -1 }
                if h.isIndefinite {
                    stack[depth] = h.major == 4 ? CBORReader.indefiniteArray : CBORReader.indefiniteMapKey
                    recorder.open(position, level: depth, isTag: false)
                    depth &+= 1
                    position = h.next
                    continue
                }
                let n = h.major == 6 ? 1 : try checkedCount(h, at: position)
                let items = h.major == 5 ? n &* 2 : n
                if items > 0 {
                    stack[depth] = items
                    recorder.open(position, level: depth, isTag: h.major == 6)
                    depth &+= 1
                    position = h.next
                    continue
                }
                position = h.next
            default:
                if h.isIndefinite {
                    throw CBORReadError(at: position, "unexpected break code (0xff) outside an indefinite-length item")
                }
                position = h.next
            }
            if let end = complete(&depth, stack, position, &recorder) { return end }
        }
    }

    /// Records that an item ended at `position`: closes finished containers; returns
    /// `position` when the top-level item is complete.
    @inline(__always)
    private func complete<R: CBORValidationRecorder>(_ depth: inout Int, _ stack: UnsafeMutablePointer<Int>, _ position: Int, _ recorder: inout R) -> Int? {
        while depth > 0 {
            let top = stack[depth &- 1]
            if top > 1 {
                stack[depth &- 1] = top &- 1
                return nil
            }
            if top == 1 {
                depth &-= 1
                recorder.close(level: depth, end: position)
                continue
            }
            if top == CBORReader.indefiniteMapKey { stack[depth &- 1] = CBORReader.indefiniteMapValue }
            else if top == CBORReader.indefiniteMapValue { stack[depth &- 1] = CBORReader.indefiniteMapKey }
            return nil
        }
        return position
    }

    /// Skips one item of input that `validate(at:maxDepth:)` has already checked, without recursion.
    ///
    /// Keeps a count of the items still to skip instead of recursing into arrays, maps and
    /// tags, and for each open indefinite-length array or map the count outside it. An array
    /// or map whose end was recorded in ``ends`` is stepped over in one lookup. Still
    /// bounds-checked: on unchecked input it throws instead of reading out of bounds (it does
    /// not check everything validation does, such as an indefinite map's even item count).
    func skipChecked(at offset: Int) throws(CBORReadError) -> Int {
        var position = offset
        var pending = 1
        // For each open indefinite-length array or map, the items pending outside it.
        var outside: [Int] = []
        while true {
            if pending == 0 {
                guard let saved = outside.last else { return position }
                guard position < count else {
                    throw CBORReadError(at: position, "unexpected end of input: an indefinite-length array or map has no break")
                }
                if byte(position) == 0xFF {
                    position &+= 1
                    pending = saved
                    outside.removeLast()
                    continue
                }
                pending = 1
            }
            pending &-= 1
            let h = try head(at: position)
            switch h.major {
            case 0, 1:
                position = h.next
            case 2, 3:
                position = h.isIndefinite ? try skipIndefiniteString(h, at: position) : try stringEnd(h, at: position)
            case 4, 5:
                if let ends, let end = CBORContainerEnds.end(of: position, in: ends) {
                    position = end
                } else if h.isIndefinite {
                    outside.append(pending)
                    pending = 0
                    position = h.next
                } else {
                    let n = try checkedCount(h, at: position)
                    pending &+= h.major == 5 ? n &* 2 : n
                    position = h.next
                }
            case 6:
                pending &+= 1
                position = h.next
            default:
                if h.isIndefinite {
                    throw CBORReadError(at: position, "unexpected break code (0xff) outside an indefinite-length item")
                }
                position = h.next
            }
        }
    }

    func tooDeep(_ offset: Int, _ maxDepth: Int) -> CBORReadError {
        CBORReadError(at: offset, "nesting of arrays, maps and tags is deeper than the limit of \(maxDepth)")
    }

    /// Skips the chunks of an indefinite-length string and its break; returns the offset after the break.
    /// Out of line: inlined into `validate` it costs that loop an instruction per item.
    @inline(never)
    func skipIndefiniteString(_ h: CBORHead, at offset: Int, validatingUTF8: Bool = false) throws(CBORReadError) -> Int {
        let checkUTF8 = validatingUTF8 && h.major == 3
        return try forEachIndefiniteChunk(of: h, at: offset) { (chunk, position) throws(CBORReadError) in
            guard checkUTF8, chunk.count > 0 else { return }
            guard isValidUTF8(UnsafeBufferPointer(start: chunk.baseAddress.unsafelyUnwrapped.assumingMemoryBound(to: UInt8.self), count: chunk.count)) else {
                throw CBORReadError(at: position, "chunk of an indefinite-length text string is not valid UTF-8")
            }
        }
    }

    /// Calls `body` with each chunk of the string at `offset` (one for a definite string); returns the end offset.
    func forEachChunk(of h: CBORHead, at offset: Int, _ body: (UnsafeRawBufferPointer) throws(CBORReadError) -> Void) throws(CBORReadError) -> Int {
        if !h.isIndefinite {
            let end = try stringEnd(h, at: offset)
            try body(slice(h.next, end &- h.next))
            return end
        }
        return try forEachIndefiniteChunk(of: h, at: offset) { (chunk, _) throws(CBORReadError) in try body(chunk) }
    }

    /// Checks each chunk of the indefinite-length string at `offset` and calls `body` with its
    /// bytes and the offset of its head; returns the offset after the break.
    func forEachIndefiniteChunk(of h: CBORHead, at offset: Int, _ body: (UnsafeRawBufferPointer, Int) throws(CBORReadError) -> Void) throws(CBORReadError) -> Int {
        var position = h.next
        while true {
            guard position < count else {
                throw CBORReadError(at: position, "unexpected end of input: indefinite-length \(h.major == 2 ? "byte" : "text") string starting at byte offset \(offset) has no break")
            }
            if byte(position) == 0xFF { return position &+ 1 }
            let chunk = try head(at: position)
            guard chunk.major == h.major, !chunk.isIndefinite else {
                let what = chunk.major == h.major ? "a nested indefinite-length string" : cborMajorName(chunk.major)
                throw CBORReadError(at: position, "chunk of an indefinite-length \(h.major == 2 ? "byte" : "text") string is \(what); chunks must be definite-length strings of the same major type")
            }
            let end = try stringEnd(chunk, at: position)
            try body(slice(chunk.next, end &- chunk.next), position)
            position = end
        }
    }

    /// Reads the string at `offset` (definite or indefinite) into a byte array; returns it and the end offset.
    func readBytes(_ h: CBORHead, at offset: Int) throws(CBORReadError) -> ([UInt8], Int) {
        if !h.isIndefinite {
            let end = try stringEnd(h, at: offset)
            return (Array(slice(h.next, end &- h.next)), end)
        }
        var result: [UInt8] = []
        let end = try forEachChunk(of: h, at: offset) { chunk in result.append(contentsOf: chunk) }
        return (result, end)
    }

    /// Reads the text string at `offset` with UTF-8 validation; returns it and the end offset.
    func readText(_ h: CBORHead, at offset: Int) throws(CBORReadError) -> (String, Int) {
        if !h.isIndefinite {
            let end = try stringEnd(h, at: offset)
            guard let s = makeString(slice(h.next, end &- h.next)) else {
                throw CBORReadError(at: offset, "text string is not valid UTF-8")
            }
            return (s, end)
        }
        // RFC 8949 §3.2.3: each chunk must itself be valid UTF-8.
        var result = ""
        let end = try forEachChunk(of: h, at: offset) { chunk throws(CBORReadError) in
            guard let s = makeString(chunk) else {
                throw CBORReadError(at: offset, "chunk of an indefinite-length text string is not valid UTF-8")
            }
            result += s
        }
        return (result, end)
    }

    /// A String from UTF-8 bytes, or nil when they are not valid UTF-8.
    @inline(__always)
    func makeString(_ raw: UnsafeRawBufferPointer) -> String? {
        if raw.isEmpty { return "" }
        let bytes = raw.assumingMemoryBound(to: UInt8.self)
        guard isValidUTF8(bytes) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Whether `length` bytes at `start` are valid UTF-8, with an ASCII fast path that reads
    /// whole words (a short tail is read as one masked word when the input extends past it).
    @inline(__always)
    func isValidText(_ start: Int, _ length: Int) -> Bool {
        let base = self.base.unsafelyUnwrapped
        var i = start
        let end = start &+ length
        while end &- i >= 8 {
            if base.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 {
                return isValidUTF8(UnsafeBufferPointer(start: base.assumingMemoryBound(to: UInt8.self) + i, count: end &- i))
            }
            i &+= 8
        }
        let rest = end &- i
        if rest == 0 { return true }
        if i &+ 8 <= count {
            let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            let mask: UInt64 = (1 &<< UInt64(rest &* 8)) &- 1
            if word & mask & 0x8080_8080_8080_8080 == 0 { return true }
        }
        return isValidUTF8(UnsafeBufferPointer(start: base.assumingMemoryBound(to: UInt8.self) + i, count: rest))
    }

    /// Skips any tags at `offset` and returns the head of the tagged content (and its offset).
    func untaggedHead(at offset: Int) throws(CBORReadError) -> (CBORHead, Int) {
        var position = offset
        var h = try head(at: position)
        while h.major == 6 {
            position = h.next
            h = try head(at: position)
        }
        return (h, position)
    }
}

/// Two lowercase hex digits of a byte.
func hexByte(_ byte: UInt8) -> String {
    let digits: [Character] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f"]
    return String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
}

/// Whether `bytes` is well-formed UTF-8 (Unicode Table 3-7: no overlong forms, no surrogates, at most U+10FFFF).
func isValidUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
    guard let base = bytes.baseAddress else { return true }
    let n = bytes.count
    var i = 0
    // ASCII, eight bytes at a time, then the tail at once.
    while i &+ 8 <= n {
        if UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { break }
        i &+= 8
    }
    if i &+ 8 > n {
        var high: UInt8 = 0
        var j = i
        while j < n { high |= base[j]; j &+= 1 }
        if high < 0x80 { return true }
    }
    while i < n {
        let b0 = base[i]
        if b0 < 0x80 {
            i &+= 1
            continue
        }
        if b0 < 0xC2 { return false }
        if b0 < 0xE0 {
            guard i &+ 1 < n, base[i &+ 1] & 0xC0 == 0x80 else { return false }
            i &+= 2
            continue
        }
        if b0 < 0xF0 {
            guard i &+ 2 < n else { return false }
            let b1 = base[i &+ 1], b2 = base[i &+ 2]
            let low: UInt8 = b0 == 0xE0 ? 0xA0 : 0x80
            let high: UInt8 = b0 == 0xED ? 0x9F : 0xBF
            guard b1 >= low, b1 <= high, b2 & 0xC0 == 0x80 else { return false }
            i &+= 3
            continue
        }
        if b0 < 0xF5 {
            guard i &+ 3 < n else { return false }
            let b1 = base[i &+ 1], b2 = base[i &+ 2], b3 = base[i &+ 3]
            let low: UInt8 = b0 == 0xF0 ? 0x90 : 0x80
            let high: UInt8 = b0 == 0xF4 ? 0x8F : 0xBF
            guard b1 >= low, b1 <= high, b2 & 0xC0 == 0x80, b3 & 0xC0 == 0x80 else { return false }
            i &+= 4
            continue
        }
        return false
    }
    return true
}
