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
            let (item, end) = try CBOR.parse(reader, at: 0, depth: 0, maxDepth: maxDepth)
            guard end == reader.count else {
                throw CBORReadError(at: end, "trailing bytes: the data item ends at byte offset \(end) but the input has \(reader.count) bytes")
            }
            self = item
        } catch {
            throw DecodingError.dataCorrupted(DecodingError.Context(codingPath: [], debugDescription: error.description))
        }
    }

    /// Parses the item at `offset`; returns it and the offset after it.
    static func parse(_ reader: CBORReader, at offset: Int, depth: Int, maxDepth: Int) throws(CBORReadError) -> (CBOR, Int) {
        let h = try reader.head(at: offset)
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
        case 4:
            guard depth < maxDepth else { throw reader.tooDeep(offset, maxDepth) }
            var items: [CBOR] = []
            var position = h.next
            var remaining = h.isIndefinite ? Int.max : try reader.checkedCount(h, at: offset)
            if !h.isIndefinite { items.reserveCapacity(remaining) }
            while try reader.nextElement(of: h, at: &position, remaining: &remaining, start: offset) {
                let (item, next) = try parse(reader, at: position, depth: depth &+ 1, maxDepth: maxDepth)
                items.append(item)
                position = next
            }
            return (.array(items), position)
        case 5:
            guard depth < maxDepth else { throw reader.tooDeep(offset, maxDepth) }
            var entries: [(key: CBOR, value: CBOR)] = []
            var position = h.next
            var remaining = h.isIndefinite ? Int.max : try reader.checkedCount(h, at: offset)
            if !h.isIndefinite { entries.reserveCapacity(remaining) }
            while try reader.nextElement(of: h, at: &position, remaining: &remaining, start: offset) {
                let (key, afterKey) = try parse(reader, at: position, depth: depth &+ 1, maxDepth: maxDepth)
                if h.isIndefinite && afterKey < reader.count && reader.byte(afterKey) == 0xFF {
                    throw CBORReadError(at: afterKey, "break inside an indefinite-length map after a key without a value")
                }
                let (value, next) = try parse(reader, at: afterKey, depth: depth &+ 1, maxDepth: maxDepth)
                entries.append((key: key, value: value))
                position = next
            }
            return (.map(entries), position)
        case 6:
            guard depth < maxDepth else { throw reader.tooDeep(offset, maxDepth) }
            let (item, end) = try parse(reader, at: h.next, depth: depth &+ 1, maxDepth: maxDepth)
            return (.tagged(h.argument, item), end)
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
