import CLMDB
import Foundation

/// One change a write request makes, prepared (encoded and checked) by the caller.
enum WriteOperation: Sendable {
    /// Stores `record` under `key`; `value` is the decoded form for the cache.
    case put(key: [UInt8], record: [UInt8], value: CachedValue, returnPrevious: Bool)
    /// Stores `record` only when `key` is absent; otherwise returns the existing record.
    case insert(key: [UInt8], record: [UInt8], value: CachedValue)
    /// Deletes `key`, returning the removed record when asked.
    case delete(key: [UInt8], returnPrevious: Bool)
    /// Deletes every key that starts with the prefix.
    case deletePrefix([UInt8])
}

/// What one ``WriteOperation`` found and did.
struct OperationResult: Sendable {
    /// The record that was under the key before (put, delete) or that stayed (insert).
    var previous: [UInt8]?
    /// Keys deleted by `deletePrefix`; for insert and delete, 1 when it changed the key.
    var count = 0
    /// The decoded value a put replaced, when the cache knew it exactly (saves a decode).
    var previousValue: CachedValue?
    /// The keys `deletePrefix` deleted, collected for the cache.
    var deletedKeys: [[UInt8]] = []
}

/// The group-commit writer: one thread that batches concurrent write requests into one
/// LMDB write transaction and one sync.
///
/// Each request's operations are all or nothing. Every caller returns once the commit
/// holding its request is durable (in `.durable` mode) or with its own error: when a
/// batch fails for a reason that may belong to one request (map full at the ceiling,
/// transaction too large), its requests are committed again one by one. After a disk
/// write or sync fails, every later request is refused until the store is reopened,
/// because LMDB may have lost the failed commit's pages; running out of space is the
/// exception: the failed commit stored nothing, and the next one may succeed.
final class Writer: Sendable {
    private struct Request {
        var operations: [WriteOperation]
        /// Nil for the request of a synchronous caller that commits the batch itself: it
        /// takes its result from ``process(_:)`` instead.
        var complete: (@Sendable (Result<[OperationResult], SessionStoreError>) -> Void)?
    }

    private struct Queue {
        var pending: [Request] = []
        /// A thread is committing (a synchronous caller or the writer thread).
        var busy = false
        var stopping = false
        var stopped = false
        var refusal: SessionStoreError?
        /// Relaxed mode: when the first commit not yet synced was made.
        var dirtySince: UInt64?
        /// Relaxed mode: a periodic or final sync failed, so writes already acknowledged
        /// may be lost without their callers having been told; `close()` reports it.
        var lostSync: SessionStoreError?
        /// Commits since dead readers were last reclaimed.
        var commitsSinceReaderCheck = 0
        /// Relaxed mode: the writer thread sleeps without a deadline until the writer role
        /// is free or a first unsynced commit sets `dirtySince`, so a commit must wake it.
        /// Otherwise a commit by a synchronous caller wakes it only when requests are queued.
        var writerWaitsForCommit = false
        var closedError = SessionStoreError(.storeClosed, "the store is closed; open it again to write")

        /// Takes the writer role and the oldest pending requests, up to `limit`.
        mutating func takeBatch(limit: Int) -> [Request] {
            busy = true
            if pending.count <= limit {
                let batch = pending
                pending = []
                return batch
            }
            let batch = Array(pending.prefix(limit))
            pending.removeFirst(limit)
            return batch
        }
    }

    private let queue = ConditionLock(Queue())
    private let environment: Environment
    private let records: MDB_dbi
    private let cache: ValueCache
    private let mapCeiling: Int?
    private let syncInterval: UInt64?
    /// The most requests one transaction takes.
    private let batchLimit = 1024
    /// Where the callers of a multi-request commit are resumed.
    private let completions = DispatchQueue(label: "SessionStore.writer.completions")

    init(environment: Environment, records: MDB_dbi, cache: ValueCache, mapCeiling: Int?, syncInterval: Duration?) {
        self.environment = environment
        self.records = records
        self.cache = cache
        self.mapCeiling = mapCeiling
        self.syncInterval = syncInterval.map(MonotonicClock.nanoseconds)
        let thread = Thread { [self] in run() }
        thread.name = "SessionStore.writer"
        thread.start()
    }

