import CLMDB

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A result code returned by an `mdb_*` call, with the name of the call that returned it.
///
/// Every LMDB call in the package passes its result through ``LMDBError/check(_:_:)``,
/// the one place where C result codes become Swift errors. The named constants map to
/// LMDB's `MDB_*` result codes; any other value is an `errno` from the operating system.
struct LMDBError: Error, Equatable, CustomStringConvertible {
    /// The raw result code (`MDB_*` or an `errno` value).
    let code: Int32
    /// The LMDB function that failed (or the check that refused), for the error message.
    let function: String
    /// What was wrong, when the package found it rather than LMDB (see ``DataFileCheck``).
    var detail: String? = nil

    /// `MDB_KEYEXIST`: the key/data pair already exists (put with `MDB_NOOVERWRITE`).
    static let keyExists: Int32 = MDB_KEYEXIST
    /// `MDB_NOTFOUND`: no matching key or no more entries under the cursor.
    static let notFound: Int32 = MDB_NOTFOUND
    /// `MDB_CORRUPTED`: a page has the wrong type; the file is damaged.
    static let corrupted: Int32 = MDB_CORRUPTED
    /// `MDB_PANIC`: an earlier fatal error left the environment unusable until reopened.
    static let panic: Int32 = MDB_PANIC
    /// `MDB_VERSION_MISMATCH`: the files were written by an incompatible LMDB version.
    static let versionMismatch: Int32 = MDB_VERSION_MISMATCH
    /// `MDB_INVALID`: the file is not an LMDB data file.
    static let invalid: Int32 = MDB_INVALID
    /// `MDB_MAP_FULL`: the memory map (the file's size limit) is full.
    static let mapFull: Int32 = MDB_MAP_FULL
    /// `MDB_DBS_FULL`: more named databases than `mdb_env_set_maxdbs` allowed.
    static let dbsFull: Int32 = MDB_DBS_FULL
    /// `MDB_READERS_FULL`: every reader slot of the lock file is taken.
    static let readersFull: Int32 = MDB_READERS_FULL
    /// `MDB_TXN_FULL`: the transaction has too many dirty pages.
    static let txnFull: Int32 = MDB_TXN_FULL
    /// `MDB_MAP_RESIZED`: another process grew the map beyond this process's mapping.
    static let mapResized: Int32 = MDB_MAP_RESIZED
    /// `MDB_BAD_TXN`: the transaction had an error and must be aborted.
    static let badTransaction: Int32 = MDB_BAD_TXN
    /// `MDB_BAD_DBI`: the database handle is not (or no longer) valid.
    static let badDatabase: Int32 = MDB_BAD_DBI
    /// `MDB_INCOMPATIBLE`: the operation does not fit the database, such as opening a plain
    /// key of the main database as a named database.
    static let incompatible: Int32 = MDB_INCOMPATIBLE
    /// `MDB_BAD_VALSIZE`: the key is empty or longer than the key limit, or a value too large.
    static let badValueSize: Int32 = MDB_BAD_VALSIZE
    /// `MDB_PAGE_NOTFOUND`: a page number past the last page: the file is damaged.
    static let pageNotFound: Int32 = MDB_PAGE_NOTFOUND
    /// `MDB_CURSOR_FULL`: the tree is deeper than LMDB's cursor stack, as only a damaged one is.
    static let cursorFull: Int32 = MDB_CURSOR_FULL
    /// `MDB_PAGE_FULL`: LMDB's internal "page has not enough space", seen on damaged pages.
    static let pageFull: Int32 = MDB_PAGE_FULL

    /// Throws an ``LMDBError`` unless `result` is `MDB_SUCCESS` (0).
    ///
    /// - Parameters:
    ///   - result: the value an `mdb_*` call returned.
    ///   - function: the name of that call, for the message.
    @inline(__always)
    static func check(_ result: Int32, _ function: @autoclosure () -> String) throws(LMDBError) {
        if result != 0 { throw LMDBError(code: result, function: function()) }
    }

    /// Whether the code is an operating-system I/O failure (as opposed to an LMDB condition).
    var isIOFailure: Bool {
        code == EIO || isOutOfSpace || code == EROFS
    }

    /// Whether the code says the disk, the quota or the file size limit is full.
    var isOutOfSpace: Bool {
        code == ENOSPC || code == EDQUOT || code == EFBIG
    }

    /// Whether the code says the data file is damaged or not an LMDB data file.
    ///
    /// `MDB_BAD_TXN` counts: LMDB returns it for every later call of a transaction in which
    /// it met a damaged page.
    var isCorruption: Bool {
        switch code {
        case Self.corrupted, Self.invalid, Self.versionMismatch, Self.pageNotFound, Self.badTransaction,
             Self.cursorFull, Self.pageFull: true
        default: false
        }
    }

    var description: String {
        let text = mdb_strerror(code).map { String(cString: $0) } ?? "unknown error"
        if let detail { return "\(function): \(detail) (\(text), \(code))" }
        return "\(function) failed: \(text) (\(code))"
    }
}
