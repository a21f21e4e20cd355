import Foundation
import Testing
@testable import SessionStore

/// The record format: header fields, type names and their stability across processes.
@Suite struct RecordTests {
    private struct Draft: Codable, Sendable {}

    @Test func storedTypeNamesHoldNoRunTimeAddress() {
        struct Local: Codable, Sendable {}
        for name in [TypeName.bytes(of: Draft.self), TypeName.bytes(of: Local.self), TypeName.bytes(of: [Draft?].self)] {
            let text = String(decoding: name, as: UTF8.self)
            #expect(!text.contains("unknown context"), "\(text)")
            #expect(!text.contains("$"), "\(text)")
        }
        #expect(String(decoding: TypeName.bytes(of: [Draft?].self), as: UTF8.self) == "Swift.Array<Swift.Optional<SessionStoreTests.RecordTests.Draft>>")
    }

    @Test func aRecordWrittenWithAnAddressInItsTypeNameStillLoads() throws {
        let stored = Array("SessionStoreTests.RecordTests.(unknown context at $5566e1a0c1c8).Draft".utf8)
        let matched = stored.withUnsafeBytes { TypeName.matches($0, TypeName.bytes(of: Draft.self)) }
        #expect(matched)
        let other = Array("SessionStoreTests.RecordTests.(unknown context at $5566e1a0c1c8).Drafts".utf8)
        #expect(!other.withUnsafeBytes { TypeName.matches($0, TypeName.bytes(of: Draft.self)) })
    }

    @Test func valuesOfPrivateLocalGenericAndNestedTypesLoadInAFreshProcess() throws {
        let directory = TemporaryDirectory("types")
        defer { directory.remove() }
        let path = directory.child("store")
        let saved = try runProduct("sessionstore-child", ["types", "save", path])
        #expect(saved.status == 0, "\(saved.output)")
        // A second process: ASLR puts the types' context descriptors at other addresses.
        let loaded = try runProduct("sessionstore-child", ["types", "load", path])
        #expect(loaded.status == 0, "\(loaded.output)")
        #expect(loaded.output.contains("loaded 5"), "\(loaded.output)")
    }
}
