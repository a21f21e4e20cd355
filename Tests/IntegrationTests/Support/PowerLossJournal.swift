import Foundation

/// What the power-loss shim (Tools/FaultShim/powerloss.c) journaled in one child process:
/// the store's tracked files, the writes a power cut could still undo with the bytes they
/// overwrote, the syncs that made writes durable, and the directory entries created.
///
/// Read after the child was killed. A record cut short by the kill is dropped: the shim
/// writes a record before the event it announces, so that event never started.
struct PowerLossJournal: Sendable {
    /// A file of the store the shim saw opened.
    struct File: Sendable {
        var path: String
        /// Its size when the process first opened it (durable: nothing of this process's yet).
        var baseSize: Int
        /// Whether its writes are journaled (data.mdb; lock.mdb's content is rebuilt by LMDB).
        var journaled: Bool
    }

    /// One write of a journaled file.
    struct Write: Sendable {
        var seq: UInt64
        var file: Int
        var offset: Int
        var length: Int
        /// The file's size just before the write (bytes at and past it were a hole).
        var sizeBefore: Int
        /// The bytes the write overwrote inside the file (`min(length, sizeBefore - offset)`).
        var old: [UInt8]
        /// The write was made on an O_DSYNC descriptor and returned: durable by itself.
        var dsyncDone = false
        var end: Int { offset + length }
    }

    /// A sync of a journaled file that returned successfully.
    struct Sync: Sendable {
        /// The event number the sync began at: every write with a smaller one is durable.
        var seq: UInt64
        var file: Int
        /// The file's size when the sync began.
        var size: Int
    }

    /// A directory entry (the store directory or a file in it) this process created.
    struct Entry: Sendable {
        var seq: UInt64
        var path: String
        var isDirectory: Bool
    }

    var files: [Int: File] = [:]
    var writes: [Write] = []
    var syncs: [Sync] = []
    var entries: [Entry] = []
    /// Directory syncs: (the event number the sync began at, the directory's path).
    var directorySyncs: [(seq: UInt64, path: String)] = []
    /// Truncations of journaled files (LMDB makes none on Linux without MDB_WRITEMAP).
    var truncations = 0
    /// The CLOCK_MONOTONIC time of the last complete record, in nanoseconds.
    var lastRecordNanoseconds: UInt64 = 0
    /// The highest event number journaled.
    var lastSeq: UInt64 = 0
    /// Bytes of a record the kill cut short, dropped.
    var droppedTail = 0

    private static let magic: UInt32 = 0x504C_4A31
    private static let headerSize = 64

    /// Reads the journal the child with `pid` wrote into `directory`.
    ///
    /// A missing journal is an empty one when `diedEarly` (the child printed nothing): the
    /// shim opens it as it loads, so a child killed before that changed nothing.
    init(directory: String, pid: pid_t, diedEarly: Bool) throws {
        let path = "\(directory)/\(pid).journal"
        guard let data = FileManager.default.contents(atPath: path) else {
            if diedEarly {
                try self.init(bytes: [], path: path)
                return
            }
            throw ChildError("the power-loss journal \(path) is missing (was the shim loaded?)")
        }
        try self.init(bytes: [UInt8](data), path: path)
    }

    init(bytes: [UInt8], path: String) throws {
        var offset = 0
        var writeIndex: [UInt64: Int] = [:]
        func u32(_ at: Int) -> UInt32 { bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt32.self) } }
        func u64(_ at: Int) -> UInt64 { bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt64.self) } }
        while offset + Self.headerSize <= bytes.count {
            guard u32(offset) == Self.magic else {
                throw ChildError("the power-loss journal \(path) is damaged at byte \(offset)")
            }
            let type = u32(offset + 4), file = Int(u32(offset + 8))
            let seq = u64(offset + 16), position = Int(u64(offset + 24)), length = Int(u64(offset + 32))
            let size = Int(u64(offset + 40)), extra = Int(u64(offset + 48)), time = u64(offset + 56)
            let payloadStart = offset + Self.headerSize
            guard payloadStart + extra <= bytes.count else { break }
            let payload = bytes[payloadStart..<payloadStart + extra]
            var text: String { String(decoding: payload, as: UTF8.self) }
            switch type {
            case 1: files[file] = File(path: text, baseSize: size, journaled: position != 0)
            case 2: entries.append(Entry(seq: seq, path: text, isDirectory: false))
            case 3: entries.append(Entry(seq: seq, path: text, isDirectory: true))
            case 4: directorySyncs.append((seq, text))
            case 5:
                writeIndex[seq] = writes.count
                writes.append(Write(seq: seq, file: file, offset: position, length: length, sizeBefore: size, old: Array(payload)))
            case 6: if let index = writeIndex[seq] { writes[index].dsyncDone = true }
            case 7: syncs.append(Sync(seq: seq, file: file, size: size))
            case 8: truncations += 1
            default: throw ChildError("the power-loss journal \(path) has a record of unknown type \(type) at byte \(offset)")
            }
            lastSeq = max(lastSeq, seq)
            lastRecordNanoseconds = time
            offset = payloadStart + extra
        }
        droppedTail = bytes.count - offset
    }

    /// The event number of the last sync of `file` (writes before it are durable), or 0.
    func lastSync(of file: Int) -> Sync? {
        syncs.filter { $0.file == file }.max { $0.seq < $1.seq }
    }

    /// Whether the entry is durable: its parent directory was synced by a sync begun after it.
    func isDurable(_ entry: Entry) -> Bool {
        let parent = (entry.path as NSString).deletingLastPathComponent
        return directorySyncs.contains { $0.path == parent && $0.seq > entry.seq }
    }

    /// Whether this process made data.mdb from nothing (it was empty when first opened) and
    /// never synced it: nothing in it was ever durable.
    var dataFileNeverSynced: Bool {
        files.contains { id, file in
            file.journaled && file.baseSize == 0 && lastSync(of: id) == nil
        }
    }

    /// The writes of `file` no sync covers, oldest first.
    func unsyncedWrites(of file: Int) -> [Write] {
        let synced = lastSync(of: file)?.seq ?? 0
        return writes.filter { $0.file == file && $0.seq > synced && !$0.dsyncDone }
    }
}
