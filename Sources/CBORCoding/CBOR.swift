/// One CBOR data item (RFC 8949 §2), for tools that work without the Swift types.
///
/// `CBOR` models the data model, not one serialization: decoding accepts every
/// well-formed encoding (any argument width, indefinite lengths, any float width)
/// and ``encoded(deterministic:)`` writes the preferred serialization. So an
/// indefinite-length string decodes to one `.bytes` or `.text` value, and
/// `fb 3ff0000000000000` decodes to `.float(1.0)` and encodes back as `f9 3c00`.
///
/// - Integers are `.unsigned(n)` (major type 0) or `.negative(n)` meaning `-1 - n`
///   (major type 1), so the full range -2^64 ... 2^64-1 is covered.
/// - Floats of every width are `.float(Double)`; equality and hashing compare the
///   bit pattern, so `NaN == NaN` and `0.0 != -0.0`.
/// - Maps keep their entries in order, duplicates included, as key-value pairs.
/// - Tags are kept (`.tagged(1, .unsigned(1363896240))`).
/// - `.simple(n)` holds the simple values without a case of their own (0...19,
///   32...255); 20...23 are `.bool`, `.null` and `.undefined`, 24...31 are not
///   well-formed and `encoded()` writes them as `undefined`.
///
/// `CBOR` is also `Codable`: with ``CBOREncoder`` and ``CBORDecoder`` it is written
/// and read as the raw item, which lets a Swift type carry a value of unknown shape.
public indirect enum CBOR: Sendable {
    case unsigned(UInt64)
    case negative(UInt64)
    case bytes([UInt8])
    case text(String)
    case array([CBOR])
    case map([(key: CBOR, value: CBOR)])
    case tagged(UInt64, CBOR)
    case simple(UInt8)
    case bool(Bool)
    case null
    case undefined
    case float(Double)
}

extension CBOR {
    /// An integer as `.unsigned` or `.negative`.
    ///
    /// - Precondition: `value` is within -2^64 ... 2^64-1, the range of CBOR's
    ///   integer major types (larger values need a bignum, tag 2 or 3).
    public init<I: BinaryInteger>(_ value: I) {
        if value >= 0 {
            self = .unsigned(UInt64(value))
        } else {
            // -1 - value; values below -2^64 have no CBOR integer form.
            let wide = Int128(clamping: value)
            precondition(wide >= -(Int128(1) << 64), "CBOR integers stop at -2^64")
            self = .negative(UInt64(-1 - wide))
        }
    }

    /// The value as an `Int`, when it is an integer that fits.
    public var intValue: Int? {
        switch self {
        case .unsigned(let n): return n <= UInt64(Int.max) ? Int(n) : nil
        case .negative(let n): return n <= UInt64(Int.max) ? -1 - Int(n) : nil
        default: return nil
        }
    }

    /// The text, when this is a text string.
    public var stringValue: String? {
        if case .text(let s) = self { return s }
        return nil
    }

    /// The value for the first map entry whose key is `key`, when this is a map.
    public subscript(key: CBOR) -> CBOR? {
        guard case .map(let entries) = self else { return nil }
        return entries.first(where: { $0.key == key })?.value
    }
}

extension CBOR: Equatable {
    public static func == (lhs: CBOR, rhs: CBOR) -> Bool {
        switch (lhs, rhs) {
        case let (.unsigned(a), .unsigned(b)): return a == b
        case let (.negative(a), .negative(b)): return a == b
        case let (.bytes(a), .bytes(b)): return a == b
        case let (.text(a), .text(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.map(a), .map(b)):
            guard a.count == b.count else { return false }
            for (x, y) in zip(a, b) where x.key != y.key || x.value != y.value { return false }
            return true
        case let (.tagged(t, a), .tagged(u, b)): return t == u && a == b
        case let (.simple(a), .simple(b)): return a == b
        case let (.bool(a), .bool(b)): return a == b
        case (.null, .null), (.undefined, .undefined): return true
        case let (.float(a), .float(b)): return a.bitPattern == b.bitPattern
        default: return false
        }
    }
}

extension CBOR: Hashable {
    public func hash(into hasher: inout Hasher) {
        switch self {
        case .unsigned(let n): hasher.combine(0 as UInt8); hasher.combine(n)
        case .negative(let n): hasher.combine(1 as UInt8); hasher.combine(n)
        case .bytes(let b): hasher.combine(2 as UInt8); hasher.combine(b)
        case .text(let s): hasher.combine(3 as UInt8); hasher.combine(s)
        case .array(let a): hasher.combine(4 as UInt8); hasher.combine(a)
        case .map(let m):
            hasher.combine(5 as UInt8)
            hasher.combine(m.count)
            for entry in m { hasher.combine(entry.key); hasher.combine(entry.value) }
        case .tagged(let t, let v): hasher.combine(6 as UInt8); hasher.combine(t); hasher.combine(v)
        case .simple(let n): hasher.combine(7 as UInt8); hasher.combine(n)
        case .bool(let b): hasher.combine(8 as UInt8); hasher.combine(b)
        case .null: hasher.combine(9 as UInt8)
        case .undefined: hasher.combine(10 as UInt8)
        case .float(let d): hasher.combine(11 as UInt8); hasher.combine(d.bitPattern)
        }
    }
}

extension CBOR: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int64) { self.init(value) }
}

extension CBOR: ExpressibleByFloatLiteral {
    public init(floatLiteral value: Double) { self = .float(value) }
}

extension CBOR: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .text(value) }
}

extension CBOR: ExpressibleByBooleanLiteral {
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension CBOR: ExpressibleByNilLiteral {
    public init(nilLiteral: ()) { self = .null }
}

extension CBOR: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: CBOR...) { self = .array(elements) }
}

extension CBOR: ExpressibleByDictionaryLiteral {
    /// A map with the entries in the order written.
    public init(dictionaryLiteral elements: (CBOR, CBOR)...) {
        self = .map(elements.map { (key: $0.0, value: $0.1) })
    }
}
