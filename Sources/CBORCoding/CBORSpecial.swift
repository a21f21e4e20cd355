import Foundation

/// The CBOR forms of the Foundation types the coders know: `Date`, `Decimal`, `UUID`, `URL`.
enum CBORSpecial {
    /// Seconds from 1970-01-01 to 2001-01-01, the offset between tag 1 and `Date`'s reference date.
    static let epochOffset: Int64 = 978_307_200

    // MARK: Date

    /// Writes a `Date` as tag 1 (epoch seconds) when that gives back the same `Date`, else exactly as tag 1001.
    ///
    /// `Date` stores a `Double` of seconds since 2001; adding the 978,307,200 s to 1970
    /// can round off its last bits (about half of all `Date()` values). Those dates are
    /// written as RFC 9581 extended time, tag 1001 `{5: [exponent, mantissa]}`: the exact
    /// epoch seconds as a bigfloat (mantissa × 2^exponent). Dates within 2^-45 s of
    /// 2001-01-01 (but not on it) or beyond ±2^62 s keep the rounded tag 1 form.
    static func writeDate(_ date: Date, to writer: inout CBORWriter) {
        let a = date.timeIntervalSinceReferenceDate
        // The encoder refuses non-finite dates before it gets here; written as a float all the same.
        guard a.isFinite else {
            writer.writeHead(major: 6, argument: 1)
            writer.writeDouble(a)
            return
        }
        if a == a.rounded(.towardZero) && abs(a) < 0x1p62 {
            writer.writeHead(major: 6, argument: 1)
            writer.writeInt(Int64(a) + epochOffset)
            return
        }
        let x = a + Double(epochOffset)
        if x - Double(epochOffset) == a {
            writer.writeHead(major: 6, argument: 1)
            writer.writeDouble(x)
            return
        }
        // a = ±m × 2^e with m < 2^53 and e < 0 (whole values took the integer path).
        let shift = -(a.exponent - 52)
        guard a.isNormal, shift > 0, shift <= 96 else {
            writer.writeHead(major: 6, argument: 1)
            writer.writeDouble(x)
            return
        }
        let m = Int128(Int64(bitPattern: (1 << 52) | a.significandBitPattern))
        var mantissa = (a < 0 ? -m : m) + (Int128(epochOffset) << shift)
        var exponent = -shift
        while mantissa & 1 == 0 && exponent < 0 {
            mantissa >>= 1
            exponent += 1
        }
        writer.writeHead(major: 6, argument: 1001)
        writer.writeHead(major: 5, argument: 1)
        writer.writeHead(major: 0, argument: 5)
        writer.writeHead(major: 4, argument: 2)
        writer.writeInt(Int64(exponent))
        writeInteger(mantissa, to: &writer)
    }

    /// Writes an integer of up to 128 bits: a plain integer when it fits, else a bignum (tag 2 or 3).
    static func writeInteger(_ value: Int128, to writer: inout CBORWriter) {
        let negative = value < 0
        // -1 - value for negatives: never overflows.
        let magnitude = UInt128(bitPattern: negative ? ~value : value)
        writeMagnitude(magnitude, negative: negative, to: &writer)
    }

    /// Writes `magnitude` (already `-1 - n` for negatives) as major type 0/1 or a bignum.
    static func writeMagnitude(_ magnitude: UInt128, negative: Bool, to writer: inout CBORWriter) {
        if magnitude <= UInt128(UInt64.max) {
            writer.writeHead(major: negative ? 1 : 0, argument: UInt64(magnitude))
            return
        }
        writer.writeHead(major: 6, argument: negative ? 3 : 2)
        var bytes: [UInt8] = []
        var rest = magnitude
        while rest > 0 {
            bytes.append(UInt8(truncatingIfNeeded: rest))
            rest >>= 8
        }
        bytes.reverse()
        bytes.withUnsafeBytes { writer.writeByteString($0) }
    }

    // MARK: Decimal

    /// Writes a `Decimal` as tag 4 `[exponent, mantissa]`; NaN as `f9 7e00`.
    static func writeDecimal(_ value: Decimal, to writer: inout CBORWriter) {
        if value.isNaN {
            writer.writeDouble(.nan)
            return
        }
        let magnitude = UInt128(value.significand.description) ?? 0
        let negative = value.sign == .minus && magnitude != 0
        writer.writeHead(major: 6, argument: 4)
        writer.writeHead(major: 4, argument: 2)
        writer.writeInt(Int64(value.exponent))
        writeMagnitude(negative ? magnitude - 1 : magnitude, negative: negative, to: &writer)
    }

    /// A `Decimal` from a sign, an exact magnitude and a power-of-ten exponent.
    static func decimal(negative: Bool, magnitude: UInt128, exponent: Int) -> Decimal {
        let low = Decimal(UInt64(truncatingIfNeeded: magnitude))
        let high = UInt64(truncatingIfNeeded: magnitude >> 64)
        var significand = low
        if high != 0 {
            significand = Decimal(high) * Decimal(string: "18446744073709551616")! + low
        }
        return Decimal(sign: negative ? .minus : .plus, exponent: exponent, significand: significand)
    }
}

