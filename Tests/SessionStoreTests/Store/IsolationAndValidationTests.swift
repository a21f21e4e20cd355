import Foundation
import Testing
@testable import SessionStore

/// Ending scopes and rejected input (issue #2, done-when 3).
@Suite struct IsolationAndValidationTests {
    @Test func endingSessionALeavesLookalikeSessionsUntouched() async throws {
        try await withTemporaryStore { store, _ in
            for id in ["a", "ab", "a-b", "a.b", "b"] {
                let session = try store.session(id)
                try session.save("v-\(id)", for: "k")
                try session.instance("t").save("tab-\(id)", for: "k")
            }
            let before = try recordKeyStrings(store)
            let removed = try store.session("a").end()
            #expect(removed == 2)
            let after = try recordKeyStrings(store)
            #expect(after == before.filter { !$0.hasPrefix("session/a/") && !$0.hasPrefix("instance/a/") })
            for id in ["ab", "a-b", "a.b", "b"] {
                #expect(try store.session(id).load(String.self, for: "k") == "v-\(id)")
                #expect(try store.session(id).instance("t").load(String.self, for: "k") == "tab-\(id)")
            }
            #expect(try store.session("a").load(String.self, for: "k") == nil)
            #expect(try store.session("a").instance("t").load(String.self, for: "k") == nil)
        }
    }

    @Test func endingAnInstanceLeavesItsSessionAndSiblings() async throws {
        try await withTemporaryStore { store, _ in
            let session = try store.session("s")
            try session.save(1, for: "k")
            try session.instance("t").save(2, for: "k")
            try session.instance("t2").save(3, for: "k")
            try session.instance("t").end()
            #expect(try session.load(Int.self, for: "k") == 1)
            #expect(try session.instance("t").load(Int.self, for: "k") == nil)
            #expect(try session.instance("t2").load(Int.self, for: "k") == 3)
        }
    }

    static let badIDs: [(String, String)] = [
        ("", "empty"), (String(repeating: "x", count: 129), "limit"), ("a/b", "'/'"),
        ("é", "non-ASCII"), ("..", "'..'"), ("a..b", "'..'"), (".", "'..'"), ("a b", "character"),
        ("a%2F", "character"), ("\u{0}", "character"),
    ]

    @Test(arguments: badIDs)
    func invalidIDsAreRejectedAndChangeNothing(id: String, reason: String) async throws {
        try await withTemporaryStore { store, path in
            try store.session("good").save("v", for: "k")
            let before = try fileBytes(path)
            let sessionError = #expect(throws: SessionStoreError.self) { try store.session(id) }
            #expect(sessionError?.code == .invalidID)
            #expect(sessionError?.message.contains(reason) == true, "\(sessionError?.message ?? "")")
            let instanceError = #expect(throws: SessionStoreError.self) { try store.session("good").instance(id) }
            #expect(instanceError?.code == .invalidID)
            #expect(try fileBytes(path) == before)
        }
    }

