extension CBORReader {
    /// Skips one item like ``skip(at:depth:maxDepth:)`` and also checks RFC 8949 §4.2.1 core deterministic encoding.
    ///
    /// Rejects heads longer than needed, indefinite lengths, floats that a shorter
    /// width holds exactly, and maps whose keys are not in strictly increasing
    /// bytewise order of their encodings (which also rejects duplicate keys).
    func validateDeterministic(at offset: Int, depth: Int, maxDepth: Int) throws(CBORReadError) -> Int {
        let h = try head(at: offset)
        if h.isIndefinite {
            if h.major == 7 {
                throw CBORReadError(at: offset, "unexpected break code (0xff) outside an indefinite-length item")
            }
            throw CBORReadError(at: offset, "indefinite-length \(cborMajorName(h.major).split(separator: " ").last ?? "") is not allowed in deterministic encoding")
        }
        if h.major != 7 {
            try checkShortest(h, at: offset)
        }
        switch h.major {
        case 0, 1:
            return h.next
        case 2, 3:
            let end = try stringEnd(h, at: offset)
            if h.major == 3 && end > h.next && !isValidText(h.next, end &- h.next) {
                throw CBORReadError(at: offset, "text string is not valid UTF-8")
            }
            return end
        case 4:
            guard depth < maxDepth else { throw tooDeep(offset, maxDepth) }
            var n = try checkedCount(h, at: offset)
            var position = h.next
            while n > 0 {
                position = try validateDeterministic(at: position, depth: depth &+ 1, maxDepth: maxDepth)
                n &-= 1
            }
            return position
        case 5:
            guard depth < maxDepth else { throw tooDeep(offset, maxDepth) }
            let n = try checkedCount(h, at: offset)
            var position = h.next
            var previousKey = -1, previousKeyEnd = -1
            for _ in 0 ..< n {
                let keyEnd = try validateDeterministic(at: position, depth: depth &+ 1, maxDepth: maxDepth)
                if previousKey >= 0, let base {
                    let raw = UnsafeRawBufferPointer(start: base, count: count)
                    let c = compareBytes(raw, previousKey, previousKeyEnd, position, keyEnd)
                    if c == 0 {
                        throw CBORReadError(at: position, "duplicate map key")
                    }
                    if c > 0 {
                        throw CBORReadError(at: position, "map keys are not in bytewise order of their encodings, as deterministic encoding requires")
                    }
                }
                previousKey = position
                previousKeyEnd = keyEnd
                position = try validateDeterministic(at: keyEnd, depth: depth &+ 1, maxDepth: maxDepth)
            }
            return position
        case 6:
            guard depth < maxDepth else { throw tooDeep(offset, maxDepth) }
            return try validateDeterministic(at: h.next, depth: depth &+ 1, maxDepth: maxDepth)
        default:
            switch h.info {
            case 25:
                return h.next
            case 26:
                if CBORFloat.halfBits(exactly: UInt32(truncatingIfNeeded: h.argument)) != nil {
                    throw CBORReadError(at: offset, "single-precision float that half precision holds exactly is not deterministic encoding")
                }
                return h.next
            case 27:
                if CBORFloat.singleBits(exactly: h.argument) != nil {
                    throw CBORReadError(at: offset, "double-precision float that a shorter width holds exactly is not deterministic encoding")
                }
                return h.next
            default:
                return h.next
            }
        }
    }

    /// Throws when the head's argument has a longer form than needed.
    func checkShortest(_ h: CBORHead, at offset: Int) throws(CBORReadError) {
        let minimal: Bool
        switch h.info {
        case 24: minimal = h.argument >= 24
        case 25: minimal = h.argument > 0xFF
        case 26: minimal = h.argument > 0xFFFF
        case 27: minimal = h.argument > 0xFFFF_FFFF
        default: minimal = true
        }
        if !minimal {
            throw CBORReadError(at: offset, "head of \(cborMajorName(h.major)) uses a longer argument than needed for \(h.argument), which deterministic encoding forbids")
        }
    }
}
