import Foundation
import Testing
@testable import SessionStore

/// Equal keys are equal bytes, in every process: the layout's rules for `Set`s and strings.
@Suite struct KeyLayoutTests {
    @Test func setKeysAndTheTwoUnicodeSpellingsOfAStringNameTheSameRecordInAnotherProcess() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.child("store")
        let saved = try runProduct("sessionstore-child", ["keys", "save", path])
        #expect(saved.status == 0, "\(saved.output)")
        let loaded = try runProduct("sessionstore-child", ["keys", "load", path])
        #expect(loaded.status == 0, "\(loaded.output)")
        #expect(loaded.output.contains("loaded 3"), "\(loaded.output)")
    }

    @Test func aStringKeyIsStoredInNFCAndListedSo() async throws {
        try await withTemporaryStore { store, _ in
            let session = try store.session("s")
            try session.save(1, for: "Cafe\u{301}")
            #expect(try session.load(Int.self, for: "Caf\u{E9}") == 1)
            #expect(try session.keys().map { Array($0.unicodeScalars) } == [Array("Caf\u{E9}".unicodeScalars)])
            let key = Key<Int>("Cafe\u{301}")
            #expect(try session.load(key) == 1)
            // ASCII keys take the fast path and stay as they are.
            try session.save(2, for: "plain")
            #expect(try session.keys().contains("plain"))
        }
    }
}
