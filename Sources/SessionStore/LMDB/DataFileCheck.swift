#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CLMDB

/// Checks `data.mdb` against its own meta pages before LMDB maps it, so that no page LMDB
/// can reach lies past the end of the file.
///
/// LMDB 0.9 maps the whole file and reads pages through the map: a page past the end of
/// the file is a SIGBUS, not an error. Before mapping it checks only that both meta pages
/// (pages 0 and 1, each `MDB_meta` after a 16-byte page header) carry the meta flag, the
/// magic number and the data version. It then trusts the page size (a zero divides by
/// zero in `mdb_env_open`), the last page number (an overflowing one makes every
/// transaction report `MDB_MAP_RESIZED` for ever) and the root page numbers (page 0 or 1
/// as a root is an assertion, that is an abort). This check reads both meta pages with
/// `pread` and refuses, with `MDB_INVALID`, `MDB_VERSION_MISMATCH` or `MDB_CORRUPTED` and
/// a message saying what is wrong, a file whose
/// - meta pages are not LMDB 0.9 meta pages (another program's file, garbage, zeros),
/// - page size is not a power of two from 512 bytes to 64 KiB, or differs between the two,
/// and whose newest meta page (the one LMDB uses) has
/// - a last page number below 1 or too large to address,
/// - roots on a meta page, past the last page, or past the end of the file,
/// - a last page past a size that is not a whole number of pages (cut mid-page).
///
/// Once LMDB has opened the file, `mdb_page_get` refuses page numbers past the last page
/// of the transaction's meta page (`MDB_PAGE_NOTFOUND`), so a damaged branch page cannot
/// send it past the end either, provided the file reaches the last page. A healthy file
/// need not: a write transaction counts pages it allocated and freed again (LMDB's
/// "loose" pages) in the last page number without writing them when it cannot return
/// them to its reclaimed list, so a file may end a few free pages early. Rather than
/// refuse such a file (or accept a gap a damaged tree could point into), the check
/// extends it with `posix_fallocate`, which never shrinks a file and never overwrites
/// data another process writes at the same time, to the last page plus ``readSlack``.
/// The slack covers LMDB's reads within a damaged page near the end: node offsets and key
/// sizes are 16-bit, so a page's nodes and keys lie within 128 KiB of its start. The map
/// is made at least as large as the extended file (see ``prepare(directory:)``).
///
/// What it cannot see: damage inside pages. LMDB reports a zero-filled or mistyped page
/// reached by a search as `MDB_CORRUPTED`, but its own assertions abort the process on
/// some damaged pages reached while iterating (a zero-filled leaf as the next page of a
/// cursor), and a crafted leaf node can make it dereference a null pointer (the
/// duplicate-data flag in a database without duplicates). Values it returns are checked
/// against the file by ``MapBounds``.
enum DataFileCheck {
    /// The byte offsets of the fields this check reads in a meta page (LMDB 0.9, 64-bit).
    enum Layout {
        static let pageFlags = 10
        static let magic = 16
        static let version = 20
        static let pageSize = 40
        static let freeRoot = 80
        static let mainRoot = 128
        static let lastPage = 136
        static let transactionID = 144
        /// The page header and `MDB_meta`: what LMDB itself reads of each meta page.
        static let metaEnd = 152
    }

    /// `P_META`, the page flag of a meta page.
    static let metaFlag: UInt16 = 0x08
    /// `MDB_MAGIC`.
    static let magic: UInt32 = 0xBEEF_C0DE
    /// `MDB_DATA_VERSION` of LMDB 0.9.
    static let dataVersion: UInt32 = 1
    /// `P_INVALID`: the root of an empty database.
    static let noRoot = UInt64.max
    /// Bytes kept readable past the last page: LMDB reads a page's nodes and keys at
    /// 16-bit offsets and sizes, so within 2 × 64 KiB of its start, plus a margin.
    static let readSlack = 192 << 10

    /// One meta page's fields.
    struct Meta {
        var pageSize: Int
        var lastPage: UInt64
        var roots: [UInt64]
        var transactionID: UInt64
    }

