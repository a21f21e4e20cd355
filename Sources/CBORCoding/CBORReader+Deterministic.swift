extension CBORReader {
    /// Checks that the input from `offset` holds one item in RFC 8949 §4.2.1 core deterministic
    /// encoding, with the checks of ``validate(at:maxDepth:)``; returns the offset after it.
    ///
    /// Rejects heads longer than needed, indefinite lengths, floats that a shorter
    /// width holds exactly, and maps whose keys are not in strictly increasing
    /// bytewise order of their encodings (which also rejects duplicate keys).
    /// Iterative: the open arrays, maps and tags are kept on a heap stack.
    func validateDeterministic(at offset: Int, maxDepth: Int) throws(CBORReadError) -> Int {
        var open: [DeterministicLevel] = []
        var position = offset
        while true {
            if let i = open.indices.last { open[i].childStart = position }
            let h = try head(at: position)
            if h.isIndefinite {
                if h.major == 7 {
                    throw CBORReadError(at: position, "unexpected break code (0xff) outside an indefinite-length item")
                }
                throw CBORReadError(at: position, "indefinite-length \(cborMajorName(h.major).split(separator: " ").last ?? "") is not allowed in deterministic encoding")
            }
            if h.major != 7 {
                try checkShortest(h, at: position)
            }
            switch h.major {
            case 0, 1:
                position = h.next
            case 2, 3:
                let end = try stringEnd(h, at: position)
                if h.major == 3 && end > h.next && !isValidText(h.next, end &- h.next) {
                    throw CBORReadError(at: position, "text string is not valid UTF-8")
                }
                position = end
            case 4, 5, 6:
                guard open.count < maxDepth else { throw tooDeep(position, maxDepth) }
                let n = h.major == 6 ? 1 : try checkedCount(h, at: position)
                position = h.next
                if n > 0 {
                    open.append(DeterministicLevel(remaining: h.major == 5 ? n &* 2 : n, isMap: h.major == 5))
                    continue
                }
            default:
                if h.info == 26 && CBORFloat.halfBits(exactly: UInt32(truncatingIfNeeded: h.argument)) != nil {
                    throw CBORReadError(at: position, "single-precision float that half precision holds exactly is not deterministic encoding")
                }
                if h.info == 27 && CBORFloat.singleBits(exactly: h.argument) != nil {
                    throw CBORReadError(at: position, "double-precision float that a shorter width holds exactly is not deterministic encoding")
                }
                position = h.next
            }
            // An item ended at `position`: it is the next child of the innermost open level.
            while let i = open.indices.last {
                if open[i].isMap && open[i].remaining & 1 == 0 {
                    // A key: it must sort after the previous key of this map.
                    let keyStart = open[i].childStart
                    if open[i].previousKey >= 0, let base {
                        let raw = UnsafeRawBufferPointer(start: base, count: count)
                        let c = compareBytes(raw, open[i].previousKey, open[i].previousKeyEnd, keyStart, position)
                        if c == 0 {
                            throw CBORReadError(at: keyStart, "duplicate map key")
                        }
                        if c > 0 {
                            throw CBORReadError(at: keyStart, "map keys are not in bytewise order of their encodings, as deterministic encoding requires")
                        }
                    }
                    open[i].previousKey = keyStart
                    open[i].previousKeyEnd = position
                }
                open[i].remaining &-= 1
                if open[i].remaining > 0 { break }
                // The level's container ended here too: a child of the level below.
                open.removeLast()
            }
            if open.isEmpty { return position }
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

/// An array, map or tag open in ``CBORReader/validateDeterministic(at:maxDepth:)``.
struct DeterministicLevel {
    /// Items still to come (keys and values count separately in a map).
    var remaining: Int
    var isMap: Bool
    /// Where the child being read started.
    var childStart = 0
    /// The previous key of a map, `previousKey..<previousKeyEnd`; -1 before the first.
    var previousKey = -1
    var previousKeyEnd = -1
}