extension CBORReader {
    /// Reads an integer of up to 128 bits: major type 0 or 1, or a bignum (tag 2 or 3) of at most 16 bytes.
    ///
    /// Returns the magnitude (`-1 - n` for negatives), the sign and the end offset.
    func readWideInteger(at offset: Int) throws(CBORReadError) -> (UInt128, Bool, Int) {
        let h = try head(at: offset)
        switch h.major {
        case 0: return (UInt128(h.argument), false, h.next)
        case 1: return (UInt128(h.argument), true, h.next)
        case 6 where h.argument == 2 || h.argument == 3:
            let content = try head(at: h.next)
            guard content.major == 2 else {
                throw CBORReadError(.typeMismatch, at: h.next, "bignum (tag \(h.argument)) holds \(cborMajorName(content.major)) instead of a byte string")
            }
            let (bytes, end) = try readBytes(content, at: h.next)
            var magnitude: UInt128 = 0
            for b in bytes.drop(while: { $0 == 0 }).enumerated() {
                guard b.offset < 16 else {
                    throw CBORReadError(.typeMismatch, at: offset, "bignum of \(bytes.count) bytes is wider than 128 bits")
                }
                magnitude = magnitude << 8 | UInt128(b.element)
            }
            return (magnitude, h.argument == 3, end)
        default:
            throw CBORReadError(.typeMismatch, at: offset, "expected an integer but found \(cborMajorName(h.major))")
        }
    }

    /// Reads tag 4 content `[exponent, mantissa]` as a `Decimal` (offset at the array).
    func readDecimalFraction(at offset: Int) throws(CBORReadError) -> (Decimal, Int) {
        let h = try head(at: offset)
        guard h.major == 4, h.argument == 2 || h.isIndefinite else {
            throw CBORReadError(.typeMismatch, at: offset, "decimal fraction (tag 4) must hold an array of two integers [exponent, mantissa]")
        }
        let (eMag, eNeg, afterExponent) = try readWideInteger(at: h.next)
        guard eMag <= 128 else {
            throw CBORReadError(.typeMismatch, at: h.next, "decimal fraction exponent is outside the range of Decimal")
        }
        let exponent = eNeg ? -1 - Int(eMag) : Int(eMag)
        let (mag, neg, end) = try readWideInteger(at: afterExponent)
        var position = end
        if h.isIndefinite {
            guard position < count, byte(position) == 0xFF else {
                throw CBORReadError(.typeMismatch, at: position, "decimal fraction (tag 4) must hold an array of exactly two integers")
            }
            position &+= 1
        }
        guard exponent >= -128 && exponent <= 127 else {
            throw CBORReadError(.typeMismatch, at: h.next, "decimal fraction exponent \(exponent) is outside the range of Decimal (-128...127)")
        }
        // Negative: the value is -1 - mag, so the magnitude is mag + 1.
        if neg && mag == UInt128.max {
            throw CBORReadError(.typeMismatch, at: afterExponent, "decimal fraction mantissa is wider than 128 bits")
        }
        return (CBORSpecial.decimal(negative: neg, magnitude: neg ? mag + 1 : mag, exponent: exponent), position)
    }

    /// Integer epoch seconds (magnitude and sign, as ``readWideInteger(at:)`` gives them) to a
    /// `Date`, subtracting 1970→2001 exactly and rounding once, for every 128-bit magnitude.
    static func date(epochMagnitude mag: UInt128, negative: Bool) -> Date {
        let offset = UInt128(CBORSpecial.epochOffset)
        let seconds: Double
        if negative {
            // -1 - mag - offset = -(mag + 1 + offset); a sum past 2^128 rounds to 2^128 anyway.
            let (sum, overflow) = mag.addingReportingOverflow(offset &+ 1)
            seconds = overflow ? -0x1p128 : -Double(sum)
        } else {
            seconds = mag >= offset ? Double(mag &- offset) : -Double(offset &- mag)
        }
        return Date(timeIntervalSinceReferenceDate: seconds)
    }

    /// Reads the content of tag 1001 (RFC 9581 extended time): base time keys 1, 4 or 5, with -3/-6/-9 fractions.
    func readExtendedTime(at offset: Int) throws(CBORReadError) -> (Date, Int) {
        let h = try head(at: offset)
        guard h.major == 5 else {
            throw CBORReadError(.typeMismatch, at: offset, "extended time (tag 1001) must hold a map")
        }
        var position = h.next
        var remaining = h.isIndefinite ? Int.max : try checkedCount(h, at: offset)
        var result: Date?
        var fraction = 0.0
        while try nextElement(of: h, at: &position, remaining: &remaining, start: offset) {
            let keyHead = try head(at: position)
            let valueStart = try skipChecked(at: position)
            let valueEnd = try skipChecked(at: valueStart)
            let key: Int? = keyHead.major == 0 && keyHead.argument < 64 ? Int(keyHead.argument)
                : keyHead.major == 1 && keyHead.argument < 64 ? -1 - Int(keyHead.argument) : nil
            switch key {
            case 1:
                result = try readEpochSeconds(at: valueStart).0
            case 4:
                let (d, _) = try readDecimalFraction(at: valueStart)
                let seconds = NSDecimalNumber(decimal: d).doubleValue
                result = Date(timeIntervalSince1970: seconds)
            case 5:
                result = try readBigfloatEpoch(at: valueStart)
            case -3, -6, -9:
                let (mag, neg, _) = try readWideInteger(at: valueStart)
                let scale = key == -3 ? 1e-3 : key == -6 ? 1e-6 : 1e-9
                fraction = (neg ? -1 : 1) * Double(mag) * scale
            default:
                break
            }
            position = valueEnd
        }
        guard let result else {
            throw CBORReadError(.typeMismatch, at: offset, "extended time (tag 1001) has no base time (key 1, 4 or 5)")
        }
        return (fraction == 0 ? result : result.addingTimeInterval(fraction), position)
    }

