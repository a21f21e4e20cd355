import Foundation

/// Reading Swift scalar values from CBOR items, with the decoder's conversion rules.
///
/// Every function reads the item at `offset`, stores the offset after it in `end`,
/// skips tags it does not know, and throws a ``CBORReadError`` of kind
/// `.typeMismatch` (wrong kind of item), `.valueNotFound` (null or undefined) or
/// `.corrupted` (malformed bytes, a value out of range).
extension CBORReader {
    /// The error for an item that is not a `type`: `valueNotFound` for null/undefined, else `typeMismatch`.
    func mismatch(_ type: Any.Type, at offset: Int, expected: String) -> CBORReadError {
        guard let (h, _) = try? untaggedHead(at: offset) else {
            return CBORReadError(at: offset, "unexpected end of input: expected \(expected)")
        }
        if h.major == 7 && (h.info == 22 || h.info == 23) {
            return CBORReadError(.valueNotFound, at: offset, "expected \(expected) but found \(h.info == 22 ? "null" : "undefined")", type: type)
        }
        return CBORReadError(.typeMismatch, at: offset, "expected \(expected) but found \(CBORReader.describe(h))", type: type)
    }

    static func describe(_ h: CBORHead) -> String {
        if h.major == 7 {
            switch h.info {
            case 20, 21: return "a boolean"
            case 22: return "null"
            case 23: return "undefined"
            case 25, 26, 27: return "a float"
            default: return "a simple value"
            }
        }
        return cborMajorName(h.major)
    }

    /// Whether the item at `offset` is null or undefined (after any tags).
    func isNil(at offset: Int) -> Bool {
        guard offset < count else { return false }
        let b = byte(offset)
        if b == 0xF6 || b == 0xF7 { return true }
        if b &>> 5 == 6, let (h, _) = try? untaggedHead(at: offset) {
            return h.major == 7 && (h.info == 22 || h.info == 23)
        }
        return false
    }

    // MARK: Integers

    /// Reads a signed integer, range-checked against `T`.
    @inline(__always)
    func readInt<T: FixedWidthInteger & SignedInteger>(_ type: T.Type, at offset: Int, end: inout Int) throws(CBORReadError) -> T {
        if offset < count {
            let b = byte(offset)
            if b < 24 {
                end = offset &+ 1
                return T(truncatingIfNeeded: b)
            }
            if b &>> 5 <= 1 && b & 0x1F < 28 {
                let h = try head(at: offset)
                if h.argument <= UInt64(T.max) {
                    end = h.next
                    let magnitude = T(truncatingIfNeeded: h.argument)
                    return h.major == 0 ? magnitude : -1 - magnitude
                }
            }
        }
        return try readIntSlow(type, at: offset, end: &end)
    }

    func readIntSlow<T: FixedWidthInteger & SignedInteger>(_ type: T.Type, at offset: Int, end: inout Int) throws(CBORReadError) -> T {
        let (mag, negative) = try readIntegerMagnitude(T.self, at: offset, end: &end)
        // Negative values are -1 - mag, which fits when mag <= T.max.
        guard mag <= UInt128(T.max) else { throw overflow(T.self, mag, negative, offset) }
        return negative ? -1 - T(mag) : T(mag)
    }

    /// Reads an unsigned integer, range-checked against `T`.
    @inline(__always)
    func readUInt<T: FixedWidthInteger & UnsignedInteger>(_ type: T.Type, at offset: Int, end: inout Int) throws(CBORReadError) -> T {
        if offset < count {
            let b = byte(offset)
            if b < 24 {
                end = offset &+ 1
                return T(truncatingIfNeeded: b)
            }
            if b < 28 {
                let h = try head(at: offset)
                if h.argument <= UInt64(T.max) {
                    end = h.next
                    return T(truncatingIfNeeded: h.argument)
                }
            }
        }
        return try readUIntSlow(type, at: offset, end: &end)
    }

    func readUIntSlow<T: FixedWidthInteger & UnsignedInteger>(_ type: T.Type, at offset: Int, end: inout Int) throws(CBORReadError) -> T {
        let (mag, negative) = try readIntegerMagnitude(T.self, at: offset, end: &end)
        guard !negative, mag <= UInt128(T.max) else { throw overflow(T.self, mag, negative, offset) }
        return T(mag)
    }

    func overflow(_ type: Any.Type, _ mag: UInt128, _ negative: Bool, _ offset: Int) -> CBORReadError {
        let text = negative ? "-" + MagnitudeText.plusOne(mag) : String(mag)
        return CBORReadError(at: offset, "integer \(text) does not fit in \(type)")
    }