    @Test func oversizeKeysAreRejectedAndChangeNothing() async throws {
        try await withTemporaryStore { store, _ in
            let session = try store.session("s")
            try session.save("v", for: "k")
            let recordsBefore = try allRecords(store).map { $0.0 + $0.1 }
            let longKey = String(repeating: "k", count: 500)
            for attempt in 0..<3 {
                let error = #expect(throws: SessionStoreError.self) {
                    switch attempt {
                    case 0: try session.save("x", for: longKey)
                    case 1: _ = try session.instance("t").load(String.self, for: longKey)
                    default: try session.remove(longKey)
                    }
                }
                #expect(error?.code == .keyTooLong)
                #expect(error?.message.contains("511") == true)
            }
            // The largest key that fits is accepted.
            let prefix = "session/s/".utf8.count
            let fitting = String(repeating: "k", count: 511 - prefix - 3)
            #expect(try session.save("fits", for: fitting) == nil)
            try session.remove(fitting)
            #expect(try allRecords(store).map { $0.0 + $0.1 } == recordsBefore)
        }
    }

    @Test func rejectedWritesLeaveTheFilesByteForByteUnchanged() async throws {
        struct Unencodable: Codable, Sendable {
            func encode(to encoder: any Encoder) throws {
                throw EncodingError.invalidValue(0, .init(codingPath: [], debugDescription: "refuses to encode"))
            }
        }
        try await withTemporaryStore(.init(maxValueSize: 1024)) { store, path in
            let session = try store.session("s")
            try session.save("v", for: "k")
            let before = try fileBytes(path)
            let tooLong = #expect(throws: SessionStoreError.self) { try session.save("x", for: String(repeating: "k", count: 600)) }
            #expect(tooLong?.code == .keyTooLong)
            let tooLarge = #expect(throws: SessionStoreError.self) { try session.save(String(repeating: "v", count: 2000), for: "big") }
            #expect(tooLarge?.code == .valueTooLarge)
            let unencodable = #expect(throws: SessionStoreError.self) { try session.save(Unencodable(), for: "u") }
            #expect(unencodable?.code == .encodingFailed)
            #expect(unencodable?.message.contains("refuses to encode") == true)
            #expect(try fileBytes(path) == before)
            #expect(try session.load(String.self, for: "k") == "v")
        }
    }

    @Test func aClosedStoreThrowsStoreClosed() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try SessionStore(path: directory.child("s"))
        let session = try store.session("s")
        try session.save(1, for: "k")
        try store.close()
        try store.close()  // idempotent
        for call in 0..<4 {
            let error = #expect(throws: SessionStoreError.self) {
                switch call {
                case 0: _ = try session.load(Int.self, for: "k")
                case 1: try session.save(2, for: "k")
                case 2: try session.end()
                default: _ = try session.keys()
                }
            }
            #expect(error?.code == .storeClosed)
        }
    }

    @Test func pathsThatCannotHoldAStoreAreRejected() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let file = directory.child("file")
        FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        let notDirectory = #expect(throws: SessionStoreError.self) { try SessionStore(path: file) }
        #expect(notDirectory?.code == .invalidPath)
        #expect(notDirectory?.message.contains("is a file") == true)
        let missingParent = #expect(throws: SessionStoreError.self) { try SessionStore(path: directory.child("no/such/dir")) }
        #expect(missingParent?.code == .invalidPath)
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "x")
    }

    @Test func aReadOnlyLocationIsAPermissionError() throws {
        // /proc refuses new directories even to root, so this holds whoever runs the tests.
        let error = #expect(throws: SessionStoreError.self) { try SessionStore(path: "/proc/sessionstore-test") }
        #expect(error?.code == .permissionDenied || error?.code == .invalidPath)
        #expect(error?.message.contains("/proc/sessionstore-test") == true)
    }

    @Test func aSecondOpenOfTheSamePathIsAClearError() async throws {
        try await withTemporaryStore { store, path in
            let error = #expect(throws: SessionStoreError.self) { try SessionStore(path: path) }
            #expect(error?.code == .alreadyOpen)
            let viaOtherSpelling = #expect(throws: SessionStoreError.self) { try SessionStore(path: path + "/./") }
            #expect(viaOtherSpelling?.code == .alreadyOpen)
            try store.session("s").save(1, for: "k")
        }
    }

    @Test func invalidConfigurationsAreRejected() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let error = #expect(throws: SessionStoreError.self) {
            try SessionStore(path: directory.child("s"), configuration: .init(mapSize: 1 << 20, maxMapSize: 1 << 19))
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.message.contains("maxMapSize") == true)
    }
}

/// The bytes of the store's data file.
func fileBytes(_ path: String) throws -> Data {
    try Data(contentsOf: URL(fileURLWithPath: path + "/data.mdb"))
}