    /// Reads a bigfloat `[exponent, mantissa]` of epoch seconds exactly.
    func readBigfloatEpoch(at offset: Int) throws(CBORReadError) -> Date {
        let h = try head(at: offset)
        guard h.major == 4, h.argument == 2, !h.isIndefinite else {
            throw CBORReadError(.typeMismatch, at: offset, "bigfloat must be an array of two integers [exponent, mantissa]")
        }
        let (eMag, eNeg, afterExponent) = try readWideInteger(at: h.next)
        let (mag, neg, _) = try readWideInteger(at: afterExponent)
        guard eMag < 2048 else {
            throw CBORReadError(.typeMismatch, at: h.next, "bigfloat exponent is out of range")
        }
        let exponent = eNeg ? -1 - Int(eMag) : Int(eMag)
        if exponent < 0 && exponent >= -96 && mag < (UInt128(1) << 126) {
            // Exact: (mantissa - offset × 2^s) × 2^-s, rounded once.
            let mantissa: Int128 = neg ? -1 - Int128(mag) : Int128(mag)
            let d = mantissa - (Int128(CBORSpecial.epochOffset) << -exponent)
            return Date(timeIntervalSinceReferenceDate: Double(d) * Double(sign: .plus, exponent: exponent, significand: 1))
        }
        let m = neg ? -1 - Double(mag) : Double(mag)
        let seconds = m * Double(sign: .plus, exponent: exponent, significand: 1)
        return Date(timeIntervalSince1970: seconds)
    }

    /// Reads tag 1 content (integer or float epoch seconds) as a `Date`.
    func readEpochSeconds(at offset: Int) throws(CBORReadError) -> (Date, Int) {
        let h = try head(at: offset)
        switch h.major {
        case 0, 1, 6:
            let (mag, neg, end) = try readWideInteger(at: offset)
            return (CBORReader.date(epochMagnitude: mag, negative: neg), end)
        case 7 where h.info >= 25 && h.info <= 27:
            let seconds = floatValue(h)
            return (Date(timeIntervalSinceReferenceDate: seconds - Double(CBORSpecial.epochOffset)), h.next)
        default:
            throw CBORReadError(.typeMismatch, at: offset, "expected epoch seconds (an integer or float) but found \(cborMajorName(h.major))")
        }
    }

    /// The Double value of a float head (info 25, 26 or 27).
    func floatValue(_ h: CBORHead) -> Double {
        switch h.info {
        case 25: return Double(bitPattern: CBORFloat.doubleBits(fromHalf: UInt16(truncatingIfNeeded: h.argument)))
        case 26: return Double(bitPattern: CBORFloat.doubleBits(fromSingle: UInt32(truncatingIfNeeded: h.argument)))
        default: return Double(bitPattern: h.argument)
        }
    }

    /// Reads a `Date`: tag 1, tag 1001, tag 0 (RFC 3339 text) or an untagged number of epoch seconds.
    func readDate(at offset: Int) throws(CBORReadError) -> (Date, Int) {
        var position = offset
        var h = try head(at: position)
        while h.major == 6 {
            switch h.argument {
            case 1: return try readEpochSeconds(at: h.next)
            case 1001: return try readExtendedTime(at: h.next)
            case 0:
                let textHead = try head(at: h.next)
                guard textHead.major == 3 else {
                    throw CBORReadError(.typeMismatch, at: h.next, "date/time string (tag 0) holds \(cborMajorName(textHead.major)) instead of text")
                }
                let (text, end) = try readText(textHead, at: h.next)
                guard let date = CBORReader.parseRFC3339(text) else {
                    throw CBORReadError(.typeMismatch, at: h.next, "date/time string (tag 0) \"\(text.prefix(40))\" is not an RFC 3339 date")
                }
                return (date, end)
            case 2, 3: return try readEpochSeconds(at: position)
            default:
                position = h.next
                h = try head(at: position)
            }
        }
        return try readEpochSeconds(at: position)
    }

    static func parseRFC3339(_ text: String) -> Date? {
        if let d = try? Date(text, strategy: Date.ISO8601FormatStyle()) { return d }
        return try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
