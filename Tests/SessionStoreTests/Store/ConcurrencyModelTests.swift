import Foundation
import Testing
@testable import SessionStore

/// Eight tasks of mixed operations end in the state a sequential model predicts
/// (issue #2, done-when 5). Run under `swift test --sanitize=thread` in CI.
@Suite struct ConcurrencyModelTests {
    @Test func aDeadlineThatHasPassedLeavesNoTimeToWaitInsteadOfUnderflowing() {
        // The Darwin wait computes the time left from one clock reading; a reading past the
        // deadline must end the wait, not wrap around to a wait of 584 years.
        #expect(MonotonicClock.remaining(until: 1_000, now: 1_001) == nil)
        #expect(MonotonicClock.remaining(until: 1_000, now: 1_000) == nil)
        #expect(MonotonicClock.remaining(until: 1_000, now: 400) == 600)
        let lock = ConditionLock(false)
        let started = MonotonicClock.nanoseconds()
        let ready = lock.withLock(waitingUntil: { $0 }, deadline: started &- 1) { _, ready in ready }
        #expect(!ready)
        #expect(MonotonicClock.nanoseconds() - started < 5_000_000_000)
    }

    /// Where a model value lives: (session, instance or nil, key).
    struct Address: Hashable { var session: String; var instance: String?; var key: String }

    @Test func eightTasksOfMixedOperationsMatchTheModel() async throws {
        let seed = SplitMix.fromEnvironment().state
        let tasks = 8
        let operationsPerTask = 600
        try await withTemporaryStore(.init(cacheCapacity: 64)) { store, _ in
            let models = try await withThrowingTaskGroup(of: [Address: Int].self) { group in
                for task in 0..<tasks {
                    group.addTask {
                        try Self.run(task: task, seed: seed, operations: operationsPerTask, store: store)
                    }
                }
                return try await group.reduce(into: [Address: Int]()) { $0.merge($1) { _, new in new } }
            }
            // Every model value is in the store, and the store holds nothing else.
            for (address, value) in models {
                let session = try store.session(address.session)
                let scope: any StorageScope = try address.instance.map { try session.instance($0) } ?? session
                #expect(try scope.load(Int.self, for: address.key) == value, "seed \(seed): \(address)")
            }
            #expect(try allRecords(store).count == models.count, "seed \(seed)")
        }
    }

    /// One task's operations against the store and its own model. Tasks share sessions and
    /// instances but own their keys, so each task's model predicts its keys exactly.
    static func run(task: Int, seed: UInt64, operations: Int, store: SessionStore) throws -> [Address: Int] {
        var random = SplitMix(state: seed &+ UInt64(task) &* 7919)
        var model: [Address: Int] = [:]
        let sessions = ["s0", "s1", "s2"]
        let instances = [nil, "t0", "t1"]
        for step in 0..<operations {
            let address = Address(
                session: sessions.randomElement(using: &random)!,
                instance: instances.randomElement(using: &random)!,
                key: "task\(task)-k\(Int.random(in: 0..<6, using: &random))")
            let session = try store.session(address.session)
            let scope: any StorageScope = try address.instance.map { try session.instance($0) } ?? session
            switch Int.random(in: 0..<100, using: &random) {
            case 0..<45:
                let value = step * 100 + task
                let previous = try scope.save(value, for: address.key)
                guard previous == model[address] else {
                    throw Failure("seed \(seed) task \(task) step \(step): save returned \(String(describing: previous)), model \(String(describing: model[address]))")
                }
                model[address] = value
            case 45..<80:
                let loaded = try scope.load(Int.self, for: address.key)
                guard loaded == model[address] else {
                    throw Failure("seed \(seed) task \(task) step \(step): load returned \(String(describing: loaded)), model \(String(describing: model[address]))")
                }
            case 80..<95:
                let removed = try scope.remove(Int.self, for: address.key)
                guard removed == model[address] else {
                    throw Failure("seed \(seed) task \(task) step \(step): remove returned \(String(describing: removed)), model \(String(describing: model[address]))")
                }
                model[address] = nil
            case 95..<97:
                // End this task's own tab: drops exactly the model entries of that instance.
                let own = try session.instance("own\(task)")
                try own.save(step, for: "x")
                try own.end()
                model = model.filter { !($0.key.session == address.session && $0.key.instance == "own\(task)") }
            case 97..<98:
                let own = try session.instance("own\(task)")
                try own.save(step, for: "x")
                model[Address(session: address.session, instance: "own\(task)", key: "x")] = step
            default:
                // A batch over this task's keys in one session: all or nothing.
                var batch = WriteBatch()
                for index in 0..<3 {
                    let batchAddress = Address(session: address.session, instance: nil, key: "task\(task)-b\(index)")
                    try batch.save(step, for: batchAddress.key, in: session)
                    model[batchAddress] = step
                }
                try store.apply(batch)
            }
        }
        return model
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}
