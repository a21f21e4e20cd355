import Foundation
import Synchronization
import Testing
import CBORCoding
@testable import SessionStore

struct Preferences: Codable, Sendable, Equatable {
    var theme: String
    var fontSize: Int
}

extension Key where Value == Preferences {
    static let prefs = Key("prefs")
}

extension Key where Value == Int {
    static let counter = Key("counter")
}

/// The origin's semantics at both scopes (issue #2, done-when 2).
@Suite struct ScopeSemanticsTests {
    let light = Preferences(theme: "light", fontSize: 12)
    let dark = Preferences(theme: "dark", fontSize: 14)

    @Test func saveReturnsThePreviousValue() async throws {
        try await withTemporaryStore { store, _ in
            for scope: any StorageScope in [try store.session("s1"), try store.session("s1").instance("t1")] {
                #expect(try scope.save(light, for: .prefs) == nil)
                #expect(try scope.save(dark, for: .prefs) == light)
                #expect(try scope.load(.prefs) == dark)
            }
        }
    }

    @Test func loadOfAMissingKeyIsNil() async throws {
        try await withTemporaryStore { store, _ in
            let session = try store.session("s1")
            #expect(try session.load(.prefs) == nil)
            #expect(try session.instance("t").load(Int.self, for: "nothing") == nil)
        }
    }

    @Test func removeReturnsTheRemovedValueAndIsANoOpForMissingKeys() async throws {
        try await withTemporaryStore { store, _ in
            let tab = try store.session("s1").instance("t1")
            try tab.save(light, for: .prefs)
            #expect(try tab.remove(.prefs) == light)
            #expect(try tab.load(.prefs) == nil)
            #expect(try tab.remove(.prefs) == nil)
            #expect(try tab.remove("never-there") == false)
            #expect(try recordKeyStrings(store).isEmpty)
        }
    }

    @Test func sessionValuesAreSeenFromEveryInstance() async throws {
        try await withTemporaryStore { store, _ in
            let session = try store.session("shared")
            try session.save(light, for: .prefs)
            // Instances are views of the session: its values are reached through it.
            for tab in ["a", "b", "c"] {
                let instance = try session.instance(tab)
                #expect(try store.session(instance.sessionID).load(.prefs) == light)
                #expect(try instance.session.load(.prefs) == light)
            }
            // Sessions opened again by id see the same value.
            #expect(try store.session("shared").load(.prefs) == light)
        }
    }

    @Test func instanceValuesAreIsolated() async throws {
        try await withTemporaryStore { store, _ in
            let s1 = try store.session("s1")
            let s2 = try store.session("s2")
            let a = try s1.instance("tab")
            let b = try s1.instance("tab2")
            let c = try s2.instance("tab")      // same instance id, other session
            try a.save(1, for: .counter)
            try b.save(2, for: .counter)
            #expect(try a.load(.counter) == 1)
            #expect(try b.load(.counter) == 2)
            #expect(try c.load(.counter) == nil)
            #expect(try s1.load(.counter) == nil)  // instance values are not session values
            try s1.save(9, for: .counter)
            #expect(try a.load(.counter) == 1)
        }
    }

    @Test func typedAndUntypedKeysAddressTheSameRecord() async throws {
        try await withTemporaryStore { store, _ in
            let session = try store.session("s1")
            try session.save(light, for: "prefs")
            #expect(try session.load(.prefs) == light)
            try session.save(dark, for: Key<Preferences>.prefs)
            #expect(try session.load(Preferences.self, for: "prefs") == dark)
            #expect(try recordKeyStrings(store).count == 1)
        }
    }

    @Test func loadAsTheWrongTypeNamesTheKeyAndBothTypes() async throws {
        try await withTemporaryStore { store, _ in
            let session = try store.session("s1")
            try session.save(light, for: .prefs)
            // Once from the cache's path, once after clearing the cache (straight from LMDB).
            for _ in 0..<2 {
                let error = #expect(throws: SessionStoreError.self) { try session.load(Int.self, for: "prefs") }
                #expect(error?.code == .typeMismatch)
                #expect(error?.message.contains("\"prefs\"") == true)
                #expect(error?.message.contains("Preferences") == true)
                #expect(error?.message.contains("Swift.Int") == true)
                store.cache.removeAll()
            }
        }
    }