    /// Commits `operations` atomically, blocking the calling thread until done.
    ///
    /// When no commit is running, the calling thread commits itself, together with
    /// whatever else is queued: waking the writer thread and being woken again would cost
    /// two thread switches, more than an unsynced commit. Otherwise it queues its request
    /// for the next group commit and waits.
    func perform(_ operations: [WriteOperation]) throws(SessionStoreError) -> [OperationResult] {
        // The committing caller's own request goes last, after the requests queued before it,
        // and has no completion: its result comes back from `commitAsWriter`.
        let own = Request(operations: operations, complete: nil)
        if let batch = try queue.withLock({ queue throws(SessionStoreError) in try takeWriterRole(with: own, &queue) }) {
            // `process` returns the result of the one request without a completion.
            return try commitAsWriter(batch)!.get()
        }
        // Another thread commits: queue the request for the next group commit and wait
        // (unless the writer role came free meanwhile).
        let done = ConditionLock<Result<[OperationResult], SessionStoreError>?>(nil)
        let request = Request(operations: operations) { result in
            done.withLock { $0 = result }
            done.broadcast()
        }
        let batch = try queue.withLock { queue throws(SessionStoreError) -> [Request]? in
            if let batch = try takeWriterRole(with: own, &queue) { return batch }
            try Self.admit(request, to: &queue)
            return nil
        }
        if let batch { return try commitAsWriter(batch)!.get() }
        queue.broadcast()
        return try done.withLock(waitingUntil: { $0 != nil }) { result, _ in result! }.get()
    }

    /// Takes the writer role for a synchronous caller when no commit runs: returns the
    /// queued requests followed by `own`, or nil when the caller must queue instead.
    private func takeWriterRole(with own: Request, _ queue: inout Queue) throws(SessionStoreError) -> [Request]? {
        try Self.checkAdmission(queue)
        guard !queue.busy, queue.pending.count < batchLimit else { return nil }
        var batch = queue.takeBatch(limit: batchLimit - 1)
        batch.append(own)
        return batch
    }