    /// Reads any integer (major 0/1, a bignum, or a float holding a whole number) as magnitude and sign.
    func readIntegerMagnitude(_ type: Any.Type, at offset: Int, end: inout Int) throws(CBORReadError) -> (UInt128, Bool) {
        var position = offset
        var h = try head(at: position)
        while h.major == 6 && h.argument != 2 && h.argument != 3 {
            position = h.next
            h = try head(at: position)
        }
        switch h.major {
        case 0:
            end = h.next
            return (UInt128(h.argument), false)
        case 1:
            end = h.next
            return (UInt128(h.argument), true)
        case 6:
            let (mag, negative, e) = try readWideInteger(at: position)
            end = e
            return (mag, negative)
        case 7 where h.info >= 25 && h.info <= 27:
            let d = floatValue(h)
            guard d == d.rounded(.towardZero), d.isFinite, abs(d) < 0x1p127 else {
                throw CBORReadError(at: position, "float \(d) is not a whole number that fits in \(type)")
            }
            end = h.next
            if d >= 0 { return (UInt128(d), false) }
            return (UInt128(-d) - 1, true)
        default:
            throw mismatch(type, at: offset, expected: "an integer")
        }
    }

    // MARK: Floats

    /// Reads a Double: any float width, or an integer whose value a Double holds exactly.
    @inline(__always)
    func readDouble(at offset: Int, end: inout Int) throws(CBORReadError) -> Double {
        if offset < count {
            let b = byte(offset)
            if b == 0xFB, count &- offset > 8 {
                end = offset &+ 9
                return Double(bitPattern: UInt64(bigEndian: base.unsafelyUnwrapped.loadUnaligned(fromByteOffset: offset &+ 1, as: UInt64.self)))
            }
        }
        return try readDoubleSlow(at: offset, end: &end)
    }

    func readDoubleSlow(at offset: Int, end: inout Int) throws(CBORReadError) -> Double {
        let (h, position) = try untaggedHead(at: offset)
        if h.major == 7 && h.info >= 25 && h.info <= 27 {
            end = h.next
            return floatValue(h)
        }
        if h.major == 0 || h.major == 1 {
            let d = try exactly(Double.self, h, at: position)
            end = h.next
            return d
        }
        throw mismatch(Double.self, at: offset, expected: "a float")
    }

    /// The integer of head `h` (major type 0 or 1) as an `F`, or an error when `F` does not hold it exactly.
    func exactly<F: BinaryFloatingPoint>(_ type: F.Type, _ h: CBORHead, at position: Int) throws(CBORReadError) -> F {
        let value: F?
        if h.major == 0 {
            value = F(exactly: h.argument)
        } else if h.argument == UInt64.max {
            // -2^64, whose magnitude UInt64 cannot hold.
            value = F(sign: .minus, exponent: 64, significand: 1)
        } else {
            // -1 - argument: the magnitude is argument + 1, which does not overflow here.
            value = F(exactly: h.argument &+ 1).map { -$0 }
        }
        guard let value else {
            throw CBORReadError(at: position, "integer \(h.major == 0 ? String(h.argument) : CBOR.negativeString(h.argument)) cannot be represented exactly as a \(F.self)")
        }
        return value
    }

    /// Reads a Float: half or single exactly, a double within Float's range (rounded), or an exact integer.
    func readFloat(at offset: Int, end: inout Int) throws(CBORReadError) -> Float {
        let (h, position) = try untaggedHead(at: offset)
        if h.major == 7 {
            switch h.info {
            case 25:
                end = h.next
                return Float(bitPattern: CBORFloat.singleBits(fromHalf: UInt16(truncatingIfNeeded: h.argument)))
            case 26:
                end = h.next
                return Float(bitPattern: UInt32(truncatingIfNeeded: h.argument))
            case 27:
                let d = Double(bitPattern: h.argument)
                guard !d.isFinite || abs(d) <= Double(Float.greatestFiniteMagnitude) else {
                    throw CBORReadError(at: position, "double \(d) does not fit in Float")
                }
                end = h.next
                return CBORFloat.float(fromDoubleBits: h.argument)
            default: break
            }
        }
        if h.major == 0 || h.major == 1 {
            let f = try exactly(Float.self, h, at: position)
            end = h.next
            return f
        }
        throw mismatch(Float.self, at: offset, expected: "a float")
    }

    // MARK: Bool, strings, bytes

