/// Head-level access for code that lays out CBOR by hand around encoded values (the
/// store's record envelope and key prefix).
extension CBOR {
    /// Writes a data item's head (RFC 8949 §3), major type 0...7 and its argument in the
    /// shortest form (§4.1), at `pointer`, which must have 9 bytes of room.
    ///
    /// - Returns: the number of bytes written: 1, 2, 3, 5 or 9.
    @inline(__always)
    public static func writeHead(major: UInt8, argument: UInt64, to pointer: UnsafeMutableRawPointer) -> Int {
        let type = major &<< 5
        if argument < 24 {
            pointer.storeBytes(of: type | UInt8(truncatingIfNeeded: argument), as: UInt8.self)
            return 1
        } else if argument <= 0xFF {
            pointer.storeBytes(of: type | 24, as: UInt8.self)
            pointer.storeBytes(of: UInt8(truncatingIfNeeded: argument), toByteOffset: 1, as: UInt8.self)
            return 2
        } else if argument <= 0xFFFF {
            pointer.storeBytes(of: type | 25, as: UInt8.self)
            pointer.storeBytes(of: UInt16(truncatingIfNeeded: argument).bigEndian, toByteOffset: 1, as: UInt16.self)
            return 3
        } else if argument <= 0xFFFF_FFFF {
            pointer.storeBytes(of: type | 26, as: UInt8.self)
            pointer.storeBytes(of: UInt32(truncatingIfNeeded: argument).bigEndian, toByteOffset: 1, as: UInt32.self)
            return 5
        } else {
            pointer.storeBytes(of: type | 27, as: UInt8.self)
            pointer.storeBytes(of: argument.bigEndian, toByteOffset: 1, as: UInt64.self)
            return 9
        }
    }

    /// The size of the head ``writeHead(major:argument:to:)`` writes for `argument`.
    public static func headSize(_ argument: UInt64) -> Int {
        CBORWriter.headSize(argument)
    }

    /// Appends a data item's head (RFC 8949 §3): major type 0...7 and its argument, in the
    /// shortest form (§4.1).
    public static func appendHead(major: UInt8, argument: UInt64, to bytes: inout [UInt8]) {
        var head: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &head) { buffer in
            let count = writeHead(major: major, argument: argument, to: buffer.baseAddress!)
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[..<count]))
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
        guard offset >= 0, let head = try? CBORReader(buffer).head(at: offset), !head.isIndefinite else { return nil }
        return (head.major, head.argument, head.next)
    }
}
