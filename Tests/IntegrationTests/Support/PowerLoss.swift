import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A simulated power cut: applies one loss shape to a store's files from the journal of the
/// killed process (``PowerLossJournal``), leaving what a disk may hold after the machine
/// lost power at the moment of the kill.
///
/// Nothing a sync made durable is touched. Of the rest, a shape rolls back:
/// - ``Shape/rollbackAll``: every unsynced write, newest first (the disk kept nothing the
///   process did not sync);
/// - ``Shape/randomSubset``: a random half of the unsynced writes, in random order (a disk
///   and its cache write back in any order);
/// - ``Shape/tornSectors``: each 512-byte sector of each unsynced write, independently
///   (a write torn at sector granularity; the sector is the unit a disk writes whole);
/// - ``Shape/orderedPrefix``: every unsynced write after a random one, newest first (a disk
///   or file system that keeps writes in order: what LMDB's `MDB_NOSYNC` relies on).
///
/// Rolling a range back writes the bytes the write overwrote, and zeros where the file was
/// shorter (a hole). Every sector thus ends up holding one of the versions it had since the
/// file's last sync, which is what a real disk may show. The file's size goes back to its
/// size at the last sync, or to the end of the furthest extending write (part) that was
/// kept. Created directory entries whose parent was not synced after them vanish (all of
/// them in ``Shape/rollbackAll``, each with probability 1/2 in the other shapes); the
/// store directory vanishing takes its files with it.
enum PowerLoss {
    enum Shape: String, CaseIterable, Sendable {
        case rollbackAll = "rollback-all"
        case randomSubset = "random-subset"
        case tornSectors = "torn-sectors"
        case orderedPrefix = "ordered-prefix"

        /// The shapes that keep later writes while losing earlier ones.
        var reorders: Bool { self == .randomSubset || self == .tornSectors }
    }

    /// The sector size a disk writes atomically.
    static let sector = 512

    /// What a loss did, for the tally and for failure messages.
    struct Outcome: Sendable {
        var shape: Shape
        var unsyncedWrites = 0
        var writesRolledBack = 0
        var sectorsRolledBack = 0
        var sectorsKept = 0
        var bytesRestored = 0
        var entriesVanished: [String] = []
        var storeVanished = false
        var sizes: [String] = []
        /// Unsynced writes that extended a file (the map growing into new pages).
        var unsyncedExtensions = 0
        /// Files the loss made shorter (unsynced growth undone).
        var filesShrunk = 0
        /// ``Shape/orderedPrefix``: the event number of the first write rolled back (every
        /// later event is lost too).
        var orderedCut = UInt64.max

        var summary: String {
            var text = "\(shape.rawValue): \(writesRolledBack) of \(unsyncedWrites) unsynced writes rolled back"
            if shape == .tornSectors { text += " (\(sectorsRolledBack) sectors rolled back, \(sectorsKept) kept)" }
            if !sizes.isEmpty { text += ", " + sizes.joined(separator: ", ") }
            if !entriesVanished.isEmpty { text += ", vanished: " + entriesVanished.joined(separator: " ") }
            return text
        }
    }

    /// A range of one write to roll back.
    private struct Piece {
        var write: PowerLossJournal.Write
        var start: Int
        var end: Int
    }

    /// Applies `shape` to the files `journal` describes.
    static func apply(_ shape: Shape, _ journal: PowerLossJournal, random: inout SeededRandom) throws -> Outcome {
        var outcome = Outcome(shape: shape)
        for (id, file) in journal.files.sorted(by: { $0.key < $1.key }) where file.journaled {
            guard FileManager.default.fileExists(atPath: file.path) else { continue }
            try restore(file, id: id, journal, shape, &outcome, &random)
        }
        // An ordered disk keeps the names of the kept writes' files: it vanishes only what
        // was created after the first write it lost.
        for entry in journal.entries.sorted(by: { $0.seq > $1.seq }) where !journal.isDurable(entry) {
            let vanish = switch shape {
            case .rollbackAll: true
            case .orderedPrefix: entry.seq > outcome.orderedCut
            case .randomSubset, .tornSectors: Bool.random(using: &random)
            }
            guard vanish, FileManager.default.fileExists(atPath: entry.path) else { continue }
            try FileManager.default.removeItem(atPath: entry.path)
            outcome.entriesVanished.append((entry.path as NSString).lastPathComponent + (entry.isDirectory ? "/" : ""))
            if entry.isDirectory { outcome.storeVanished = true }
        }
        return outcome
    }