    @inline(__always)
    func readBool(at offset: Int, end: inout Int) throws(CBORReadError) -> Bool {
        if offset < count {
            let b = byte(offset)
            if b == 0xF5 || b == 0xF4 {
                end = offset &+ 1
                return b == 0xF5
            }
        }
        let (h, _) = try untaggedHead(at: offset)
        if h.major == 7 && (h.info == 20 || h.info == 21) {
            end = h.next
            return h.info == 21
        }
        throw mismatch(Bool.self, at: offset, expected: "a boolean")
    }

    ///
    /// The input must have been checked by `validate(at:maxDepth:)` (as
    /// `CBORDecoder` does first), so definite text is not validated again here.
    @inline(__always)
    func readString(at offset: Int, end: inout Int) throws(CBORReadError) -> String {
        let h = try head(at: offset)
        if h.major == 3 && !h.isIndefinite {
            let e = try stringEnd(h, at: offset)
            end = e
            if e == h.next { return "" }
            return String(decoding: UnsafeBufferPointer(start: base.unsafelyUnwrapped.assumingMemoryBound(to: UInt8.self) + h.next, count: e &- h.next), as: UTF8.self)
        }
        return try readStringSlow(at: offset, end: &end)
    }

    func readStringSlow(at offset: Int, end: inout Int) throws(CBORReadError) -> String {
        let (h, position) = try untaggedHead(at: offset)
        guard h.major == 3 else { throw mismatch(String.self, at: offset, expected: "a text string") }
        let (s, e) = try readText(h, at: position)
        end = e
        return s
    }

    func readData(at offset: Int, end: inout Int) throws(CBORReadError) -> Data {
        let (h, position) = try untaggedHead(at: offset)
        guard h.major == 2 else { throw mismatch(Data.self, at: offset, expected: "a byte string") }
        if !h.isIndefinite {
            let e = try stringEnd(h, at: position)
            end = e
            return Data(slice(h.next, e &- h.next))
        }
        let (bytes, e) = try readBytes(h, at: position)
        end = e
        return Data(bytes)
    }

    func readURL(at offset: Int, end: inout Int) throws(CBORReadError) -> URL {
        let (h, position) = try untaggedHead(at: offset)
        guard h.major == 3 else { throw mismatch(URL.self, at: offset, expected: "a URL (tag 32 over a text string)") }
        let (text, e) = try readText(h, at: position)
        guard let url = URL(string: text) else {
            throw CBORReadError(at: position, "invalid URL string \"\(text.prefix(80))\"")
        }
        end = e
        return url
    }

    func readUUID(at offset: Int, end: inout Int) throws(CBORReadError) -> UUID {
        let (h, position) = try untaggedHead(at: offset)
        if h.major == 2 {
            let (bytes, e) = try readBytes(h, at: position)
            guard bytes.count == 16 else {
                throw CBORReadError(at: position, "UUID byte string has \(bytes.count) bytes instead of 16")
            }
            var uuid: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            withUnsafeMutableBytes(of: &uuid) { $0.copyBytes(from: bytes) }
            end = e
            return UUID(uuid: uuid)
        }
        if h.major == 3 {
            let (text, e) = try readText(h, at: position)
            guard let uuid = UUID(uuidString: text) else {
                throw CBORReadError(at: position, "invalid UUID string \"\(text.prefix(40))\"")
            }
            end = e
            return uuid
        }
        throw mismatch(UUID.self, at: offset, expected: "a UUID (tag 37 over a 16-byte byte string)")
    }

    func readDate(at offset: Int, end: inout Int) throws(CBORReadError) -> Date {
        do throws(CBORReadError) {
            let (date, e) = try readDate(at: offset)
            // Foundation traps when it prints a NaN date; infinite ones are no better.
            let seconds = date.timeIntervalSinceReferenceDate
            guard seconds.isFinite else {
                throw CBORReadError(at: offset, "\(seconds.isNaN ? "NaN" : "infinite") seconds since the epoch: not a finite date")
            }
            end = e
            return date
        } catch {
            if error.kind == .typeMismatch {
                let m = mismatch(Date.self, at: offset, expected: "a date")
                if m.kind == .valueNotFound { throw m }
            }
            var e = error
            e.type = Date.self
            throw e
        }
    }