    /// Commits `operations` atomically, suspending until done (the writer thread commits).
    func perform(_ operations: [WriteOperation]) async throws(SessionStoreError) -> [OperationResult] {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<[OperationResult], SessionStoreError>, Never>) in
            do throws(SessionStoreError) {
                try queue.withLock { queue throws(SessionStoreError) in
                    try Self.admit(Request(operations: operations) { continuation.resume(returning: $0) }, to: &queue)
                }
                queue.broadcast()
            } catch {
                continuation.resume(returning: .failure(error))
            }
        }
        return try result.get()
    }

    private static func checkAdmission(_ queue: Queue) throws(SessionStoreError) {
        if queue.stopping { throw queue.closedError }
        if let refusal = queue.refusal { throw refusal }
    }

    private static func admit(_ request: Request, to queue: inout Queue) throws(SessionStoreError) {
        try checkAdmission(queue)
        queue.pending.append(request)
    }

    /// Commits `batch` holding the writer role, then gives the role up.
    ///
    /// - Returns: the result of the request without a completion (the calling
    ///   synchronous writer's own), or nil when every request has one.
    @discardableResult
    private func commitAsWriter(_ batch: [Request]) -> Result<[OperationResult], SessionStoreError>? {
        let own = process(batch)
        // Relaxed mode: sync here when the interval has passed. Synchronous callers can
        // take the writer role back to back, so the writer thread alone could be starved.
        if let interval = syncInterval {
            let due = queue.withLock { queue in
                queue.dirtySince.map { MonotonicClock.nanoseconds() >= $0 &+ interval } ?? false
            }
            if due { syncRelaxedWrites() }
        }
        let (wake, reclaim) = queue.withLock { queue -> (Bool, Bool) in
            queue.busy = false
            if syncInterval != nil, queue.dirtySince == nil { queue.dirtySince = MonotonicClock.nanoseconds() }
            // Whatever was queued meanwhile goes to the writer thread, and a stop waits for it.
            // Waking it for nothing would cost a futex call here and two thread switches on
            // every relaxed save.
            let wake = !queue.pending.isEmpty || queue.stopping || queue.writerWaitsForCommit
            queue.commitsSinceReaderCheck += 1
            guard queue.commitsSinceReaderCheck >= 64 else { return (wake, false) }
            queue.commitsSinceReaderCheck = 0
            return (wake, true)
        }
        if wake { queue.broadcast() }
        if reclaim {
            // Dead readers pin old snapshots, making the file grow; free their slots.
            _ = try? environment.reclaimStaleReaders()
        }
        return own
    }

    /// Commits what is queued, syncs, and stops the thread. Later requests throw `.storeClosed`.
    ///
    /// - Returns: the failure of a relaxed-mode sync (periodic or final) since the store
    ///   opened: acknowledged writes may be lost and no caller was told. Nil otherwise.
    @discardableResult
    func stop() -> SessionStoreError? {
        queue.withLock { $0.stopping = true }
        queue.broadcast()
        return queue.withLock(waitingUntil: { $0.stopped }) { queue, _ in queue.lostSync }
    }

    private enum Step {
        case commit([Request])
        case sync
        case stop(sync: Bool)
        case wait
    }

    /// The writer thread: commits queued requests (async callers', and sync callers' that
    /// arrived during another commit), and in relaxed mode syncs every interval.
    private func run() {
        var lastBatchSize = 0
        var lastCommitNanoseconds: UInt64 = 0
        while true {
            let interval = syncInterval ?? 0
            // While another thread commits, wait for it to finish rather than for the deadline.
            let deadline = queue.withLock { queue -> UInt64? in
                let deadline = queue.busy ? nil : queue.dirtySince.map { $0 &+ interval }
                queue.writerWaitsForCommit = syncInterval != nil && deadline == nil
                return deadline
            }
            var step = queue.withLock(
                waitingUntil: { queue in
                    // A commit made while this thread slept without a deadline sets one: wake to recompute it.
                    !queue.busy && (!queue.pending.isEmpty || queue.stopping
                        || (deadline == nil && queue.dirtySince != nil)
                        || queue.dirtySince.map { MonotonicClock.nanoseconds() >= $0 &+ interval } == true)
                },
                deadline: deadline
            ) { queue, ready -> Step in
                guard ready else { return .wait }
                if !queue.pending.isEmpty {
                    if lastBatchSize > 1 && queue.pending.count < lastBatchSize { return .wait }
                    return .commit(queue.takeBatch(limit: batchLimit))
                }
                if queue.stopping {
                    queue.busy = true
                    return .stop(sync: queue.dirtySince != nil)
                }
                if let since = queue.dirtySince, MonotonicClock.nanoseconds() >= since &+ interval {
                    queue.busy = true
                    return .sync
                }
                return .wait
            }
            if case .wait = step, lastBatchSize > 1 {
                // Writers that were just resumed are about to write again: linger a moment
                // (a third of the last commit, at most 1 ms) so they join this commit
                // instead of splitting into alternating half-size groups.
                let until = MonotonicClock.nanoseconds() &+ min(lastCommitNanoseconds / 3, 1_000_000)
                step = queue.withLock(
                    waitingUntil: { $0.pending.count >= lastBatchSize || $0.stopping }, deadline: until
                ) { queue, _ -> Step in
                    queue.busy || queue.pending.isEmpty ? .wait : .commit(queue.takeBatch(limit: batchLimit))
                }
                if case .wait = step { lastBatchSize = 0 }
            }
            switch step {
            case .wait:
                continue
            case .commit(let batch):
                let started = MonotonicClock.nanoseconds()
                commitAsWriter(batch)
                lastCommitNanoseconds = MonotonicClock.nanoseconds() &- started
                lastBatchSize = batch.count
            case .sync:
                syncRelaxedWrites()
                queue.withLock { $0.busy = false }
                queue.broadcast()
            case .stop(let sync):
                if sync { syncRelaxedWrites() }
                queue.withLock { $0.stopped = true }
                queue.broadcast()
                return
            }
        }
    }

    /// Syncs relaxed-mode commits; a failure refuses later writes. Call holding the writer role.
    private func syncRelaxedWrites() {
        do {
            try environment.sync()
        } catch {
            let failure = SessionStoreError(error, while: "syncing relaxed writes")
            refuse(failure)
            queue.withLock { queue in
                if queue.lostSync == nil {
                    queue.lostSync = SessionStoreError(.ioFailure, "a relaxed-mode sync failed, so writes acknowledged since the previous sync may be lost: \(failure.message)", errorNumber: failure.errorNumber)
                }
            }
        }
        queue.withLock { $0.dirtySince = nil }
    }

    private func refuse(_ error: SessionStoreError) {
        queue.withLock { queue in
            if queue.refusal == nil {
                queue.refusal = SessionStoreError(.ioFailure, "an earlier write failed on disk, so writes are refused until the store is reopened: \(error.message)", errorNumber: error.errorNumber)
            }
        }
    }

    private var refusal: SessionStoreError? { queue.withLock { $0.refusal } }

    /// Commits `batch` and completes its requests.
    ///
    /// - Returns: the result of the request that has no completion (a synchronous caller
    ///   committing its own request), or nil when there is none.
    private func process(_ batch: [Request]) -> Result<[OperationResult], SessionStoreError>? {
        var own: Result<[OperationResult], SessionStoreError>?
        func finish(_ request: Request, _ result: Result<[OperationResult], SessionStoreError>) {
            if let complete = request.complete { complete(result) } else { own = result }
        }
        if let refusal {
            for request in batch { finish(request, .failure(refusal)) }
            return own
        }
        switch commit(batch) {
        case .success(let results) where batch.count == 1:
            finish(batch[0], .success(results[0]))
        case .success(let results):
            if batch[batch.count - 1].complete == nil { own = .success(results[batch.count - 1]) }
            // Waking dozens of callers costs a syscall each: do it off the writer thread,
            // so the next group commit starts at once.
            completions.async {
                for (request, result) in zip(batch, results) { request.complete?(.success(result)) }
            }
        case .failure(let error) where batch.count > 1 && error.code != .ioFailure:
            // The failure may be one request's own: give each its own commit and error.
            for request in batch {
                if let result = process([request]) { own = result }
            }
        case .failure(let error):
            for request in batch { finish(request, .failure(error)) }
        }
        return own
    }

    /// Commits `batch` in one transaction, growing the map when it is full.
    private func commit(_ batch: [Request]) -> Result<[[OperationResult]], SessionStoreError> {
        while true {
            // The cache is settled (applied or withdrawn) before the writer lock is released:
            // another SessionStore process may commit only after that, so it cannot reuse the
            // id of an aborted or empty commit while this cache still counts it as its own.
            let outcome = environment.writerLock.withLock { attempt(batch) }
            switch outcome {
            case .success(let results):
                return .success(results)
            case .failure(let error as LMDBError) where error.code == LMDBError.mapFull:
                do {
                    if try environment.grow(ceiling: mapCeiling) { continue }
                } catch {
                    return .failure(SessionStoreError(error, while: "growing the map"))
                }
                return .failure(SessionStoreError(.mapFull, "the write does not fit: the store reached its maximum map size of \(mapCeiling ?? environment.mapSize) bytes; raise Configuration.maxMapSize or remove data"))
            case .failure(let error as LMDBError) where error.isOutOfSpace:
                // The failed commit's pages are referenced by no meta page: nothing was
                // stored and nothing acknowledged is at risk, so the store goes on (`attempt`
                // reopened the environment if LMDB marked it failed).
                let failure = SessionStoreError(error, while: "committing a write")
                return .failure(SessionStoreError(.ioFailure, failure.message + "; nothing of this write was stored, and writes succeed again once space is freed", errorNumber: failure.errorNumber))
            case .failure(let error as LMDBError):
                let failure = SessionStoreError(error, while: "committing a write")
                if error.isIOFailure || error.code == LMDBError.panic {
                    refuse(failure)
                    return .failure(SessionStoreError(.ioFailure, failure.message, errorNumber: failure.errorNumber))
                }
                return .failure(failure)
            case .failure(let error):
                return .failure(SessionStoreError(.storageFailure, "committing a write: \(error)"))
            }
        }
    }

    /// One try at committing `batch`, with the cache settled whatever the outcome. Call
    /// holding the writer lock.
    private func attempt(_ batch: [Request]) -> Result<[[OperationResult]], any Error> {
        do {
            var (id, results) = try environment.write { txn in
                // Loads that see this commit before `applyToCache` must not take it for
                // another process's and empty the cache.
                announce(batch, commit: txn.id)
                // One cursor for the batch: a put that returns the previous record finds
                // the key with it, then replaces the value where the cursor stands.
                return try txn.withCursor(records) { cursor in
                    (txn.id, try batch.map { request in try apply(request.operations, in: txn, cursor: &cursor) })
                }
            }
            TestHooks.beforeSettlingCommit.run(environment.path)
            applyToCache(batch, &results, commit: id)
            return .success(results)
        } catch {
            TestHooks.beforeSettlingCommit.run(environment.path)
            cache.withdrawCommit()
            if let lmdbError = error as? LMDBError, lmdbError.isOutOfSpace {
                // Still holding the writer lock, so no other write sees a panicked environment.
                do {
                    try environment.recoverAfterFailedWrite()
                } catch {
                    refuse(SessionStoreError(error, while: "reopening the environment after running out of space"))
                }
            }
            return .failure(error)
        }
    }

    /// Tells the cache which keys and prefixes commit `id` is about to change.
    private func announce(_ batch: [Request], commit id: Int) {
        guard cache.isEnabled else { return }
        var keys: [[UInt8]] = []
        var prefixes: [[UInt8]] = []
        for request in batch {
            for operation in request.operations {
                switch operation {
                case .put(let key, _, _, _), .insert(let key, _, _), .delete(let key, _): keys.append(key)
                case .deletePrefix(let prefix): prefixes.append(prefix)
                }
            }
        }
        cache.announce(commit: id, keys: keys, prefixes: prefixes)
    }

    /// Updates the cache with what commit `id` changed, and fills in the previous values
    /// the cache held for the puts.
    private func applyToCache(_ batch: [Request], _ results: inout [[OperationResult]], commit id: Int) {
        guard cache.isEnabled else { return }
        // Updated in place (a copy of the nested arrays costs two allocations per commit).
        let operationCount = batch.count == 1 ? batch[0].operations.count : batch.reduce(0) { $0 + $1.operations.count }
        var changes: [ValueCache.Change] = []
        changes.reserveCapacity(operationCount)
        var origins: [(request: Int, operation: Int)] = []
        origins.reserveCapacity(operationCount)
        for (requestIndex, request) in batch.enumerated() {
            for (operationIndex, operation) in request.operations.enumerated() {
                let result = results[requestIndex][operationIndex]
                switch operation {
                case .put(let key, let record, let value, _): changes.append(.set(key, value, cost: record.count))
                case .insert(let key, let record, let value):
                    if result.count == 1 { changes.append(.set(key, value, cost: record.count)) } else { continue }
                // Only changes that dirtied a page count: a transaction that changed
                // nothing commits no new snapshot, so its id is not a real commit.
                case .delete(let key, _):
                    if result.count == 1 { changes.append(.remove(key)) } else { continue }
                case .deletePrefix(let prefix):
                    if result.count > 0 { changes.append(.removeKeys(result.deletedKeys, prefix: prefix)) } else { continue }
                }
                origins.append((requestIndex, operationIndex))
            }
        }
        // No change means LMDB wrote no meta page: id `id` was not used and another
        // process's next commit will take it, so the cache must not claim it.
        guard !changes.isEmpty else {
            cache.withdrawCommit()
            return
        }
        let replaced = cache.apply(commit: id, changes: changes)
        for (changeIndex, value) in replaced {
            let origin = origins[changeIndex]
            results[origin.request][origin.operation].previousValue = value
        }
    }

    private func apply(_ operations: [WriteOperation], in txn: Transaction, cursor: inout Cursor) throws -> [OperationResult] {
        var results: [OperationResult] = []
        results.reserveCapacity(operations.count)
        for operation in operations {
            var result = OperationResult()
            switch operation {
            case .put(let key, let record, _, let returnPrevious):
                if returnPrevious {
                    let old = try cursor.find(key)
                    if let old { result.previous = Array(old) }
                    try cursor.put(key: key, value: record, replacingCurrent: old != nil)
                } else {
                    try txn.put(records, key: key, value: record)
                }
            case .insert(let key, let record, _):
                if let old = try txn.get(records, key: key) {
                    result.previous = Array(old)
                } else {
                    try txn.put(records, key: key, value: record)
                    result.count = 1
                }
            case .delete(let key, let returnPrevious):
                if returnPrevious, let old = try txn.get(records, key: key) { result.previous = Array(old) }
                if try txn.delete(records, key: key) { result.count = 1 }
            case .deletePrefix(let prefix):
                let collect = cache.isEnabled
                (result.count, result.deletedKeys) = try txn.withCursor(records) { cursor in
                    try cursor.deleteAll(withPrefix: prefix, collectKeys: collect)
                }
            }
            results.append(result)
        }
        return results
    }
}
