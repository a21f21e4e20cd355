/// What ``CBORReader/validate(at:maxDepth:stack:capacity:recorder:)`` reports as it opens and closes arrays, maps and tags.
protocol CBORValidationRecorder {
    /// An array or map (`isTag` false) or a tag at `start` opened as nesting level `level`.
    mutating func open(_ start: Int, level: Int, isTag: Bool)
    /// The array, map or tag at nesting level `level` ended just before `end`.
    mutating func close(level: Int, end: Int)
}

/// Records nothing: plain validation, specialized to the loop without hooks.
struct CBORNoRecorder: CBORValidationRecorder {
    @inline(__always) func open(_ start: Int, level: Int, isTag: Bool) {}
    @inline(__always) func close(level: Int, end: Int) {}
}

/// The end offsets of the larger arrays and maps of one input, recorded while it is validated.
///
/// Skipping an item the decoder does not want (the value of an unknown key, the rest of a
/// map after a missing key, a nested value whose end `init(from:)` did not report) walks
/// its items; a deep record would have its subtrees walked again at every level, which
/// makes decoding quadratic. With the ends recorded once, skipping an array or map of at
/// least ``minimumSize`` bytes is a binary search, so decoding stays linear in the input.
///
/// The table is one buffer: the number of entries, then (start, end) pairs in increasing
/// order of start (validation meets containers in that order). Smaller containers are not
/// kept (walking one costs less than the lookup saves), so the table holds at most one
/// entry per `minimumSize` bytes of each nesting level.
struct CBORContainerEnds: CBORValidationRecorder {
    /// Inputs shorter than this are decoded without a table: their worst case is small.
    static let minimumInputSize = 512
    /// Arrays and maps shorter than this are not recorded.
    static let minimumSize = 64

    /// `[count, start0, end0, start1, end1, …]`.
    private(set) var table: UnsafeMutablePointer<Int>
    private var capacity: Int
    /// For each open nesting level, the index of its entry, or -1 for a tag.
    private let levels: UnsafeMutablePointer<Int>

    /// A recorder for nesting up to `levels` deep.
    init(levels: Int) {
        capacity = 16
        table = UnsafeMutablePointer<Int>.allocate(capacity: 1 &+ 2 &* capacity)
        table[0] = 0
        self.levels = UnsafeMutablePointer<Int>.allocate(capacity: max(levels, 1))
    }

    /// Frees the buffers; the table must not be used afterwards.
    func deallocate() {
        table.deallocate()
        levels.deallocate()
    }

    @inline(__always)
    mutating func open(_ start: Int, level: Int, isTag: Bool) {
        if isTag {
            levels[level] = -1
            return
        }
        let n = table[0]
        if n == capacity {
            let bigger = UnsafeMutablePointer<Int>.allocate(capacity: 1 &+ 4 &* capacity)
            bigger.moveInitialize(from: table, count: 1 &+ 2 &* n)
            table.deallocate()
            table = bigger
            capacity &*= 2
        }
        table[1 &+ 2 &* n] = start
        table[2 &+ 2 &* n] = -1
        table[0] = n &+ 1
        levels[level] = n
    }

    @inline(__always)
    mutating func close(level: Int, end: Int) {
        let i = levels[level]
        guard i >= 0 else { return }
        if end &- table[1 &+ 2 &* i] < CBORContainerEnds.minimumSize {
            // Everything recorded inside it was smaller still, so it is the last entry.
            table[0] = i
        } else {
            table[2 &+ 2 &* i] = end
        }
    }

    /// The end of the array or map at `start` in `table`, when it was recorded.
    @inline(__always)
    static func end(of start: Int, in table: UnsafePointer<Int>) -> Int? {
        var low = 0
        var high = table[0]
        while low < high {
            let mid = (low &+ high) &>> 1
            let s = table[1 &+ 2 &* mid]
            if s == start { return table[2 &+ 2 &* mid] }
            if s < start { low = mid &+ 1 } else { high = mid }
        }
        return nil
    }
}