    func readDecimal(at offset: Int, end: inout Int) throws(CBORReadError) -> Decimal {
        var position = offset
        var h = try head(at: position)
        while h.major == 6 {
            switch h.argument {
            case 4:
                let (d, e) = try readDecimalFraction(at: h.next)
                end = e
                return d
            case 2, 3:
                let (mag, negative, e) = try readWideInteger(at: position)
                end = e
                return try decimal(mag, negative, position)
            default:
                position = h.next
                h = try head(at: position)
            }
        }
        switch h.major {
        case 0, 1:
            end = h.next
            return try decimal(UInt128(h.argument), h.major == 1, position)
        case 7 where h.info >= 25 && h.info <= 27:
            let d = floatValue(h)
            end = h.next
            if d.isNaN { return Decimal.nan }
            guard d.isFinite else {
                throw CBORReadError(.typeMismatch, at: position, "an infinite float cannot be a Decimal", type: Decimal.self)
            }
            // Decimal(Double) gives NaN for magnitudes outside Decimal's range (about 1e-128 ... 3.4e165).
            let decimal = Decimal(d)
            guard !decimal.isNaN else {
                throw CBORReadError(.typeMismatch, at: position, "float \(d) is outside the range of Decimal", type: Decimal.self)
            }
            return decimal
        default:
            throw mismatch(Decimal.self, at: offset, expected: "a decimal fraction (tag 4) or a number")
        }
    }

    func decimal(_ mag: UInt128, _ negative: Bool, _ offset: Int) throws(CBORReadError) -> Decimal {
        guard !(negative && mag == UInt128.max) else {
            throw CBORReadError(at: offset, "integer is too wide for Decimal")
        }
        return CBORSpecial.decimal(negative: negative, magnitude: negative ? mag + 1 : mag, exponent: 0)
    }

    // MARK: Arrays of scalars

    /// The element count and first element offset of the array at `offset` (after tags).
    ///
    /// For an indefinite-length array the count is found by skipping its elements.
    func arrayHead(_ type: Any.Type, at offset: Int) throws(CBORReadError) -> (count: Int, first: Int, indefinite: Bool) {
        let (h, position) = try untaggedHead(at: offset)
        guard h.major == 4 else { throw mismatch(type, at: offset, expected: "an array") }
        if !h.isIndefinite { return (try checkedCount(h, at: position), h.next, false) }
        var n = 0
        var p = h.next
        while true {
            guard p < count else { throw CBORReadError(at: p, "unexpected end of input: indefinite-length array has no break") }
            if byte(p) == 0xFF { return (n, h.next, true) }
            p = try skipChecked(at: p)
            n &+= 1
        }
    }

    /// Reads an array whose elements `element` reads; returns the elements (errors carry the element index).
    @inline(__always)
    func readArray<E>(_ type: Any.Type, at offset: Int, end: inout Int, failedIndex: inout Int, _ element: (Int, inout Int) throws(CBORReadError) -> E) throws(CBORReadError) -> [E] {
        let (n, first, indefinite) = try arrayHead(type, at: offset)
        var result: [E] = []
        result.reserveCapacity(n)
        var position = first
        for i in 0 ..< n {
            failedIndex = i
            result.append(try element(position, &position))
        }
        failedIndex = -1
        // An indefinite-length array ends with a break.
        if indefinite { position &+= 1 }
        end = position
        return result
    }
}

extension CBORReader {
    /// Reads a map as `[String: V]` the way `Dictionary`'s own `Decodable` would:
    /// text keys as they are, integer keys as their decimal text, other keys skipped,
    /// a later duplicate replacing an earlier one.
    @inline(__always)
    func readStringKeyedMap<V>(_ type: Any.Type, at offset: Int, end: inout Int, failedIndex: inout Int, _ value: (Int, inout Int) throws(CBORReadError) -> V) throws(CBORReadError) -> [String: V] {
        let (h, position) = try untaggedHead(at: offset)
        guard h.major == 5 else { throw mismatch(type, at: offset, expected: "a map") }
        var n = h.isIndefinite ? Int.max : try checkedCount(h, at: position)
        var result: [String: V] = [:]
        if !h.isIndefinite { result.reserveCapacity(n) }
        var p = h.next
        var i = 0
        while try nextElement(of: h, at: &p, remaining: &n, start: position) {
            let keyHead = try head(at: p)
            var key: String?
            var valueStart: Int
            switch keyHead.major {
            case 3:
                var e = 0
                key = try readString(at: p, end: &e)
                valueStart = e
            case 0:
                key = String(keyHead.argument)
                valueStart = keyHead.next
            case 1:
                key = CBOR.negativeString(keyHead.argument)
                valueStart = keyHead.next
            default:
                valueStart = try skipChecked(at: p)
            }
            if let key {
                failedIndex = i
                result[key] = try value(valueStart, &p)
            } else {
                p = try skipChecked(at: valueStart)
            }
            i &+= 1
        }
        failedIndex = -1
        end = p
        return result
    }
}
