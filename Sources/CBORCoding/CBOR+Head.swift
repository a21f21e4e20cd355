/// Head-level access for code that lays out CBOR by hand around encoded values (the
/// store's record envelope and key prefix).
extension CBOR {
    /// Appends a data item's head (RFC 8949 §3): major type 0...7 and its argument, in the
    /// shortest form (§4.1).
    public static func appendHead(major: UInt8, argument: UInt64, to bytes: inout [UInt8]) {
        let type = major &<< 5
        if argument < 24 {
            bytes.append(type | UInt8(truncatingIfNeeded: argument))
            return
        }
        let width = CBORWriter.headSize(argument) - 1  // 1, 2, 4 or 8 bytes
        bytes.append(type | (24 + UInt8(width.trailingZeroBitCount)))
        for shift in stride(from: (width - 1) * 8, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: argument >> UInt64(shift)))
        }
    }

    /// Appends `text` as a text string (major type 3). The result is also the text's
    /// deterministic encoding.
    public static func appendText(_ text: String, to bytes: inout [UInt8]) {
        var text = text
        text.withUTF8 { utf8 in
            appendHead(major: 3, argument: UInt64(utf8.count), to: &bytes)
            bytes.append(contentsOf: utf8)
        }
    }

    /// The definite-length head at `offset`: major type, argument and the offset after it,
    /// or nil when the bytes are truncated, reserved or an indefinite-length head.
    public static func head(in buffer: UnsafeRawBufferPointer, at offset: Int) -> (major: UInt8, argument: UInt64, next: Int)? {
        guard let head = try? CBORReader(buffer).head(at: offset), !head.isIndefinite else { return nil }
        return (head.major, head.argument, head.next)
    }
}
