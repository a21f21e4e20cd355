import CBORCoding
import CLMDB
import Foundation
import Synchronization

/// Persistent session and instance storage on LMDB.
///
/// Open one store per directory and share it; every call is safe from any thread or task.
///
/// ```swift
/// let store = try SessionStore(path: "/var/lib/app/sessions")
/// let session = try store.session(sessionID)
/// try session.save(prefs, for: .prefs)
/// let tab = try session.instance(tabID)
/// let draft = try tab.load(Draft.self, for: "draft")
/// ```
///
/// Opening a path that is already open in this process throws `.alreadyOpen`: LMDB must
/// not map the same files twice in one process.
///
/// A child made by `fork()` must not use a store its parent opened (LMDB forbids using an
/// environment across `fork()`): there every call throws `.storeClosed`, and `close()`
/// only releases the path, touching neither the files nor the parent's writer thread.
/// Open the store again in the child to use it there.
public final class SessionStore: Sendable {
    /// The store's directory, as given.
    public let path: String
    /// The configuration the store was opened with.
    public let configuration: Configuration

    let environment: Environment
    let records: MDB_dbi
    let metadata: MDB_dbi
    let cache: ValueCache
    let writer: Writer
    let maxKeySize: Int
    let encoder: CBOREncoder
    let decoder: CBORDecoder
    private let canonicalPath: String
    private let closed = Atomic<Bool>(false)
    /// Set when the `close()` that closes the store is done, with its failure, for
    /// concurrent calls to wait on.
    private let closeFinished = ConditionLock<(done: Bool, failure: (any Error)?)>((false, nil))
    /// ``ForkGeneration`` when the store opened: another value means this is a forked child.
    private let forkGeneration: UInt
    private let recordReadCount = Atomic<Int>(0)
    /// Record keys whose `loadOrInit` value is being built, so concurrent callers wait for one build.
    let builds = InitBuilds()

    /// Paths open in this process.
    private static let openPaths = Lock<Set<String>>([])

    /// Opens the store at `path`, creating the directory (mode 0700) and files (0600) when missing.
    ///
    /// Before LMDB touches them, the directory and its files `data.mdb` and `lock.mdb` are
    /// checked; the open is refused with `.permissionDenied`, naming the file, when one is
    /// a symbolic link (the directory's last path component, or a planted file), belongs to
    /// another user, or may be written by its group or by others. Root (uid 0) may open a
    /// store of any user, which it then leaves with its owner and modes as they were, so a
    /// tool run by the owner or by root can inspect an app's store; any other user is
    /// refused. A later read-only open follows the same rules. Files others may read are
    /// narrowed to 0600 by their owner.
    ///
    /// Several processes may open a new path at once. A new store's databases and format
    /// record are written in one transaction. A directory holding an LMDB environment of
    /// another program is refused with `.invalidPath` and left unchanged.
    ///
    /// - Throws: `SessionStoreError` with `.invalidPath` (a file, a missing parent, or
    ///   another program's LMDB environment), `.permissionDenied`, `.alreadyOpen`,
    ///   `.newerFormat`, `.invalidConfiguration`.
    public init(path: String, configuration: Configuration = .init()) throws {
        try configuration.validate()
        forkGeneration = ForkGeneration.register()
        self.path = path
        self.configuration = configuration
        let directory = try StoreDirectory(path: path)
        let canonical = directory.canonicalPath
        canonicalPath = canonical
        let registered = Self.openPaths.withLock { $0.insert(canonical).inserted }
        guard registered else {
            throw SessionStoreError(.alreadyOpen, "the store at \(path) is already open in this process; share that SessionStore instead of opening it twice")
        }
        do {
            try directory.prepareFiles()
            var options = Environment.Options(mapSize: configuration.mapSize)
            if case .relaxed = configuration.durability { options.noSync = true }
            do {
                environment = try Environment(path: canonical, options: options)
            } catch {
                throw SessionStoreError(error, while: "opening the store at \(path)")
            }
            do {
                (records, metadata) = try directory.openDatabases(in: environment)
                environment.remember([("records", records), ("meta", metadata)])
            } catch {
                environment.close()
                // A refused environment (another program's, a newer format) is left as found.
                environment.restoreDataFileSize()
                throw error
            }
            maxKeySize = environment.maxKeySize
            encoder = CBOREncoder()
            decoder = CBORDecoder()
            cache = ValueCache(capacity: configuration.cacheCapacity, byteLimit: configuration.cacheByteLimit)
            var syncInterval: Duration?
            if case .relaxed(let interval) = configuration.durability { syncInterval = interval }
            writer = Writer(environment: environment, records: records, cache: cache,
                            mapCeiling: configuration.maxMapSize, syncInterval: syncInterval)
        } catch {
            _ = Self.openPaths.withLock { $0.remove(canonical) }
            throw error
        }
    }

    deinit {
        try? close()
    }

