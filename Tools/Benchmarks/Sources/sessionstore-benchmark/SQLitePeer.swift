import Foundation
import GRDB

/// SQLite through GRDB: a key/value table (`key TEXT PRIMARY KEY, value BLOB`, values as
/// JSON), a `DatabasePool` (WAL), cached statements.
final class SQLitePeer: Sendable {
    let pool: DatabasePool

    init(path: String) throws {
        var configuration = Configuration()
        configuration.maximumReaderCount = 8
        pool = try DatabasePool(path: path, configuration: configuration)
        try pool.write { db in
            try db.execute(sql: "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID")
        }
    }

    /// Sets `PRAGMA synchronous` on the writer connection (`FULL` or `NORMAL`) and returns what SQLite reports.
    @discardableResult
    func setSynchronous(_ mode: String) throws -> Int {
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = \(mode)")
            return try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1
        }
    }

    func insertAll(_ rows: [(String, Data)]) throws {
        try pool.write { db in
            let statement = try db.cachedStatement(sql: "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)")
            for (key, value) in rows { try statement.execute(arguments: [key, value]) }
        }
    }

    /// One point read in its own read access.
    @inline(__always)
    func get(_ key: String) throws -> Data? {
        try pool.read { db in
            let statement = try db.cachedStatement(sql: "SELECT value FROM kv WHERE key = ?")
            return try Data.fetchOne(statement, arguments: [key])
        }
    }

    /// `keys.count` point reads in one read access (one snapshot), `body` on each value.
    func getMany(_ keys: ArraySlice<String>, _ body: (Data) throws -> Void) throws {
        try pool.read { db in
            let statement = try db.cachedStatement(sql: "SELECT value FROM kv WHERE key = ?")
            for key in keys { try body(try Data.fetchOne(statement, arguments: [key])!) }
        }
    }

    /// One write transaction holding one upsert.
    @inline(__always)
    func put(_ key: String, _ value: Data) throws {
        try pool.write { db in
            try db.cachedStatement(sql: "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)")
                .execute(arguments: [key, value])
        }
    }

    /// One write transaction holding one upsert, suspending for GRDB's serialized writer.
    func put(_ key: String, _ value: Data) async throws {
        try await pool.write { db in
            try db.cachedStatement(sql: "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)")
                .execute(arguments: [key, value])
        }
    }

    func read(_ key: String) async throws -> Data? {
        try await pool.read { db in
            let statement = try db.cachedStatement(sql: "SELECT value FROM kv WHERE key = ?")
            return try Data.fetchOne(statement, arguments: [key])
        }
    }

    func close() throws { try pool.close() }
}
