/// Bit-exact conversions between IEEE 754 half, single and double precision.
///
/// Written on bit patterns rather than `Float16` (unavailable on macOS x86_64)
/// and rather than hardware conversions (which quiet signalling NaNs), so a NaN
/// payload survives an encode and decode unchanged.
enum CBORFloat {
    /// The narrowest encoding of a double that keeps its exact bits.
    enum Shortest: Equatable {
        case half(UInt16)
        case single(UInt32)
        case double(UInt64)
    }

    /// The narrowest of half, single and double that represents `value` exactly.
    static func shortest(_ value: Double) -> Shortest {
        let bits = value.bitPattern
        if let single = singleBits(exactly: bits) {
            if let half = halfBits(exactly: single) { return .half(half) }
            return .single(single)
        }
        return .double(bits)
    }

    /// The single-precision bits of a double when the conversion loses nothing.
    static func singleBits(exactly bits: UInt64) -> UInt32? {
        let sign = UInt32(truncatingIfNeeded: bits &>> 63) &<< 31
        let exponent = Int((bits &>> 52) & 0x7FF)
        let mantissa = bits & 0x000F_FFFF_FFFF_FFFF
        if exponent == 0x7FF {
            // Infinity or NaN: the payload must fit in 23 bits.
            guard mantissa & 0x1FFF_FFFF == 0 else { return nil }
            return sign | 0x7F80_0000 | UInt32(truncatingIfNeeded: mantissa &>> 29)
        }
        if exponent == 0 {
            // Zero keeps its sign; double subnormals are far below single range.
            return mantissa == 0 ? sign : nil
        }
        let e = exponent - 1023
        if e >= -126 && e <= 127 {
            guard mantissa & 0x1FFF_FFFF == 0 else { return nil }
            return sign | UInt32(e + 127) &<< 23 | UInt32(truncatingIfNeeded: mantissa &>> 29)
        }
        if e >= -149 && e < -126 {
            // Single subnormal: value = full * 2^(e-52) = m * 2^-149.
            let full = mantissa | 0x0010_0000_0000_0000
            let shift = UInt64(-e - 126 + 29) // 30...52
            guard full & ((1 &<< shift) &- 1) == 0 else { return nil }
            return sign | UInt32(truncatingIfNeeded: full &>> shift)
        }
        return nil
    }

    /// The half-precision bits of a single when the conversion loses nothing.
    static func halfBits(exactly bits: UInt32) -> UInt16? {
        let sign = UInt16(truncatingIfNeeded: bits &>> 31) &<< 15
        let exponent = Int((bits &>> 23) & 0xFF)
        let mantissa = bits & 0x007F_FFFF
        if exponent == 0xFF {
            guard mantissa & 0x1FFF == 0 else { return nil }
            return sign | 0x7C00 | UInt16(truncatingIfNeeded: mantissa &>> 13)
        }
        if exponent == 0 {
            return mantissa == 0 ? sign : nil
        }
        let e = exponent - 127
        if e >= -14 && e <= 15 {
            guard mantissa & 0x1FFF == 0 else { return nil }
            return sign | UInt16(e + 15) &<< 10 | UInt16(truncatingIfNeeded: mantissa &>> 13)
        }
        if e >= -24 && e < -14 {
            // Half subnormal: value = full * 2^(e-23) = h * 2^-24.
            let full = mantissa | 0x0080_0000
            let shift = UInt32(-e - 14 + 13) // 14...23
            guard full & ((1 &<< shift) &- 1) == 0 else { return nil }
            return sign | UInt16(truncatingIfNeeded: full &>> shift)
        }
        return nil
    }

    /// Widens half-precision bits to double bits exactly (NaN payload kept).
    static func doubleBits(fromHalf h: UInt16) -> UInt64 {
        let sign = UInt64(h &>> 15) &<< 63
        let exponent = Int((h &>> 10) & 0x1F)
        let mantissa = UInt64(h & 0x3FF)
        if exponent == 0x1F {
            return sign | 0x7FF0_0000_0000_0000 | mantissa &<< 42
        }
        if exponent == 0 {
            if mantissa == 0 { return sign }
            // Subnormal: normalise.
            var m = mantissa
            var e = -14
            while m & 0x400 == 0 { m &<<= 1; e -= 1 }
            m &= 0x3FF
            return sign | UInt64(e + 1023) &<< 52 | m &<< 42
        }
        return sign | UInt64(exponent - 15 + 1023) &<< 52 | mantissa &<< 42
    }

    /// Widens single-precision bits to double bits exactly (NaN payload kept).
    static func doubleBits(fromSingle s: UInt32) -> UInt64 {
        let sign = UInt64(s &>> 31) &<< 63
        let exponent = Int((s &>> 23) & 0xFF)
        let mantissa = UInt64(s & 0x7F_FFFF)
        if exponent == 0xFF {
            return sign | 0x7FF0_0000_0000_0000 | mantissa &<< 29
        }
        if exponent == 0 {
            if mantissa == 0 { return sign }
            var m = mantissa
            var e = -126
            while m & 0x80_0000 == 0 { m &<<= 1; e -= 1 }
            m &= 0x7F_FFFF
            return sign | UInt64(e + 1023) &<< 52 | m &<< 29
        }
        return sign | UInt64(exponent - 127 + 1023) &<< 52 | mantissa &<< 29
    }

    /// Widens half-precision bits to single bits exactly (NaN payload kept).
    static func singleBits(fromHalf h: UInt16) -> UInt32 {
        // Every half is exactly a single; go through double bits and narrow.
        singleBits(exactly: doubleBits(fromHalf: h)) ?? 0
    }

    /// Narrows double bits to a Float, keeping NaN-ness and sign of NaN (payload truncated).
    static func float(fromDoubleBits bits: UInt64) -> Float {
        if let s = singleBits(exactly: bits) { return Float(bitPattern: s) }
        let d = Double(bitPattern: bits)
        if d.isNaN {
            let sign = UInt32(truncatingIfNeeded: bits &>> 63) &<< 31
            let payload = UInt32(truncatingIfNeeded: (bits &>> 29) & 0x7F_FFFF)
            return Float(bitPattern: sign | 0x7FC0_0000 | payload)
        }
        return Float(d)
    }
}
