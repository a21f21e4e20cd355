import CLMDB

/// A cursor over one database, valid only inside ``Transaction/withCursor(_:_:)``.
///
/// Keys and values it returns are checked against the data file like
/// ``Transaction/get(_:key:)``'s.
struct Cursor {
    let handle: OpaquePointer
    /// The transaction's map bounds (unowned for the reason given in ``Transaction``).
    unowned(unsafe) let bounds: MapBounds
    let readOnly: Bool

    /// One key/value pair under the cursor; both buffers live in LMDB's map.
    typealias Entry = (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)

    private func move(_ op: MDB_cursor_op, to key: [UInt8]? = nil) throws(LMDBError) -> Entry? {
        var keyValue = MDB_val()
        var data = MDB_val()
        let rc: Int32
        if let key {
            rc = key.withUnsafeBytes { bytes in
                keyValue = MDB_val(mv_size: bytes.count, mv_data: UnsafeMutableRawPointer(mutating: bytes.baseAddress))
                return mdb_cursor_get(handle, &keyValue, &data, op)
            }
        } else {
            rc = mdb_cursor_get(handle, &keyValue, &data, op)
        }
        if rc == LMDBError.notFound { return nil }
        try LMDBError.check(rc, "mdb_cursor_get")
        return (try bounds.checked(keyValue, readOnly: readOnly, "mdb_cursor_get (key)"),
                try bounds.checked(data, readOnly: readOnly, "mdb_cursor_get"))
    }

    /// Positions at the first key greater than or equal to `key`.
    mutating func seek(atLeast key: [UInt8]) throws(LMDBError) -> Entry? {
        try move(MDB_SET_RANGE, to: key)
    }

    /// Positions at the first key of the database.
    mutating func first() throws(LMDBError) -> Entry? {
        try move(MDB_FIRST)
    }

    /// Moves to the next key.
    mutating func next() throws(LMDBError) -> Entry? {
        try move(MDB_NEXT)
    }

    /// Positions at `key` and returns its value, or nil when the key is absent.
    mutating func find(_ key: [UInt8]) throws(LMDBError) -> UnsafeRawBufferPointer? {
        try move(MDB_SET_KEY, to: key)?.value
    }

    /// Stores `value` under `key`. With `replacingCurrent`, the cursor must stand on
    /// `key` (after ``find(_:)`` found it): LMDB then replaces the value without
    /// searching the tree again.
    mutating func put(key: [UInt8], value: [UInt8], replacingCurrent: Bool) throws(LMDBError) {
        let flags: UInt32 = replacingCurrent ? UInt32(MDB_CURRENT) : 0
        let rc = key.withUnsafeBytes { keyBytes in
            value.withUnsafeBytes { valueBytes in
                var keyValue = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
                var dataValue = MDB_val(mv_size: valueBytes.count, mv_data: UnsafeMutableRawPointer(mutating: valueBytes.baseAddress))
                return mdb_cursor_put(handle, &keyValue, &dataValue, flags)
            }
        }
        try LMDBError.check(rc, "mdb_cursor_put")
    }

    /// Deletes the pair under the cursor; the cursor then stands on the following pair.
    mutating func deleteCurrent() throws(LMDBError) {
        try LMDBError.check(mdb_cursor_del(handle, 0), "mdb_cursor_del")
    }

    /// Visits every pair whose key starts with `prefix`, in key order.
    ///
    /// `body` returns whether to go on.
    mutating func forEach(withPrefix prefix: [UInt8], _ body: (Entry) throws -> Bool) throws {
        var entry = try seek(atLeast: prefix)
        while let current = entry, current.key.starts(with: prefix) {
            guard try body(current) else { return }
            entry = try next()
        }
    }

    /// Deletes every pair whose key starts with `prefix`.
    ///
    /// - Parameter collectKeys: whether to return the deleted keys (for the cache).
    /// - Returns: how many pairs were deleted, and their keys when asked.
    mutating func deleteAll(withPrefix prefix: [UInt8], collectKeys: Bool) throws(LMDBError) -> (count: Int, keys: [[UInt8]]) {
        var count = 0
        var keys: [[UInt8]] = []
        var entry = try seek(atLeast: prefix)
        while let current = entry, current.key.starts(with: prefix) {
            if collectKeys { keys.append(Array(current.key)) }
            try deleteCurrent()
            count += 1
            // Seek again rather than rely on where mdb_cursor_del leaves the cursor,
            // which differs between LMDB versions at page boundaries.
            entry = try seek(atLeast: prefix)
        }
        return (count, keys)
    }
}
