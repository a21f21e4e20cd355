import CLMDB

/// A transaction handle, valid only inside ``Environment/read(_:)`` or ``Environment/write(_:)``.
///
/// Buffers returned by ``get(_:key:)`` point into LMDB's memory map and are valid only
/// until the transaction ends; copy what must outlive it. Each is checked against the
/// data file first (``MapBounds``): a damaged size is `MDB_CORRUPTED`, not a wild read.
struct Transaction {
    let handle: OpaquePointer
    /// The environment's map bounds. Unowned and unretained: the environment outlives
    /// every transaction (they exist only inside its `read` and `write` closures), and a
    /// retain per transaction would cost more than the check.
    unowned(unsafe) let bounds: MapBounds
    /// Whether this is a read-only transaction, whose buffers all lie in the map.
    let readOnly: Bool

    /// The transaction's id: the snapshot id for readers, the id the commit will get for writers.
    var id: Int { Int(mdb_txn_id(handle)) }

    /// The value stored under `key`, or nil when there is none.
    func get(_ dbi: MDB_dbi, key: [UInt8]) throws(LMDBError) -> UnsafeRawBufferPointer? {
        var data = MDB_val()
        let rc = key.withUnsafeBytes { bytes in
            var keyValue = MDB_val(mv_size: bytes.count, mv_data: UnsafeMutableRawPointer(mutating: bytes.baseAddress))
            return mdb_get(handle, dbi, &keyValue, &data)
        }
        if rc == LMDBError.notFound { return nil }
        try LMDBError.check(rc, "mdb_get")
        return try bounds.checked(data, readOnly: readOnly, "mdb_get")
    }

    /// Stores `value` under `key`. With `noOverwrite`, returns false and leaves an existing value.
    @discardableResult
    func put(_ dbi: MDB_dbi, key: [UInt8], value: [UInt8], noOverwrite: Bool = false) throws(LMDBError) -> Bool {
        let flags: UInt32 = noOverwrite ? UInt32(MDB_NOOVERWRITE) : 0
        let rc = key.withUnsafeBytes { keyBytes in
            value.withUnsafeBytes { valueBytes in
                var keyValue = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
                var dataValue = MDB_val(mv_size: valueBytes.count, mv_data: UnsafeMutableRawPointer(mutating: valueBytes.baseAddress))
                return mdb_put(handle, dbi, &keyValue, &dataValue, flags)
            }
        }
        if noOverwrite && rc == LMDBError.keyExists { return false }
        try LMDBError.check(rc, "mdb_put")
        return true
    }

    /// Deletes `key`. Returns false when it was not there.
    @discardableResult
    func delete(_ dbi: MDB_dbi, key: [UInt8]) throws(LMDBError) -> Bool {
        let rc = key.withUnsafeBytes { bytes in
            var keyValue = MDB_val(mv_size: bytes.count, mv_data: UnsafeMutableRawPointer(mutating: bytes.baseAddress))
            return mdb_del(handle, dbi, &keyValue, nil)
        }
        if rc == LMDBError.notFound { return false }
        try LMDBError.check(rc, "mdb_del")
        return true
    }

    /// The handle of the named database `name` (nil: the main database, whose keys are the
    /// names of the named ones); with `create`, creating it when missing.
    ///
    /// - Returns: nil when the database is missing and `create` is false.
    /// - Throws: `MDB_INCOMPATIBLE` when `name` is a plain key of the main database.
    func openDatabase(_ name: String?, create: Bool) throws(LMDBError) -> MDB_dbi? {
        var dbi: MDB_dbi = 0
        let rc = mdb_dbi_open(handle, name, create ? UInt32(MDB_CREATE) : 0, &dbi)
        if rc == LMDBError.notFound { return nil }
        try LMDBError.check(rc, "mdb_dbi_open(\(name ?? "main"))")
        return dbi
    }

    /// Runs `body` with a cursor on `dbi`, closed when `body` returns.
    func withCursor<R>(_ dbi: MDB_dbi, _ body: (inout Cursor) throws -> R) throws -> R {
        var cursor: OpaquePointer?
        try LMDBError.check(mdb_cursor_open(handle, dbi, &cursor), "mdb_cursor_open")
        defer { mdb_cursor_close(cursor) }
        var wrapped = Cursor(handle: cursor!, bounds: bounds, readOnly: readOnly)
        return try body(&wrapped)
    }
}
