import CLMDB
import Foundation

/// LMDB environments built and inspected with raw LMDB calls, as another program would.
enum RawLMDB {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    private static func check(_ rc: Int32, _ call: String) throws {
        if rc != 0 { throw Failure(description: "\(call): \(String(cString: mdb_strerror(rc)))") }
    }

    /// Runs `body` on an environment opened (created when missing) in the directory `path`.
    static func withEnvironment<R>(_ path: String, _ body: (OpaquePointer) throws -> R) throws -> R {
        var env: OpaquePointer?
        try check(mdb_env_create(&env), "mdb_env_create")
        defer { mdb_env_close(env) }
        try check(mdb_env_set_maxdbs(env, 8), "mdb_env_set_maxdbs")
        try check(mdb_env_open(env, path, 0, 0o600), "mdb_env_open")
        return try body(env!)
    }

    /// Writes, in one transaction, `main` into the unnamed database and each of `databases`
    /// (created even when its pairs are empty) as a named database.
    static func write(_ path: String, main: [(String, String)] = [], databases: [(name: String, pairs: [(String, String)])] = []) throws {
        try withEnvironment(path) { env in
            var txn: OpaquePointer?
            try check(mdb_txn_begin(env, nil, 0, &txn), "mdb_txn_begin")
            do {
                var dbi: MDB_dbi = 0
                try check(mdb_dbi_open(txn, nil, 0, &dbi), "mdb_dbi_open(main)")
                for (key, value) in main { try put(txn!, dbi, key, value) }
                for database in databases {
                    try check(mdb_dbi_open(txn, database.name, UInt32(MDB_CREATE), &dbi), "mdb_dbi_open(\(database.name))")
                    for (key, value) in database.pairs { try put(txn!, dbi, key, value) }
                }
                try check(mdb_txn_commit(txn), "mdb_txn_commit")
            } catch {
                mdb_txn_abort(txn)
                throw error
            }
        }
    }

    private static func put(_ txn: OpaquePointer, _ dbi: MDB_dbi, _ key: String, _ value: String) throws {
        var keyBytes = Array(key.utf8), valueBytes = Array(value.utf8)
        let count = (keyBytes.count, valueBytes.count)
        try keyBytes.withUnsafeMutableBytes { keyBuffer in
            try valueBytes.withUnsafeMutableBytes { valueBuffer in
                var keyValue = MDB_val(mv_size: count.0, mv_data: keyBuffer.baseAddress)
                var dataValue = MDB_val(mv_size: count.1, mv_data: valueBuffer.baseAddress)
                try check(mdb_put(txn, dbi, &keyValue, &dataValue, 0), "mdb_put(\(key))")
            }
        }
    }

    /// The id of the environment's last committed transaction.
    static func lastTransactionID(_ path: String) throws -> Int {
        try withEnvironment(path) { env in
            var info = MDB_envinfo()
            try check(mdb_env_info(env, &info), "mdb_env_info")
            return info.me_last_txnid
        }
    }
}
