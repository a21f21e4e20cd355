import CLMDBBench
import Foundation

struct LMDBFailure: Error, CustomStringConvertible {
    var code: Int32
    var call: String
    var description: String { "\(call): \(String(cString: mdb_strerror(code))) (\(code))" }
}

@inline(__always)
func check(_ rc: Int32, _ call: @autoclosure () -> String) throws {
    if rc != 0 { throw LMDBFailure(code: rc, call: call()) }
}

/// The floor: LMDB through its C API, with the same key layout, record bytes and named
/// database ("records") as SessionStore, and the same environment flags (`MDB_NOTLS`).
final class RawLMDB: @unchecked Sendable {
    let env: OpaquePointer
    var dbi: MDB_dbi = 0

    static var version: String {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        _ = mdb_version(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }

    init(path: String, mapSize: Int = 1 << 30, noSync: Bool = false) throws {
        var env: OpaquePointer?
        try check(mdb_env_create(&env), "mdb_env_create")
        self.env = env!
        try check(mdb_env_set_maxdbs(self.env, 8), "mdb_env_set_maxdbs")
        try check(mdb_env_set_maxreaders(self.env, 4096), "mdb_env_set_maxreaders")
        try check(mdb_env_set_mapsize(self.env, mapSize), "mdb_env_set_mapsize")
        var flags = UInt32(MDB_NOTLS)
        if noSync { flags |= UInt32(MDB_NOSYNC) }
        try check(mdb_env_open(self.env, path, flags, 0o600), "mdb_env_open")
        var txn: OpaquePointer?
        try check(mdb_txn_begin(self.env, nil, 0, &txn), "mdb_txn_begin")
        try check(mdb_dbi_open(txn, "records", UInt32(MDB_CREATE), &dbi), "mdb_dbi_open")
        try check(mdb_txn_commit(txn), "mdb_txn_commit")
    }

    func close() { mdb_env_close(env) }

    /// Turns `MDB_NOSYNC` on or off for later commits.
    func setNoSync(_ on: Bool) throws {
        try check(mdb_env_set_flags(env, UInt32(MDB_NOSYNC), on ? 1 : 0), "mdb_env_set_flags")
    }

    func sync() throws { try check(mdb_env_sync(env, 1), "mdb_env_sync") }

    /// One read transaction: begin, get, `body` on the value bytes, abort.
    @inline(__always)
    func get<R>(_ key: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn), "mdb_txn_begin")
        defer { mdb_txn_abort(txn) }
        var data = MDB_val()
        let rc = key.withUnsafeBytes { bytes in
            var k = MDB_val(mv_size: bytes.count, mv_data: UnsafeMutableRawPointer(mutating: bytes.baseAddress))
            return mdb_get(txn, dbi, &k, &data)
        }
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, "mdb_get")
        return try body(UnsafeRawBufferPointer(start: data.mv_data, count: data.mv_size))
    }

    /// One write transaction holding one put; durable unless `MDB_NOSYNC` is on.
    @inline(__always)
    func put(_ key: [UInt8], _ value: [UInt8]) throws {
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, 0, &txn), "mdb_txn_begin")
        do {
            try putIn(txn!, key, value)
        } catch {
            mdb_txn_abort(txn)
            throw error
        }
        try check(mdb_txn_commit(txn), "mdb_txn_commit")
    }

    /// Puts every pair in one write transaction.
    func putAll(_ pairs: [([UInt8], [UInt8])]) throws {
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, 0, &txn), "mdb_txn_begin")
        for (key, value) in pairs { try putIn(txn!, key, value) }
        try check(mdb_txn_commit(txn), "mdb_txn_commit")
    }

    @inline(__always)
    private func putIn(_ txn: OpaquePointer, _ key: [UInt8], _ value: [UInt8]) throws {
        let rc = key.withUnsafeBytes { k in
            value.withUnsafeBytes { v in
                var kv = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
                var dv = MDB_val(mv_size: v.count, mv_data: UnsafeMutableRawPointer(mutating: v.baseAddress))
                return mdb_put(txn, dbi, &kv, &dv, 0)
            }
        }
        try check(rc, "mdb_put")
    }

    /// Deletes every key starting with `prefix` with one cursor, in one (durable) write transaction.
    @discardableResult
    func deletePrefix(_ prefix: [UInt8]) throws -> Int {
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, 0, &txn), "mdb_txn_begin")
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(txn, dbi, &cursor), "mdb_cursor_open")
        var count = 0
        try prefix.withUnsafeBytes { p in
            var key = MDB_val(mv_size: p.count, mv_data: UnsafeMutableRawPointer(mutating: p.baseAddress))
            var data = MDB_val()
            var rc = mdb_cursor_get(cursor, &key, &data, MDB_SET_RANGE)
            while rc == 0, key.mv_size >= p.count, memcmp(key.mv_data, p.baseAddress!, p.count) == 0 {
                try check(mdb_cursor_del(cursor, 0), "mdb_cursor_del")
                count += 1
                // After a delete the cursor stands on the next pair; MDB_NEXT returns it.
                rc = mdb_cursor_get(cursor, &key, &data, MDB_NEXT)
            }
            if rc != 0 && rc != MDB_NOTFOUND { try check(rc, "mdb_cursor_get") }
        }
        mdb_cursor_close(cursor)
        try check(mdb_txn_commit(txn), "mdb_txn_commit")
        return count
    }

    /// Whether `key` holds exactly `value` (the record-bytes cross-check).
    func contains(_ key: [UInt8], value: [UInt8]) throws -> Bool {
        try get(key) { Array($0) == value } ?? false
    }
}