    /// Checks (and if needed extends) `<directory>/data.mdb`; returns the smallest map
    /// size that covers the file (0 when there is no file to check yet) and the file's
    /// size before any extension.
    ///
    /// A missing or empty file passes: LMDB creates a new environment in it (an empty file
    /// is what a crash between creating the file and writing its meta pages leaves). A
    /// file this process may not open passes too, for LMDB to report the same error.
    static func prepare(directory: String) throws(LMDBError) -> (coveredSize: Int, originalSize: Int) {
        let path = directory + "/data.mdb"
        let fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return (0, 0) }
        defer { close(fd) }

        if resetIfNeverCommitted(fd, lockFile: directory + "/lock.mdb") { return (0, 0) }
        var bytes = [UInt8](repeating: 0, count: Layout.metaEnd)
        func read(at offset: Int) -> Bool {
            bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, Layout.metaEnd, off_t(offset)) } == Layout.metaEnd
        }
        func refuse(_ code: Int32, _ detail: String) -> LMDBError {
            LMDBError(code: code, function: "checking \(path)", detail: detail)
        }

        // The metas first, the size after: the file only grows while another process commits.
        guard read(at: 0) else {
            if fileSize(fd) == 0 { return (0, 0) }
            throw refuse(LMDBError.invalid, "the file is \(fileSize(fd)) bytes long, shorter than one LMDB meta page")
        }
        let first = try meta(bytes, page: 0, refuse)
        guard read(at: first.pageSize) else {
            throw refuse(LMDBError.invalid, "the file is \(fileSize(fd)) bytes long and ends inside its second meta page")
        }
        let second = try meta(bytes, page: 1, refuse)
        guard second.pageSize == first.pageSize else {
            throw refuse(LMDBError.corrupted, "its meta pages give different page sizes (\(first.pageSize) and \(second.pageSize))")
        }
        let pageSize = first.pageSize
        let size = fileSize(fd)
        let pages = UInt64(size / pageSize)
        // LMDB uses the meta page with the higher transaction id (page 0 on a tie). The
        // other one may hold a mix of old and new fields on purpose: when writing a meta
        // page fails, LMDB writes the new roots back with the old transaction id and last
        // page, so that it is never picked. So only the newest one's contents are checked.
        let (index, newest) = second.transactionID > first.transactionID ? (1, second) : (0, first)
        let lastPage = newest.lastPage
        // At most 2^47 bytes of pages: beyond any map a 64-bit address space holds.
        guard lastPage >= 1, lastPage < (UInt64(1) << 47) / UInt64(pageSize) else {
            throw refuse(LMDBError.corrupted, "meta page \(index) (transaction \(newest.transactionID)) gives \(lastPage) as its last page number, which no data file can have")
        }
        for root in newest.roots where root != noRoot {
            if root < 2 || root > lastPage {
                throw refuse(LMDBError.corrupted, "meta page \(index) (transaction \(newest.transactionID)) has a root at page \(root), outside the data pages 2…\(lastPage)")
            }
            if root >= pages {
                throw refuse(LMDBError.corrupted, "meta page \(index) (transaction \(newest.transactionID)) has a root at page \(root), but the file ends after \(pages) pages of \(pageSize) bytes: it was cut short or its meta page is damaged")
            }
        }
        // Below Int.max: the last page is bounded above.
        let required = (Int(lastPage) + 1) * pageSize
        if size < required, size % pageSize != 0 {
            throw refuse(LMDBError.corrupted, "the file is \(size) bytes long, not a whole number of \(pageSize)-byte pages, and its meta page (transaction \(newest.transactionID)) says the data reaches \(required) bytes: it was cut short")
        }
        let wanted = required + (readSlack + pageSize - 1) / pageSize * pageSize
        if size < wanted, case let code = extend(fd, from: size, to: wanted), code != 0, size < required {
            throw refuse(code, "the file is \(size) bytes long, below its last page at \(required) bytes, and could not be extended over its unwritten free pages")
        }
        return (wanted, size)
    }

    /// Empties a data file that never held a commit and that no process has open, so that
    /// LMDB initializes it afresh; returns whether it did.
    ///
    /// LMDB writes a new file's two meta pages (transaction 0) without a sync; the first
    /// sync comes with the first commit. After a power cut either may be zeros, which LMDB
    /// refuses (`MDB_INVALID`) on every open, though the file holds nothing: no meta page
    /// names a transaction past 0, so every other page is an unfinished first commit's.
    /// A file whose meta page slots are each zeros or an LMDB meta page of transaction 0,
    /// at least one being zeros, is such a file. Only when no process holds LMDB's lock on
    /// `lock.mdb` (an opener might be between creating the file and its first commit); the
    /// caller holds the store's writer lock, under which every opener runs this check and
    /// opens the environment.
    private static func resetIfNeverCommitted(_ fd: Int32, lockFile: String) -> Bool {
        enum Slot { case zeros, fresh(pageSize: Int), other }
        func slot(at offset: Int) -> Slot {
            var bytes = [UInt8](repeating: 0, count: Layout.metaEnd)
            let count = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, Layout.metaEnd, off_t(offset)) }
            guard count >= 0 else { return .other }
            if bytes.allSatisfy({ $0 == 0 }) { return .zeros }
            guard count == Layout.metaEnd, let meta = try? meta(bytes, page: 0, { LMDBError(code: $0, function: $1) }), meta.transactionID == 0 else { return .other }
            return .fresh(pageSize: meta.pageSize)
        }
        let first = slot(at: 0)
        var pageSize = Int(getpagesize())
        switch first {
        case .other: return false
        case .fresh(let size): pageSize = size
        case .zeros: break
        }
        let second = slot(at: pageSize)
        switch (first, second) {
        case (.other, _), (_, .other), (.fresh, .fresh): return false
        default: break
        }
        guard fileSize(fd) > 0, !isLockedByAnotherProcess(lockFile) else { return false }
        return ftruncate(fd, 0) == 0
    }

    /// Whether another process holds an `fcntl` lock on byte 0 of `file` (LMDB's openers do).
    ///
    /// Opening and closing the file here is safe: this process opens the environment only
    /// afterwards, so it holds no lock of its own on it that the close could drop.
    private static func isLockedByAnotherProcess(_ file: String) -> Bool {
        let fd = open(file, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return errno != ENOENT }
        defer { close(fd) }
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        lock.l_start = 0
        lock.l_len = 1
        guard fcntl(fd, F_GETLK, &lock) == 0 else { return true }
        return lock.l_type != Int16(F_UNLCK)
    }

    /// The fields of the meta page in `bytes`, after checking what LMDB checks of both
    /// (flag, magic, version) and the page size, which LMDB uses from page 0 to find page 1.
    private static func meta(_ bytes: [UInt8], page: Int, _ refuse: (Int32, String) -> LMDBError) throws(LMDBError) -> Meta {
        func field<T: FixedWidthInteger>(_ offset: Int, _ type: T.Type) -> T {
            bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }.littleEndian
        }
        guard field(Layout.pageFlags, UInt16.self) & metaFlag != 0, field(Layout.magic, UInt32.self) == magic else {
            throw refuse(LMDBError.invalid, "page \(page) is not an LMDB meta page: this is not an LMDB data file, or its start is damaged")
        }
        let version = field(Layout.version, UInt32.self)
        guard version == dataVersion else {
            throw refuse(LMDBError.versionMismatch, "meta page \(page) has data format version \(version); this LMDB reads version \(dataVersion)")
        }
        let pageSize = Int(field(Layout.pageSize, UInt32.self))
        guard pageSize >= 512, pageSize <= 1 << 16, pageSize & (pageSize - 1) == 0 else {
            throw refuse(LMDBError.corrupted, "meta page \(page) gives a page size of \(pageSize) bytes, not a power of two from 512 to 65536")
        }
        return Meta(pageSize: pageSize, lastPage: field(Layout.lastPage, UInt64.self),
                    roots: [field(Layout.freeRoot, UInt64.self), field(Layout.mainRoot, UInt64.self)],
                    transactionID: field(Layout.transactionID, UInt64.self))
    }

    private static func fileSize(_ fd: Int32) -> Int {
        var info = stat()
        return fstat(fd, &info) == 0 ? Int(info.st_size) : 0
    }

    /// Makes the file at least `end` bytes long without touching existing data; returns
    /// 0 or the `errno` of the failure.
    private static func extend(_ fd: Int32, from size: Int, to end: Int) -> Int32 {
        #if os(Linux)
        // Linux's fallocate (mode 0) allocates the range and raises the size only if the
        // range ends past it; glibc emulates it, writing only zero or missing bytes, on
        // file systems without it.
        return posix_fallocate(fd, off_t(size), off_t(end - size))
        #else
        // No fallocate: only a missing slack is accepted (the caller refuses a gap).
        return ENOTSUP
        #endif
    }
}
