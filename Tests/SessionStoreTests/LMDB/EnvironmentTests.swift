import CLMDB
import Foundation
import Testing
@testable import SessionStore

/// The LMDB layer on its own: closure-only transactions, cursors, errors, growth.
@Suite struct EnvironmentTests {
    struct Planned: Error {}

    /// Opens a bare environment with one database in a temporary directory.
    func withEnvironment(mapSize: Int = 1 << 20, _ body: (Environment, MDB_dbi) throws -> Void) throws {
        let directory = TemporaryDirectory("env")
        defer { directory.remove() }
        let environment = try Environment(path: directory.path, options: .init(mapSize: mapSize))
        defer { environment.close() }
        try body(environment, try environment.openDatabase("test"))
    }

    @Test func aWriteCommitsOnReturnAndAbortsOnThrow() throws {
        try withEnvironment { environment, dbi in
            try environment.write { txn in try txn.put(dbi, key: Array("kept".utf8), value: [1]) }
            #expect(throws: Planned.self) {
                try environment.write { txn in
                    try txn.put(dbi, key: Array("dropped".utf8), value: [2])
                    throw Planned()
                }
            }
            let (kept, dropped) = try environment.read { txn in
                (try txn.get(dbi, key: Array("kept".utf8)).map(Array.init), try txn.get(dbi, key: Array("dropped".utf8)).map(Array.init))
            }
            #expect(kept == [1])
            #expect(dropped == nil)
        }
    }

    @Test func snapshotIDsFollowCommits() throws {
        try withEnvironment { environment, dbi in
            let before = try environment.snapshotID()
            let written = try environment.write { txn in
                try txn.put(dbi, key: [1], value: [1])
                return txn.id
            }
            #expect(written == before + 1)
            #expect(try environment.snapshotID() == written)
        }
    }

    @Test func cursorDeletesExactlyAPrefix() throws {
        try withEnvironment { environment, dbi in
            let keys = ["a/1", "a/2", "a/3", "ab/1", "a-b/1", "b/1"].map { Array($0.utf8) }
            try environment.write { txn in for key in keys { try txn.put(dbi, key: key, value: key) } }
            let (count, deleted) = try environment.write { txn in
                try txn.withCursor(dbi) { cursor in try cursor.deleteAll(withPrefix: Array("a/".utf8), collectKeys: true) }
            }
            #expect(count == 3)
            #expect(deleted.map { String(decoding: $0, as: UTF8.self) } == ["a/1", "a/2", "a/3"])
            let left = try allRecords(environment, dbi).map { String(decoding: $0.0, as: UTF8.self) }
            #expect(left == ["a-b/1", "ab/1", "b/1"])
        }
    }

    @Test func aFullMapIsAnErrorUntilItGrows() throws {
        try withEnvironment(mapSize: 64 << 10) { environment, dbi in
            let value = [UInt8](repeating: 7, count: 16 << 10)
            var failure: LMDBError?
            for index in 0..<64 where failure == nil {
                do {
                    try environment.write { txn in try txn.put(dbi, key: [UInt8(index)], value: value) }
                } catch let error as LMDBError {
                    failure = error
                }
            }
            #expect(failure?.code == LMDBError.mapFull)
            #expect(failure?.description.contains("MDB_MAP_FULL") == true)
            #expect(try environment.grow(ceiling: nil))
            try environment.write { txn in try txn.put(dbi, key: [200], value: value) }
            #expect(try environment.grow(ceiling: environment.mapSize) == false)
        }
    }

    @Test func aClosedEnvironmentRefusesTransactions() throws {
        let directory = TemporaryDirectory("env")
        defer { directory.remove() }
        let environment = try Environment(path: directory.path, options: .init(mapSize: 1 << 20))
        environment.close()
        environment.close()
        #expect(throws: LMDBError.self) { try environment.read { _ in 0 } }
        #expect(throws: LMDBError.self) { try environment.snapshotID() }
    }
}
