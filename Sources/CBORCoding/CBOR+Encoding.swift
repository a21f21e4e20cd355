extension CBOR {
    /// The preferred serialization (RFC 8949 §4.1) of this item, or with `deterministic`
    /// the core deterministic encoding (§4.2.1: map keys sorted bytewise by their encoded bytes).
    ///
    /// A map with duplicate keys keeps all its entries (it is not valid CBOR, but it is
    /// what the value holds).
    public func encoded(deterministic: Bool = false) -> [UInt8] {
        var writer = CBORWriter()
        defer { writer.deallocate() }
        write(to: &writer, deterministic: deterministic)
        return writer.bytes
    }

    func write(to writer: inout CBORWriter, deterministic: Bool) {
        switch self {
        case .unsigned(let n): writer.writeHead(major: 0, argument: n)
        case .negative(let n): writer.writeHead(major: 1, argument: n)
        case .bytes(let b):
            b.withUnsafeBytes { writer.writeByteString($0) }
        case .text(let s): writer.writeText(s)
        case .array(let a):
            writer.writeHead(major: 4, argument: UInt64(a.count))
            for item in a { item.write(to: &writer, deterministic: deterministic) }
        case .map(let entries):
            writer.writeHead(major: 5, argument: UInt64(entries.count))
            if deterministic && entries.count > 1 {
                var encoded: [([UInt8], [UInt8])] = entries.map {
                    ($0.key.encoded(deterministic: true), $0.value.encoded(deterministic: true))
                }
                encoded.sort { $0.0.lexicographicallyPrecedes($1.0) }
                for (k, v) in encoded {
                    k.withUnsafeBytes { writer.append($0) }
                    v.withUnsafeBytes { writer.append($0) }
                }
            } else {
                for entry in entries {
                    entry.key.write(to: &writer, deterministic: deterministic)
                    entry.value.write(to: &writer, deterministic: deterministic)
                }
            }
        case .tagged(let tag, let item):
            writer.writeHead(major: 6, argument: tag)
            item.write(to: &writer, deterministic: deterministic)
        case .simple(let n):
            if n < 24 {
                writer.append(0xE0 | n)
            } else if n >= 32 {
                writer.append(0xF8)
                writer.append(n)
            } else {
                writer.append(0xF7)
            }
        case .bool(let b): writer.writeBool(b)
        case .null: writer.writeNull()
        case .undefined: writer.append(0xF7)
        case .float(let d): writer.writeDouble(d)
        }
    }
}