    @Test func saveOverAnotherTypeReturnsNilAndWrites() async throws {
        try await withTemporaryStore { store, _ in
            let session = try store.session("s1")
            try session.save("text", for: "k")
            #expect(try session.save(5, for: "k") == nil)
            #expect(try session.load(Int.self, for: "k") == 5)
        }
    }

    @Test func nonStringKeysWork() async throws {
        struct Compound: Codable, Hashable, Sendable { var a: Int; var b: String }
        try await withTemporaryStore { store, _ in
            let session = try store.session("s1")
            try session.save("by int", for: 42)
            try session.save("by struct", for: Compound(a: 1, b: "x"))
            #expect(try session.load(String.self, for: 42) == "by int")
            #expect(try session.load(String.self, for: Compound(a: 1, b: "x")) == "by struct")
        }
    }

    @Test func keysSkipsKeysThatAreNotStringsAndNonStringKeysReportsThem() async throws {
        struct Compound: Codable, Hashable, Sendable { var a: Int; var b: String }
        try await withTemporaryStore { store, _ in
            let session = try store.session("s1")
            try session.save(1, for: "named")
            try session.save(2, for: 42)
            try session.save(3, for: Compound(a: 1, b: "x"))
            #expect(try session.keys() == ["named"])
            let others = try session.nonStringKeys()
            #expect(others.count == 2)
            #expect(others.contains { $0 == CBOR(42) })
            #expect(others.contains { $0 == .map([(key: "a", value: 1), (key: "b", value: "x")]) })
        }
    }

    @Test func anAsyncWriteOfACancelledTaskThrowsCancelledAndWritesNothing() async throws {
        try await withTemporaryStore { store, _ in
            let session = try store.session("s")
            let started = AsyncStream<Void>.makeStream()
            let task = Task {
                started.continuation.yield()
                while !Task.isCancelled { await Task.yield() }
                return try await session.save("written", for: "k")
            }
            for await _ in started.stream { break }
            task.cancel()
            do {
                _ = try await task.value
                Issue.record("the save of a cancelled task returned")
            } catch let error as SessionStoreError {
                #expect(error.code == .cancelled, "\(error)")
            }
            #expect(try session.load(String.self, for: "k") == nil)
        }
    }

    @Test func keysListsAScopesKeys() async throws {
        try await withTemporaryStore { store, _ in
            let session = try store.session("s1")
            try session.save(1, for: "b")
            try session.save(2, for: "a")
            try session.instance("t").save(3, for: "c")
            try store.session("s10").save(4, for: "d")
            #expect(try session.keys() == ["a", "b"])
            #expect(try session.instance("t").keys() == ["c"])
            #expect(try session.instanceIDs() == ["t"])
        }
    }