    /// Commits pending writes, syncs, and closes the files. Later calls throw `.storeClosed`.
    ///
    /// Closing twice is allowed; a call made while another closes waits for it and throws
    /// what it throws. After `close()` returns the path may be opened again.
    ///
    /// - Throws: `.ioFailure` when the final sync failed, or (relaxed mode) a periodic sync
    ///   failed since the store was opened: some acknowledged writes may be lost.
    public func close() throws {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else {
            // Another call is closing: return once it is done, as it does, with its failure.
            if let failure = closeFinished.withLock(waitingUntil: { $0.done }, { state, _ in state.failure }) { throw failure }
            return
        }
        var failure: (any Error)?
        defer {
            closeFinished.withLock { $0 = (true, failure) }
            closeFinished.broadcast()
        }
        do {
            try closeOnce()
        } catch {
            failure = error
            throw error
        }
    }

    /// The work of the `close()` call that closes the store.
    private func closeOnce() throws {
        if isForkedChild {
            // The writer thread is the parent's (it does not exist here) and so is the
            // environment: syncing or closing it would act on the parent's reader slots.
            _ = Self.openPaths.withLock { $0.remove(canonicalPath) }
            return
        }
        TestHooks.duringClose.run(canonicalPath)
        // Linux reports a writeback error to one fsync only, so a failed relaxed sync must
        // be kept by the writer: a second sync here would succeed and hide it.
        var failure: Error? = writer.stop()
        cache.removeAll()
        do { try environment.sync() } catch { failure = failure ?? SessionStoreError(error, while: "syncing before close") }
        environment.close()
        _ = Self.openPaths.withLock { $0.remove(canonicalPath) }
        if let failure { throw failure }
    }

    /// Whether ``close()`` was called.
    public var isClosed: Bool { closed.load(ordering: .acquiring) }

    /// The session `id`, whose values every instance of the session shares.
    ///
    /// - Throws: `.invalidID` when `id` is empty, longer than 128 bytes, or has characters
    ///   outside `[A-Za-z0-9._~-]`, or contains `..`.
    public func session(_ id: String) throws(SessionStoreError) -> Session {
        try Session(store: self, id: id)
    }

    /// Commits every change of `batch` in one transaction: all of them or none.
    public func apply(_ batch: WriteBatch) throws(SessionStoreError) {
        try checkBatch(batch)
        _ = try write(batch.operations)
    }

    /// Commits every change of `batch` in one transaction, suspending until it is durable.
    public func apply(_ batch: WriteBatch) async throws(SessionStoreError) {
        try checkBatch(batch)
        _ = try await write(batch.operations)
    }

    private func checkBatch(_ batch: WriteBatch) throws(SessionStoreError) {
        for store in batch.stores where store !== self {
            throw SessionStoreError(.invalidConfiguration, "the batch holds changes for another store than \(path)")
        }
    }

    /// Cache hits and misses since the store opened.
    public var cacheStatistics: (hits: Int, misses: Int, entries: Int) {
        let (hits, misses) = cache.counters
        return (hits, misses, cache.count)
    }

    // MARK: - Engine used by the scopes

    func checkOpen() throws(SessionStoreError) {
        if isClosed || isForkedChild { throw closedError }
    }

    /// Whether this process is a child made by `fork()` after the store opened.
    private var isForkedChild: Bool { ForkGeneration.current != forkGeneration }

    private var closedError: SessionStoreError {
        if isForkedChild {
            return SessionStoreError(.storeClosed, "the store at \(path) was opened before fork(); a forked child must not use its parent's LMDB environment: open the store again in the child")
        }
        return SessionStoreError(.storeClosed, "the store at \(path) is closed; open it again to use it")
    }

    /// Runs LMDB work, turning its errors into `SessionStoreError`s.
    func storage<R>(_ action: @autoclosure () -> String, _ body: () throws -> R) throws(SessionStoreError) -> R {
        do {
            return try body()
        } catch {
            throw storageError(error, while: action())
        }
    }

    /// `error`, thrown by LMDB work during `action`, as a `SessionStoreError`.
    func storageError(_ error: any Error, while action: @autoclosure () -> String) -> SessionStoreError {
        switch error {
        case let error as SessionStoreError: error
        case let error as LMDBError: isClosed ? closedError : SessionStoreError(error, while: action())
        default: SessionStoreError(.storageFailure, "\(action()): \(error)")
        }
    }

    /// The cached value of the text key `name` in `scope`, after the snapshot check; nil
    /// on a miss, with `snapshot` set to the id the check saw.
    ///
    /// The hit path of ``StorageScope/load(_:for:)``: it builds the record key in temporary
    /// memory and allocates nothing. The caller checks the value's type, so this part
    /// needs no generics and is compiled once, here.
    @usableFromInline
    func cachedValue(named name: String, in scope: ScopeReference, snapshot: inout Int?) throws(SessionStoreError) -> CachedValue? {
        try checkOpen()
        guard cache.isEnabled else { return nil }
        let id = try cacheSnapshot(loading: scope.describe(name))
        snapshot = id
        let cache = self.cache
        return KeyLayout.withRecordKey(scope.prefixBytes, text: name, limit: maxKeySize) { key in
            cache.value(for: key, snapshot: id)
        } ?? nil
    }

