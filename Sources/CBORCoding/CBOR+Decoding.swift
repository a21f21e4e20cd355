import Foundation

extension CBOR {
    /// Decodes exactly one data item from `bytes`; trailing bytes are an error.
    ///
    /// Accepts every well-formed encoding (RFC 8949 §3): any argument width, half,
    /// single and double floats, indefinite-length strings, arrays and maps, and any
    /// tag (kept as `.tagged`). Throws `DecodingError.dataCorrupted`, whose debug
    /// description names the problem and its byte offset, on truncated input,
    /// reserved additional information (28...30), a misplaced break, a wrong chunk in
    /// an indefinite-length string, invalid UTF-8, a length longer than the input, or
    /// nesting of arrays, maps and tags deeper than `maxDepth`.
    public init(decoding bytes: some Collection<UInt8>, maxDepth: Int = CBORDecoder.defaultMaxDepth) throws {
        if let result = try bytes.withContiguousStorageIfAvailable({ buffer in
            try CBOR(decoding: UnsafeRawBufferPointer(buffer), maxDepth: maxDepth)
        }) {
            self = result
        } else {
            let array = Array(bytes)
            self = try array.withUnsafeBytes { try CBOR(decoding: $0, maxDepth: maxDepth) }
        }
    }

    /// Decodes exactly one data item from `data`; trailing bytes are an error.
    public init(decoding data: Data, maxDepth: Int = CBORDecoder.defaultMaxDepth) throws {
        self = try data.withUnsafeBytes { try CBOR(decoding: $0, maxDepth: maxDepth) }
    }

    /// Decodes exactly one data item from memory the caller owns for the call's duration.
    public init(decoding buffer: UnsafeRawBufferPointer, maxDepth: Int = CBORDecoder.defaultMaxDepth) throws {
        let reader = CBORReader(buffer)
        do throws(CBORReadError) {
            let (item, end) = try CBOR.parse(reader, at: 0, maxDepth: maxDepth)
            guard end == reader.count else {
                throw CBORReadError(at: end, "trailing bytes: the data item ends at byte offset \(end) but the input has \(reader.count) bytes")
            }
            self = item
        } catch {
            throw DecodingError.dataCorrupted(DecodingError.Context(codingPath: [], debugDescription: error.description))
        }
    }

    /// Parses the item at `offset`; returns it and the offset after it.
    ///
    /// Iterative: the arrays, maps and tags still open are kept on a heap stack, so the
    /// nesting depth costs no call stack (nesting deeper than `maxDepth` throws).
    static func parse(_ reader: CBORReader, at offset: Int, maxDepth: Int) throws(CBORReadError) -> (CBOR, Int) {
        var open: [OpenItem] = []
        var position = offset
        while true {
            var value: CBOR? = nil
            if let i = open.indices.last {
                if open[i].head.major == 5 && open[i].key != nil {
                    // The value of the entry whose key was just read.
                    if open[i].head.isIndefinite && position < reader.count && reader.byte(position) == 0xFF {
                        throw CBORReadError(at: position, "break inside an indefinite-length map after a key without a value")
                    }
                } else if open[i].head.major != 6 {
                    if try !reader.nextElement(of: open[i].head, at: &position, remaining: &open[i].remaining, start: open[i].start) {
                        value = open.removeLast().finished
                    }
                }
            }
            if value == nil {
                let h = try reader.head(at: position)
                switch h.major {
                case 4, 5, 6:
                    guard open.count < maxDepth else { throw reader.tooDeep(position, maxDepth) }
                    var item = OpenItem(head: h, start: position, remaining: 1)
                    if h.major != 6 {
                        item.remaining = h.isIndefinite ? Int.max : try reader.checkedCount(h, at: position)
                        if !h.isIndefinite && h.major == 4 { item.items.reserveCapacity(item.remaining) }
                        if !h.isIndefinite && h.major == 5 { item.entries.reserveCapacity(item.remaining) }
                    }
                    open.append(item)
                    position = h.next
                    continue
                default:
                    (value, position) = try parseScalar(reader, h, at: position)
                }
            }
            // Hand the finished item to the innermost open one; a tag is finished by it.
            while true {
                guard let i = open.indices.last else { return (value.unsafelyUnwrapped, position) }
                switch open[i].head.major {
                case 6:
                    value = .tagged(open[i].head.argument, value.unsafelyUnwrapped)
                    open.removeLast()
                    continue
                case 4:
                    open[i].items.append(value.unsafelyUnwrapped)
                default:
                    if let key = open[i].key {
                        open[i].entries.append((key: key, value: value.unsafelyUnwrapped))
                        open[i].key = nil
                    } else {
                        open[i].key = value
                    }
                }
                break
            }
        }
    }

    /// An array, map or tag that ``parse(_:at:maxDepth:)`` has opened and not yet finished.
    private struct OpenItem {
        var head: CBORHead
        var start: Int
        /// Elements (array) or entries (map) still to come: the count, or `Int.max` for an indefinite length.
        var remaining: Int
        var items: [CBOR] = []
        var entries: [(key: CBOR, value: CBOR)] = []
        /// A map's key whose value comes next.
        var key: CBOR? = nil

        var finished: CBOR { head.major == 4 ? .array(items) : .map(entries) }
    }

    /// Parses an item that is not an array, map or tag (head `h` at `offset`).
    private static func parseScalar(_ reader: CBORReader, _ h: CBORHead, at offset: Int) throws(CBORReadError) -> (CBOR, Int) {
        switch h.major {
        case 0:
            return (.unsigned(h.argument), h.next)
        case 1:
            return (.negative(h.argument), h.next)
        case 2:
            let (bytes, end) = try reader.readBytes(h, at: offset)
            return (.bytes(bytes), end)
        case 3:
            let (text, end) = try reader.readText(h, at: offset)
            return (.text(text), end)
        default:
            switch h.info {
            case 20: return (.bool(false), h.next)
            case 21: return (.bool(true), h.next)
            case 22: return (.null, h.next)
            case 23: return (.undefined, h.next)
            case 24: return (.simple(UInt8(truncatingIfNeeded: h.argument)), h.next)
            case 25: return (.float(Double(bitPattern: CBORFloat.doubleBits(fromHalf: UInt16(truncatingIfNeeded: h.argument)))), h.next)
            case 26: return (.float(Double(bitPattern: CBORFloat.doubleBits(fromSingle: UInt32(truncatingIfNeeded: h.argument)))), h.next)
            case 27: return (.float(Double(bitPattern: h.argument)), h.next)
            case 31: throw CBORReadError(at: offset, "unexpected break code (0xff) outside an indefinite-length item")
            default: return (.simple(h.info), h.next)
            }
        }
    }
}

extension CBOR: Codable {
    /// Written as the raw item by ``CBOREncoder``; other encoders throw `EncodingError.invalidValue`.
    public func encode(to encoder: any Encoder) throws {
        throw EncodingError.invalidValue(self, EncodingError.Context(codingPath: encoder.codingPath, debugDescription: "CBOR values can only be encoded with CBOREncoder"))
    }

    /// Read as the raw item by ``CBORDecoder``; other decoders throw `DecodingError.typeMismatch`.
    public init(from decoder: any Decoder) throws {
        throw DecodingError.typeMismatch(CBOR.self, DecodingError.Context(codingPath: decoder.codingPath, debugDescription: "CBOR values can only be decoded with CBORDecoder"))
    }
}
