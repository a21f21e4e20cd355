import Foundation
import Synchronization
import Testing
@testable import SessionStore

/// The read-through cache (issue #2, done-when 7).
@Suite struct CacheTests {
    @Test func hitsAreServedWithoutReadingTheRecordFromLMDB() async throws {
        try await withTemporaryStore { store, _ in
            let session = try store.session("s")
            try session.save(Preferences(theme: "a", fontSize: 1), for: .prefs)
            store.cache.removeAll()
            let readsBefore = store.recordReads
            #expect(try session.load(.prefs)?.theme == "a")        // miss: one LMDB read
            #expect(store.recordReads == readsBefore + 1)
            for _ in 0..<100 { #expect(try session.load(.prefs)?.theme == "a") }
            #expect(store.recordReads == readsBefore + 1)
            #expect(store.cacheStatistics.hits >= 100)
        }
    }

    @Test func aWriteIsVisibleToTheNextLoadThroughTheCache() async throws {
        try await withTemporaryStore { store, _ in
            let session = try store.session("s")
            try session.save(1, for: .counter)
            #expect(try session.load(.counter) == 1)
            try session.save(2, for: .counter)
            let reads = store.recordReads
            #expect(try session.load(.counter) == 2)
            #expect(store.recordReads == reads)   // the writer updated the cache
            try session.remove(.counter)
            #expect(try session.load(.counter) == nil)
        }
    }

    @Test func aWriteFromAnotherProcessIsSeenOnTheNextLoad() async throws {
        try await withTemporaryStore { store, path in
            let session = try store.session("s")
            try session.save("mine", for: "k")
            #expect(try session.load(String.self, for: "k") == "mine")
            #expect(try session.load(String.self, for: "k") == "mine")  // cached now
            let child = try runProduct("sessionstore-child", ["put", path, "s", "k", "theirs"])
            #expect(child.status == 0, "\(child.output)")
            #expect(try session.load(String.self, for: "k") == "theirs")
        }
    }

    @Test func capacityBoundsTheCache() async throws {
        try await withTemporaryStore(.init(cacheCapacity: 10)) { store, _ in
            let session = try store.session("s")
            for index in 0..<50 { try session.save(index, for: "k\(index)") }
            for index in 0..<50 { #expect(try session.load(Int.self, for: "k\(index)") == index) }
            #expect(store.cacheStatistics.entries <= 10)
        }
    }

    @Test func theDefaultCacheHoldsAtMostItsByteBudgetOfLargeValues() async throws {
        // 96 values of 1 MiB fit the default entry capacity (10,000) many times over; the
        // default byte budget (64 MiB) must bound them, by saves and by loads alike.
        let configuration = SessionStore.Configuration(durability: .relaxed(syncInterval: .seconds(10)))
        try await withTemporaryStore(configuration) { store, _ in
            let session = try store.session("s")
            let value = Data(repeating: 7, count: 1 << 20)
            for index in 0..<96 { try session.save(value, for: "v\(index)") }
            #expect(store.cache.count <= 64, "\(store.cache.count) values of 1 MiB cached")
            store.cache.removeAll()
            for index in 0..<96 { #expect(try session.load(Data.self, for: "v\(index)")?.count == 1 << 20) }
            #expect(store.cache.count <= 64, "\(store.cache.count) values of 1 MiB cached after loads")
        }
    }

    @Test func aConfiguredByteBudgetBoundsTheCacheAndAValueLargerThanItIsNotCached() async throws {
        try await withTemporaryStore(.init(cacheByteLimit: 100_000)) { store, _ in
            let session = try store.session("s")
            for index in 0..<50 { try session.save(Data(count: 10_000), for: "v\(index)") }
            #expect(store.cache.byteCount <= 100_000)
            #expect(store.cache.count >= 5 && store.cache.count < 10, "\(store.cache.count) entries")
            // Larger than the whole budget: stored and loaded, never cached.
            try session.save(Data(count: 200_000), for: "huge")
            let reads = store.recordReads
            #expect(try session.load(Data.self, for: "huge")?.count == 200_000)
            #expect(try session.load(Data.self, for: "huge")?.count == 200_000)
            #expect(store.recordReads == reads + 2)
            #expect(store.cache.byteCount <= 100_000)
            // A small value replacing the huge one is cached again.
            try session.save(Data(count: 10), for: "huge")
            let before = store.recordReads
            #expect(try session.load(Data.self, for: "huge")?.count == 10)
            #expect(store.recordReads == before)
        }
    }

    /// A value whose `deinit` uses the store: the cache must not drop it under its lock.
    final class Tripwire: Codable, Sendable {
        let marker: Int
        /// The store the deinit loads from; not encoded.
        let store: SessionStore?
        init(marker: Int, store: SessionStore) { self.marker = marker; self.store = store }
        enum CodingKeys: String, CodingKey { case marker }
        init(from decoder: any Decoder) throws {
            marker = try decoder.container(keyedBy: CodingKeys.self).decode(Int.self, forKey: .marker)
            store = nil
        }
        deinit {
            if let store { _ = try? store.session("other").load(Int.self, for: "n") }
        }
    }

    @Test(arguments: ["evicted", "replaced by another process's commit"])
    func aValueWhoseDeinitUsesTheStoreIsReleasedOutsideTheCachesLock(_ how: String) async throws {
        try await withTemporaryStore(.init(cacheCapacity: 1)) { store, path in
            let session = try store.session("s")
            try session.save(Tripwire(marker: 1, store: store), for: "t")
            let outcome = finishing(within: 10) { () throws -> Int? in
                if how == "evicted" {
                    try session.save(2, for: "other")          // capacity 1: the tripwire goes
                } else {
                    // Another process commits: the next load empties the cache.
                    let child = try runProduct("sessionstore-child", ["put", path, "s", "x", "y"])
                    guard child.status == 0 else { throw SessionStoreError(.storageFailure, child.output) }
                }
                return try session.load(Int.self, for: "other")
            }
            guard let outcome else { Issue.record("releasing a cached value whose deinit uses the store deadlocked (\(how))"); return }
            _ = try outcome.get()
        }
    }

    @Test func aDisabledCacheStillLoads() async throws {
        try await withTemporaryStore(.init(cacheCapacity: 0)) { store, _ in
            let session = try store.session("s")
            try session.save(5, for: .counter)
            #expect(try session.load(.counter) == 5)
            #expect(store.cacheStatistics.entries == 0)
        }
    }

    @Test func endingAScopeDropsItsCachedValues() async throws {
        try await withTemporaryStore { store, _ in
            let session = try store.session("s")
            try session.save(1, for: .counter)
            try session.instance("t").save(2, for: .counter)
            _ = try session.load(.counter)
            try session.end()
            #expect(try session.load(.counter) == nil)
            #expect(try session.instance("t").load(.counter) == nil)
        }
    }
}

/// Regressions found in review: commits that change nothing, and exact types on hits.
@Suite struct CacheConsistencyTests {
    /// A transaction that changes nothing commits no snapshot; its id is then used by the
    /// next commit of another process, which the cache must still see.
    @Test(arguments: ["remove", "end", "empty batch"])
    func aCommitThatChangesNothingDoesNotHideAnotherProcessesCommit(_ noOp: String) async throws {
        try await withTemporaryStore { store, path in
            let session = try store.session("s")
            try session.save("one", for: "k")
            #expect(try session.load(String.self, for: "k") == "one")
            switch noOp {
            case "remove": #expect(try session.remove("missing") == false)
            case "end": #expect(try store.session("empty").end() == 0)
            default: try store.apply(WriteBatch())
            }
            let child = try runProduct("sessionstore-child", ["put", path, "s", "k", "two"])
            #expect(child.status == 0, "\(child.output)")
            #expect(try session.load(String.self, for: "k") == "two")
            #expect(try session.save("three", for: "k") == "two")
        }
    }

    @Test func aCachedOptionalIsNotServedAsItsWrappedType() async throws {
        try await withTemporaryStore { store, _ in
            let session = try store.session("s")
            try session.save(Int?(3), for: "k")
            #expect(try session.load(Int?.self, for: "k") == .some(3))
            let error = #expect(throws: SessionStoreError.self) { try session.load(Int.self, for: "k") }
            #expect(error?.code == .typeMismatch)
            try session.save(4, for: "n")
            let wrapped = #expect(throws: SessionStoreError.self) { try session.load(Int?.self, for: "n") }
            #expect(wrapped?.code == .typeMismatch)
        }
    }

    @Test func loadsDuringThisProcesssWritesKeepTheirCachedValues() async throws {
        try await withTemporaryStore(.init(durability: .relaxed(syncInterval: .seconds(1)))) { store, _ in
            let session = try store.session("s")
            let hot = (0..<100).map { "hot\($0)" }
            for (index, key) in hot.enumerated() { try await session.save(index, for: key) }
            for key in hot { _ = try session.load(Int.self, for: key) }
            let readsBefore = store.recordReads
            // A writer commits while this task loads the hot keys: a load that sees a commit
            // of this process before the writer applied it must not empty the cache.
            let done = MapGrowthTests.Flag()
            let writer = Task.detached {
                defer { done.value.store(true, ordering: .releasing) }
                for step in 0..<2_000 { try await session.save(step, for: "counter") }
            }
            var rounds = 0
            while !done.value.load(ordering: .acquiring) {
                for (index, key) in hot.enumerated() {
                    #expect(try session.load(Int.self, for: key) == index)
                }
                rounds += 1
                if rounds % 16 == 0 { await Task.yield() }
            }
            try await writer.value
            #expect(rounds > 10)
            #expect(store.recordReads == readsBefore, "hot keys were read again from LMDB: the cache was emptied")
        }
    }

    class Base: Codable, @unchecked Sendable {
        var name: String
        init(name: String) { self.name = name }
    }

    final class Derived: Base, @unchecked Sendable {
        var extra = 7
        init(name: String, extra: Int) {
            self.extra = extra
            super.init(name: name)
        }
        required init(from decoder: any Decoder) throws { try super.init(from: decoder) }
    }

    @Test func aHitReturnsWhatAMissReturnsForASubclassSavedAsItsBase() async throws {
        try await withTemporaryStore { store, _ in
            let session = try store.session("s")
            let saved: Base = Derived(name: "a", extra: 9)
            try session.save(saved, for: "k")
            let first = try #require(try session.load(Base.self, for: "k"))
            let second = try #require(try session.load(Base.self, for: "k"))   // a hit now
            store.cache.removeAll()
            let miss = try #require(try session.load(Base.self, for: "k"))
            #expect(type(of: first) == Base.self && type(of: second) == Base.self && type(of: miss) == Base.self)
            #expect(first !== saved && second.name == "a")
            #expect(store.cacheStatistics.hits >= 1)
        }
    }
}