    /// The snapshot id a cache lookup is checked against (see ``ValueCache``).
    private func cacheSnapshot(loading name: @autoclosure () -> String) throws(SessionStoreError) -> Int {
        do {
            return try environment.snapshotID()
        } catch {
            throw storageError(error, while: "loading \(name())")
        }
    }

    /// Loads the record under `key` in `scope` as a `V`, through the cache.
    ///
    /// - Parameter snapshot: the id of the snapshot check ``cachedValue(named:in:snapshot:)``
    ///   made for this load, or nil when none was made (a key that is not a `String`).
    @usableFromInline
    func load<V: Decodable & Sendable, K: Encodable>(_ type: V.Type, key: K, in scope: ScopeReference, snapshot checked: Int?) throws(SessionStoreError) -> V? {
        try checkOpen()
        let recordKey = try KeyLayout.recordKey(scope.prefix, key, limit: maxKeySize)
        if cache.isEnabled, checked == nil {
            let snapshot = try cacheSnapshot(loading: scope.describe(key))
            let hit = recordKey.withUnsafeBytes { cache.value(for: $0, snapshot: snapshot) }
            if let value = hit?.value(as: V.self) { return value }
        }
        // The record is copied out of the map and decoded after the read transaction: a
        // value's `init(from:)` may call back into the store (a save that grows the map
        // waits for every reader to leave), so no user code runs inside the transaction.
        // Records up to `Self.inlineRecordSize` bytes are copied to the stack.
        var snapshot = 0
        return try withUnsafeTemporaryAllocation(byteCount: Self.inlineRecordSize, alignment: 16) { (inline: UnsafeMutableRawBufferPointer) throws(SessionStoreError) -> V? in
            var large: UnsafeMutableRawBufferPointer?
            defer { large?.deallocate() }
            let copied: UnsafeRawBufferPointer? = try storage("loading \(scope.describe(key))") {
                try environment.read { txn in
                    snapshot = txn.id
                    guard let bytes = try txn.get(records, key: recordKey) else { return nil }
                    var target = inline
                    if bytes.count > inline.count {
                        target = .allocate(byteCount: bytes.count, alignment: 16)
                        large = target
                    }
                    target.copyMemory(from: bytes)
                    return UnsafeRawBufferPointer(rebasing: target[..<bytes.count])
                }
            }
            guard let copied else { return nil }
            recordReadCount.add(1, ordering: .relaxed)
            let value = try Record.decode(V.self, from: copied, key: scope.describe(key), decoder: decoder)
            if cache.isEnabled { cache.insert(ValueBox(value), for: recordKey, readAt: snapshot, cost: copied.count) }
            return value
        }
    }

    /// The largest record a load copies to the stack rather than the heap before decoding it.
    static let inlineRecordSize = 1024

    /// How many records loads have read from LMDB (cache misses that found a record).
    var recordReads: Int { recordReadCount.load(ordering: .relaxed) }

    /// Commits `operations` in one transaction through the group-commit writer.
    func write(_ operations: [WriteOperation]) throws(SessionStoreError) -> [OperationResult] {
        try checkOpen()
        return try writer.perform(operations)
    }

    /// Commits `operations` in one transaction, suspending until done.
    ///
    /// A task cancelled before the write is queued gets `.cancelled` and writes nothing;
    /// once queued, the write commits (a commit cannot be taken back for one caller).
    func write(_ operations: [WriteOperation]) async throws(SessionStoreError) -> [OperationResult] {
        try checkOpen()
        if Task.isCancelled {
            throw SessionStoreError(.cancelled, "the task was cancelled before its write to the store at \(path) was queued; nothing was written")
        }
        return try await writer.perform(operations)
    }

    /// Encodes `value` as a record, checking the size limit.
    func record<V: Encodable>(_ value: V, name: @autoclosure () -> String) throws(SessionStoreError) -> [UInt8] {
        let bytes = try Record.encode(value, encoder: encoder)
        if bytes.count > configuration.maxValueSize {
            throw SessionStoreError(.valueTooLarge, "the value for key \(name()) encodes to \(bytes.count) bytes; the limit (Configuration.maxValueSize) is \(configuration.maxValueSize)")
        }
        return bytes
    }

    /// Decodes a previous record as `V`, or nil when it holds another type or does not decode.
    func previous<V: Decodable & Sendable>(_ type: V.Type, from result: OperationResult) -> V? {
        // The cache's replaced value is the previous record's value when its type is exactly V.
        if let typed = result.previousValue?.value(as: V.self) { return typed }
        guard let bytes = result.previous else { return nil }
        return bytes.withUnsafeBytes { try? Record.decode(V.self, from: $0, key: "", decoder: decoder) }
    }

    /// The record keys under `prefix`, without the prefix.
    func keySuffixes(withPrefix prefix: [UInt8], name: String) throws(SessionStoreError) -> [[UInt8]] {
        try checkOpen()
        return try storage("listing the keys of \(name)") {
            try environment.read { txn in
                try txn.withCursor(records) { cursor in
                    var suffixes: [[UInt8]] = []
                    try cursor.forEach(withPrefix: prefix) { entry in
                        suffixes.append(Array(entry.key[prefix.count...]))
                        return true
                    }
                    return suffixes
                }
            }
        }
    }
}