    private static func restore(_ file: PowerLossJournal.File, id: Int, _ journal: PowerLossJournal, _ shape: Shape,
                                _ outcome: inout Outcome, _ random: inout SeededRandom) throws {
        let lastSync = journal.lastSync(of: id)
        let unsynced = journal.unsyncedWrites(of: id)
        // Writes after the last sync that are durable by themselves (O_DSYNC), which no
        // roll-back of an earlier write may undo.
        let durable = journal.writes.filter { $0.file == id && $0.dsyncDone && $0.seq > (lastSync?.seq ?? 0) }
        var durableSize = lastSync?.size ?? file.baseSize
        for write in durable { durableSize = max(durableSize, write.end) }
        outcome.unsyncedWrites += unsynced.count
        outcome.unsyncedExtensions += unsynced.filter { $0.end > $0.sizeBefore }.count

        var rollBack: [Piece] = []
        // A kept write keeps the file long enough to hold it, wherever the growth came from:
        // its own extension, or an unjournaled one before it (the open's posix_fallocate
        // over LMDB's unwritten free pages, which writes then land in).
        var keptEnd = durableSize
        switch shape {
        case .rollbackAll:
            rollBack = unsynced.reversed().map { Piece(write: $0, start: $0.offset, end: $0.end) }
        case .orderedPrefix:
            let kept = unsynced.isEmpty ? 0 : Int.random(in: 0...unsynced.count, using: &random)
            for write in unsynced[..<kept] { keptEnd = max(keptEnd, write.end) }
            rollBack = unsynced[kept...].reversed().map { Piece(write: $0, start: $0.offset, end: $0.end) }
            if kept < unsynced.count { outcome.orderedCut = min(outcome.orderedCut, unsynced[kept].seq) }
        case .randomSubset:
            for write in unsynced {
                if Bool.random(using: &random) {
                    rollBack.append(Piece(write: write, start: write.offset, end: write.end))
                } else {
                    keptEnd = max(keptEnd, write.end)
                }
            }
            rollBack.shuffle(using: &random)
        case .tornSectors:
            for write in unsynced.reversed() {
                var start = write.offset
                while start < write.end {
                    let end = min(write.end, (start / sector + 1) * sector)
                    if Bool.random(using: &random) {
                        rollBack.append(Piece(write: write, start: start, end: end))
                        outcome.sectorsRolledBack += 1
                    } else {
                        outcome.sectorsKept += 1
                        keptEnd = max(keptEnd, end)
                    }
                    start = end
                }
            }
        }
        outcome.writesRolledBack += Set(rollBack.map(\.write.seq)).count

        let fd = open(file.path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ChildError("cannot open \(file.path) to apply a power loss: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        fstat(fd, &info)
        let sizeAtKill = Int(info.st_size)
        for piece in rollBack {
            let protected = durable.filter { $0.seq > piece.write.seq }
            for (start, end) in subtract(protected, from: (piece.start, piece.end)) {
                outcome.bytesRestored += try undo(piece.write, start, end, fd: fd, path: file.path)
            }
        }
        let finalSize = shape == .rollbackAll ? durableSize : max(durableSize, min(keptEnd, sizeAtKill))
        if finalSize < sizeAtKill { outcome.filesShrunk += 1 }
        if finalSize != sizeAtKill {
            guard ftruncate(fd, off_t(finalSize)) == 0 else {
                throw ChildError("cannot truncate \(file.path) to \(finalSize): \(String(cString: strerror(errno)))")
            }
        }
        outcome.sizes.append("\((file.path as NSString).lastPathComponent) \(sizeAtKill)→\(finalSize) bytes")
    }

    /// `range` without the ranges of `writes`.
    private static func subtract(_ writes: [PowerLossJournal.Write], from range: (Int, Int)) -> [(Int, Int)] {
        var parts = [range]
        for write in writes {
            parts = parts.flatMap { part -> [(Int, Int)] in
                guard write.offset < part.1 && write.end > part.0 else { return [part] }
                var left: [(Int, Int)] = []
                if part.0 < write.offset { left.append((part.0, write.offset)) }
                if write.end < part.1 { left.append((write.end, part.1)) }
                return left
            }
        }
        return parts
    }

    /// Writes back what `write` overwrote in `start..<end`: its old bytes, zeros past the
    /// file's size before it. Returns the bytes written.
    private static func undo(_ write: PowerLossJournal.Write, _ start: Int, _ end: Int, fd: Int32, path: String) throws -> Int {
        guard start < end else { return 0 }
        var bytes = [UInt8](repeating: 0, count: end - start)
        let oldEnd = write.offset + write.old.count
        if start < oldEnd {
            let copyEnd = min(end, oldEnd)
            bytes.replaceSubrange(0..<(copyEnd - start), with: write.old[(start - write.offset)..<(copyEnd - write.offset)])
        }
        let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(start)) }
        guard written == bytes.count else {
            throw ChildError("cannot roll back \(path) at \(start): \(String(cString: strerror(errno)))")
        }
        return bytes.count
    }
}
