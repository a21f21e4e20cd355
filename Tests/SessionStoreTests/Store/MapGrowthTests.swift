import Foundation
import Synchronization
import Testing
@testable import SessionStore

/// The map grows by itself up to an optional ceiling (issue #2, done-when 6).
@Suite struct MapGrowthTests {
    final class Flag: Sendable {
        let value = Atomic<Bool>(false)
    }

    static let chunk = [UInt8](repeating: 0xA5, count: 64 << 10)

    @Test func fiftyMebibytesFitIntoAStoreStartingAtOneMebibyte() async throws {
        try await withTemporaryStore(.init(mapSize: 1 << 20)) { store, _ in
            let session = try store.session("big")
            let count = (50 << 20) / Self.chunk.count
            let writersDone = Flag()
            // Concurrent writers, so growth also happens inside group commits, and readers,
            // so the map changes size while loads (cache probes and LMDB reads) run.
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await withThrowingTaskGroup(of: Void.self) { writers in
                        for writer in 0..<4 {
                            writers.addTask {
                                for index in stride(from: writer, to: count, by: 4) {
                                    var value = Self.chunk
                                    value[0] = UInt8(index & 0xFF)
                                    try await session.save(Data(value), for: "k\(index)")
                                }
                            }
                        }
                        try await writers.waitForAll()
                    }
                    writersDone.value.store(true, ordering: .releasing)
                }
                for reader in 0..<2 {
                    group.addTask {
                        var index = reader
                        while !writersDone.value.load(ordering: .acquiring) {
                            let value = try session.load(Data.self, for: "k\(index % count)")
                            if let value, value.count != Self.chunk.count || value.first != UInt8(index % count & 0xFF) {
                                Issue.record("k\(index % count) read back wrong during growth")
                            }
                            index += 7
                            // The pool may have as few threads as cores: let the writers' tasks run.
                            await Task.yield()
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(store.environment.adoptedResizes == 0)
            #expect(store.environment.mapSize > 50 << 20)
            for index in 0..<count {
                let value = try session.load(Data.self, for: "k\(index)")
                #expect(value?.count == Self.chunk.count && value?.first == UInt8(index & 0xFF))
            }
        }
    }

    @Test func aWritePastTheCeilingFailsClearlyAndEarlierDataStays() async throws {
        try await withTemporaryStore(.init(mapSize: 1 << 20, maxMapSize: 4 << 20)) { store, _ in
            let session = try store.session("big")
            var written = 0
            var failure: SessionStoreError?
            while failure == nil && written < 200 {
                do throws(SessionStoreError) {
                    try session.save(Data(Self.chunk), for: "k\(written)")
                    written += 1
                } catch {
                    failure = error
                }
            }
            #expect(failure?.code == .mapFull)
            #expect(failure?.message.contains("maxMapSize") == true)
            #expect(written > 10)
            for index in 0..<written {
                #expect(try session.load(Data.self, for: "k\(index)")?.count == Self.chunk.count)
            }
            // Removing data makes room again: the store stays usable at its ceiling.
            for index in 0..<written / 2 { try session.remove("k\(index)") }
            try session.save(Data(Self.chunk), for: "again")
            #expect(try session.load(Data.self, for: "again")?.count == Self.chunk.count)
        }
    }

    @Test func aMapGrownByAnotherProcessIsAdopted() async throws {
        try await withTemporaryStore(.init(mapSize: 1 << 20)) { store, path in
            let session = try store.session("s")
            try session.save("before", for: "k")
            #expect(try session.load(String.self, for: "k") == "before")
            // The child starts at 1 MiB too and grows the map to hold 16 MiB.
            let child = try runProduct("sessionstore-child", ["fill", path, "other", "256", "65536"])
            #expect(child.status == 0, "\(child.output)")
            let other = try store.session("other")
            for index in [0, 100, 255] {
                #expect(try other.load(Data.self, for: "fill\(index)")?.count == 65536)
            }
            try session.save("after", for: "k")
            #expect(try session.load(String.self, for: "k") == "after")
            #expect(store.environment.mapSize >= 16 << 20)
            #expect(store.environment.adoptedResizes >= 1)
        }
    }
}