    @Test func loadOrInitBuildsOnceForConcurrentCallers() async throws {
        // @unchecked Sendable: `value` is only touched under `lock`.
        final class Counter: @unchecked Sendable {
            private let lock = NSLock()
            private var count = 0
            func increment() { lock.withLock { count += 1 } }
            var value: Int { lock.withLock { count } }
        }
        try await withTemporaryStore { store, _ in
            let tab = try store.session("s").instance("t")
            let builds = Counter()
            let results = await withTaskGroup(of: Int?.self) { group in
                for _ in 0..<16 {
                    group.addTask {
                        try? tab.loadOrInit(.counter) {
                            builds.increment()
                            Thread.sleep(forTimeInterval: 0.02)
                            return 77
                        }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.allSatisfy { $0 == 77 })
            #expect(builds.value == 1)
            #expect(try tab.loadOrInit(.counter) { 5 } == 77)
        }
    }

    @Test func loadOrInitCalledAgainForItsOwnKeyFromItsMakeClosureThrowsInsteadOfDeadlocking() async throws {
        try await withTemporaryStore { store, _ in
            let tab = try store.session("s").instance("t")
            let outcome = finishing(within: 10) {
                try tab.loadOrInit(.counter) {
                    try tab.loadOrInit(.counter) { 1 }
                }
            }
            guard let outcome else { Issue.record("loadOrInit deadlocked on its own key"); return }
            #expect(throws: SessionStoreError.self) { try outcome.get() }
            #expect((try? outcome.get()) == nil)
            if case .failure(let error as SessionStoreError) = outcome { #expect(error.code == .initCycle, "\(error)") }
            // The key is free again afterwards.
            #expect(try tab.loadOrInit(.counter) { 3 } == 3)
        }
    }

    @Test func twoLoadOrInitsWaitingOnEachOthersKeysDoNotDeadlock() async throws {
        try await withTemporaryStore { store, _ in
            let session = try store.session("s")
            let first = Key<Int>("first")
            let second = Key<Int>("second")
            // Each build starts, waits until the other has started, then asks for the
            // other's key: a cycle, which one of them must detect.
            let started = DispatchSemaphore(value: 0)
            let otherStarted = DispatchSemaphore(value: 0)
            let a = DispatchQueue(label: "a")
            let b = DispatchQueue(label: "b")
            let results = Mutex<[String: Result<Int, any Error>]>([:])
            let group = DispatchGroup()
            a.async(group: group) {
                let result = Result { try session.loadOrInit(first) { started.signal(); otherStarted.wait(); return try session.loadOrInit(second) { 2 } + 10 } }
                results.withLock { $0["a"] = result }
            }
            b.async(group: group) {
                let result = Result { try session.loadOrInit(second) { otherStarted.signal(); started.wait(); return try session.loadOrInit(first) { 1 } + 20 } }
                results.withLock { $0["b"] = result }
            }
            guard group.wait(timeout: .now() + 10) == .success else {
                Issue.record("two loadOrInits waiting on each other's keys deadlocked")
                return
            }
            let (ra, rb) = results.withLock { ($0["a"]!, $0["b"]!) }
            let failures = [ra, rb].filter { if case .failure = $0 { true } else { false } }
            #expect(failures.count == 1, "exactly one side of the cycle gives up: \(ra), \(rb)")
            for case .failure(let error as SessionStoreError) in [ra, rb] { #expect(error.code == .initCycle, "\(error)") }
        }
    }

    /// A value whose decoding writes to the store, growing the map: user `init(from:)` code
    /// must not run while the store holds a lock that the write needs.
    struct Reentrant: Codable, Sendable {
        static let store = Mutex<SessionStore?>(nil)
        var marker: Int
        init(marker: Int) { self.marker = marker }
        init(from decoder: any Decoder) throws {
            marker = try decoder.singleValueContainer().decode(Int.self)
            if let store = Self.store.withLock({ $0 }) {
                // Larger than the whole 1 MiB map: the commit must grow it.
                try store.session("other").save(Data(count: 2 << 20), for: "big")
            }
        }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(marker)
        }
    }

    @Test func aValuesDecodingMayUseTheStoreEvenWhenTheMapMustGrow() async throws {
        try await withTemporaryStore(.init(cacheCapacity: 0, mapSize: 1 << 20)) { store, _ in
            let session = try store.session("s")
            try session.save(Reentrant(marker: 5), for: "r")
            Reentrant.store.withLock { $0 = store }
            defer { Reentrant.store.withLock { $0 = nil } }
            let outcome = finishing(within: 20) { try session.load(Reentrant.self, for: "r")?.marker }
            guard let outcome else { Issue.record("a load whose decoding grows the map deadlocked"); return }
            #expect(try outcome.get() == 5)
            #expect(try store.session("other").load(Data.self, for: "big")?.count == 2 << 20)
        }
    }

    @Test func asyncTwinsWrite() async throws {
        try await withTemporaryStore { store, _ in
            let session = try store.session("s1")
            #expect(try await session.save(light, for: .prefs) == nil)
            #expect(try await session.save(dark, for: .prefs) == light)
            #expect(try await session.remove(.prefs) == dark)
            try await session.save(1, for: "x")
            #expect(try await session.end() == 1)
        }
    }

    @Test func writeBatchIsAllOrNothing() async throws {
        try await withTemporaryStore { store, _ in
            let session = try store.session("s1")
            let tab = try session.instance("t")
            var batch = WriteBatch()
            try batch.save(light, for: .prefs, in: session)
            try batch.save(3, for: .counter, in: tab)
            try store.apply(batch)
            #expect(try session.load(.prefs) == light)
            #expect(try tab.load(.counter) == 3)
        }
    }
}
