import CLMDB
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An open LMDB environment: the data and lock files of one store directory.
///
/// All `mdb_env_*` and transaction-begin calls of the package live here and in
/// `Transaction.swift` and `Cursor.swift`; their results pass through
/// ``LMDBError/check(_:_:)``. Transactions exist only inside the closures of
/// ``read(_:)`` and ``write(_:)``, which commit on return and abort on throw.
///
/// The map size can change only while no transaction of this process is active, so every
/// transaction runs with `gate` held shared and ``grow(ceiling:)`` /
/// ``adoptResize()`` take it exclusively.
// @unchecked Sendable: the environment handle is safe to share between threads under
// MDB_NOTLS; mutable state (`currentMapSize`, `isClosed`, `broken`) is guarded by `gate` (exclusive to
// change, shared to read), and the idle and probe read transactions by their own locks.
final class Environment: @unchecked Sendable {
    /// Options for ``init(path:options:)``.
    struct Options {
        var mapSize: Int
        var maxReaders: UInt32 = 4096
        var maxDatabases: UInt32 = 8
        /// Opens with `MDB_NOSYNC`: commits do not sync; call ``sync()`` periodically.
        var noSync = false
        /// Mode for the data and lock files.
        var fileMode: mode_t = 0o600
    }

    /// The environment handle, replaced only by ``recoverAfterFailedWrite()`` with `gate`
    /// held exclusively. Behind a pointer: a class `var` would cost a run-time exclusivity
    /// check on every transaction.
    private let handleBox = UnsafeMutablePointer<OpaquePointer>.allocate(capacity: 1)
    private var handle: OpaquePointer { handleBox.pointee }
    private let options: Options
    /// The named databases the store uses, to open again after a reopen (see ``remember(_:)``).
    private let databases = Lock<[(name: String, dbi: MDB_dbi)]>([])
    let path: String
    /// ``ForkGeneration`` when the environment opened.
    private let forkGeneration = ForkGeneration.register()
    /// The file-backed part of the map, against which every returned buffer is checked.
    private let bounds: MapBounds
    private let gate = ReadWriteGate()
    /// The size of `data.mdb` before ``DataFileCheck`` extended it (0 for a new file).
    private let dataFileSizeAtOpen: Int
    /// Taken by every write before LMDB's writer lock, outside `gate` (see ``WriterLock``).
    let writerLock: WriterLock
    private var isClosed = false
    /// Set when `mdb_env_set_mapsize` failed: LMDB may have unmapped the file, so no
    /// transaction may begin until the store is reopened.
    private var broken: LMDBError?

    /// False once the environment is closed or broken: the one check on the hot path, an
    /// atomic instead of the class's `var`s, which cost a run-time exclusivity check each.
    /// Changed only with `gate` held exclusively.
    private let usable = Atomic<Bool>(true)

    /// The error for an operation on a closed or broken environment, or nil when usable.
    @inline(__always)
    private func unavailable(_ function: @autoclosure () -> String) -> LMDBError? {
        usable.load(ordering: .relaxed) ? nil : unavailableError(function())
    }

    private func unavailableError(_ function: String) -> LMDBError? {
        if let broken { return LMDBError(code: broken.code, function: "\(function) after \(broken.function) failed (reopen the store)") }
        return isClosed ? LMDBError(code: EINVAL, function: function) : nil
    }
    private var currentMapSize: Int

    /// The map size this process uses now, in bytes.
    var mapSize: Int { gate.withShared { currentMapSize } }
    /// Read transactions kept reset between uses, renewed for the next read.
    ///
    /// `mdb_txn_renew` on a reset transaction keeps its reader slot, so a read avoids the
    /// reader-table mutex and the allocation a fresh `mdb_txn_begin` costs.
    private let idleReaders = Lock<[ReaderHandle]>([])
    /// The read transaction reserved for ``snapshotID()``, begun on first use.
    private let probe = TryLock<ReaderHandle?>(nil)

    /// A reset read transaction's handle.
    // @unchecked Sendable: a handle is used by one thread at a time (it is taken out of
    // `idleReaders` under its lock before use), and MDB_NOTLS lets a read transaction
    // move between threads.
    private struct ReaderHandle: @unchecked Sendable {
        var txn: OpaquePointer
    }

    /// Opens (creating when missing) the environment in the existing directory `path`.
    ///
    /// - Throws: ``LMDBError`` with the code of the failing call (for example `EACCES`).
    init(path: String, options: Options) throws(LMDBError) {
        writerLock = try WriterLock(directory: path)
        // Under the writer lock: the data file check may empty a file that never held a
        // commit, which must not happen while another process opens it (see DataFileCheck).
        let (env, mapSize, originalSize) = try writerLock.withLock { () throws(LMDBError) in try Self.openHandle(path: path, options: options) }
        dataFileSizeAtOpen = originalSize
        handleBox.initialize(to: env)
        currentMapSize = max(mapSize, options.mapSize)
        self.options = options
        self.path = path
        bounds = MapBounds(env)
    }

    /// Creates and opens an environment handle; returns it and the map size LMDB reports.
    private static func openHandle(path: String, options: Options) throws(LMDBError) -> (OpaquePointer, Int, originalSize: Int) {
        // Before LMDB maps the file: its meta pages against its size (see DataFileCheck).
        let (coveredSize, originalSize) = try DataFileCheck.prepare(directory: path)
        var env: OpaquePointer?
        try LMDBError.check(mdb_env_create(&env), "mdb_env_create")
        guard let env else { throw LMDBError(code: ENOMEM, function: "mdb_env_create") }
        do {
            try LMDBError.check(mdb_env_set_maxreaders(env, options.maxReaders), "mdb_env_set_maxreaders")
            try LMDBError.check(mdb_env_set_maxdbs(env, options.maxDatabases), "mdb_env_set_maxdbs")
            try LMDBError.check(mdb_env_set_mapsize(env, max(options.mapSize, coveredSize)), "mdb_env_set_mapsize")
            var flags = UInt32(MDB_NOTLS)
            if options.noSync { flags |= UInt32(MDB_NOSYNC) }
            try LMDBError.check(mdb_env_open(env, path, flags, options.fileMode), "mdb_env_open")
            var dead: Int32 = 0
            try LMDBError.check(mdb_reader_check(env, &dead), "mdb_reader_check")
            var info = MDB_envinfo()
            try LMDBError.check(mdb_env_info(env, &info), "mdb_env_info")
            return (env, info.me_mapsize, originalSize)
        } catch {
            mdb_env_close(env)
            throw error
        }
    }

    deinit {
        close()
        handleBox.deallocate()
    }

    /// How many forced syncs (`mdb_env_sync`) ran since open.
    var syncs: Int { syncCount.load(ordering: .relaxed) }
    private let syncCount = Atomic<Int>(0)

    /// How many times this process adopted a map size set by another process.
    var adoptedResizes: Int { adoptCount.load(ordering: .relaxed) }
    private let adoptCount = Atomic<Int>(0)

    /// The descriptor LMDB reads and writes `data.mdb` through (`mdb_env_get_fd`).
    var dataFileDescriptor: Int32 {
        var fd: Int32 = -1
        _ = mdb_env_get_fd(handle, &fd)
        return fd
    }

    /// The largest key LMDB accepts in this environment (511 bytes with default builds).
    var maxKeySize: Int { Int(mdb_env_get_maxkeysize(handle)) }

    /// Closes the environment. Later transactions throw `EINVAL`. Idempotent.
    ///
    /// In a child made by `fork()` it does nothing: the handles are the parent's, and
    /// aborting their read transactions would free the parent's reader slots.
    func close() {
        guard ForkGeneration.current == forkGeneration else { return }
        gate.withExclusive {
            guard !isClosed else { return }
            isClosed = true
            usable.store(false, ordering: .relaxed)
            abortIdleReaders()
            mdb_env_close(handle)
        }
    }

    /// After ``close()``, gives `data.mdb` back the size it had before the open extended it
    /// over its unwritten free pages, for an open that was refused and must leave the file
    /// as it found it. The extension was zeros past the old end, so nothing else changes.
    func restoreDataFileSize() {
        guard isClosed, dataFileSizeAtOpen > 0 else { return }
        let file = path + "/data.mdb"
        var info = stat()
        // A regular file (the open refused links); not through a descriptor of its own, whose
        // close would drop the locks of another open of this store in the process.
        guard lstat(file, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, Int(info.st_size) > dataFileSizeAtOpen else { return }
        _ = truncate(file, off_t(dataFileSizeAtOpen))
    }

    /// Aborts the probe and the pooled read transactions. Hold `gate` exclusively.
    private func abortIdleReaders() {
        probe.withLock { reader in
            if let reader { mdb_txn_abort(reader.txn) }
            reader = nil
        }
        idleReaders.withLock { readers in
            for reader in readers { mdb_txn_abort(reader.txn) }
            readers.removeAll()
        }
    }

    /// After a write failed, reopens the environment if LMDB marked it failed (`MDB_PANIC`:
    /// a meta page write failed), so that the store goes on once the cause is gone.
    ///
    /// For out-of-space failures only: the failed commit's pages are referenced by no meta
    /// page, and LMDB wrote the previous meta page back. Reopens the named databases in
    /// their first order, which gives them the same handles. Hold ``writerLock``.
    ///
    /// - Returns: whether it reopened.
    /// - Throws: when the reopen failed; the environment is then unusable until the store reopens.
    @discardableResult
    func recoverAfterFailedWrite() throws(LMDBError) -> Bool {
        try writerLock.withLock { () throws(LMDBError) -> Bool in
            // Readers go on while the environment is probed; only a panicked one (LMDB then
            // refuses every transaction anyway) is worth waiting for every reader.
            guard try gate.withShared({ () throws(LMDBError) -> Bool in try hasPanicked() }) else { return false }
            return try gate.withExclusive { () throws(LMDBError) -> Bool in
                guard try hasPanicked() else { return false }
                abortIdleReaders()
                mdb_env_close(handle)
                // No handle until a new one is installed: close() must not close this one again.
                isClosed = true
                do throws(LMDBError) {
                    var reopenOptions = options
                    reopenOptions.mapSize = currentMapSize
                    let (env, mapSize, _) = try Self.openHandle(path: path, options: reopenOptions)
                    handleBox.pointee = env
                    bounds.refresh(env)
                    isClosed = false
                    currentMapSize = max(mapSize, currentMapSize)
                    do throws(LMDBError) {
                        try reopenDatabases()
                    } catch {
                        mdb_env_close(env)
                        isClosed = true
                        throw error
                    }
                } catch {
                    broken = error
                    usable.store(false, ordering: .relaxed)
                    throw error
                }
                return true
            }
        }
    }

    /// Whether LMDB refuses new transactions with `MDB_PANIC`. Hold `gate`.
    private func hasPanicked() throws(LMDBError) -> Bool {
        if let error = unavailable("mdb_txn_begin") { throw error }
        var txn: OpaquePointer?
        let rc = mdb_txn_begin(handle, nil, UInt32(MDB_RDONLY), &txn)
        if rc == 0 { mdb_txn_abort(txn) }
        return rc == LMDBError.panic
    }

    /// Records the named databases the environment's users hold handles of, so that a
    /// reopen (``recoverAfterFailedWrite()``) gives them the same handles.
    func remember(_ opened: [(name: String, dbi: MDB_dbi)]) {
        databases.withLock { databases in
            for database in opened where !databases.contains(where: { $0.dbi == database.dbi }) { databases.append(database) }
        }
    }

    /// Opens the named databases again, checking each gets its old handle.
    ///
    /// LMDB gives a new environment's named databases handles in the order they are first
    /// opened, so opening them in the order of their old handles gives the same ones.
    private func reopenDatabases() throws(LMDBError) {
        let opened = databases.withLock { $0 }.sorted { $0.dbi < $1.dbi }
        guard !opened.isEmpty else { return }
        var txn: OpaquePointer?
        try LMDBError.check(mdb_txn_begin(handle, nil, 0, &txn), "mdb_txn_begin(write)")
        for database in opened {
            var dbi: MDB_dbi = 0
            let rc = mdb_dbi_open(txn, database.name, 0, &dbi)
            if rc == 0 && dbi == database.dbi { continue }
            mdb_txn_abort(txn)
            throw LMDBError(code: rc == 0 ? LMDBError.badDatabase : rc, function: "mdb_dbi_open(\(database.name)) after reopening")
        }
        try LMDBError.check(mdb_txn_commit(txn), "mdb_txn_commit")
    }

    /// Frees the reader slots of processes that died inside a read transaction.
    ///
    /// Runs at open and periodically from the writer, so a reader killed while the store
    /// stays open (a dump tool, a crashed worker) does not pin old pages for ever.
    @discardableResult
    func reclaimStaleReaders() throws(LMDBError) -> Int {
        try gate.withShared { () throws(LMDBError) -> Int in
            guard unavailable("mdb_reader_check") == nil else { return 0 }
            var dead: Int32 = 0
            try LMDBError.check(mdb_reader_check(handle, &dead), "mdb_reader_check")
            return Int(dead)
        }
    }

    /// Flushes written data to disk (`mdb_env_sync` with force).
    func sync() throws(LMDBError) {
        try gate.withShared { () throws(LMDBError) in
            if let error = unavailable("mdb_env_sync") { throw error }
            try LMDBError.check(mdb_env_sync(handle, 1), "mdb_env_sync")
            syncCount.add(1, ordering: .relaxed)
        }
    }

    /// Opens (creating) the named database `name` and returns its handle.
    func openDatabase(_ name: String) throws -> MDB_dbi {
        try write { txn in
            // With `create`, never nil.
            let dbi = try txn.openDatabase(name, create: true)!
            remember([(name, dbi)])
            return dbi
        }
    }

    /// The id of the newest snapshot a new reader sees: the last commit visible to readers.
    ///
    /// Renews the reserved probe transaction (`mdb_txn_renew`, `mdb_txn_id`,
    /// `mdb_txn_reset`), which costs nanoseconds and, unlike `mdb_env_info`, never runs
    /// ahead of what readers see. When another thread holds the probe, a pooled read
    /// transaction does the same, so callers never wait for each other.
    func snapshotID() throws -> Int {
        let outcome = try gate.withShared { () throws(LMDBError) -> ProbeOutcome in
            if let error = unavailable("mdb_txn_renew") { throw error }
            return try probe.withLockIfAvailable { reader throws(LMDBError) -> ProbeOutcome in
                let txn: OpaquePointer
                if let idle = reader {
                    let rc = mdb_txn_renew(idle.txn)
                    guard rc == 0 else {
                        mdb_txn_abort(idle.txn)
                        reader = nil
                        if rc == LMDBError.mapResized { return .resized }
                        throw LMDBError(code: rc, function: "mdb_txn_renew")
                    }
                    txn = idle.txn
                } else {
                    var begun: OpaquePointer?
                    let rc = mdb_txn_begin(handle, nil, UInt32(MDB_RDONLY), &begun)
                    if rc == LMDBError.mapResized { return .resized }
                    try LMDBError.check(rc, "mdb_txn_begin(read)")
                    txn = begun!
                    reader = ReaderHandle(txn: txn)
                }
                defer { mdb_txn_reset(txn) }
                return .id(Int(mdb_txn_id(txn)))
            } ?? .busy
        }
        switch outcome {
        case .id(let id): return id
        case .busy: return try read { $0.id }
        case .resized:
            try adoptResize()
            return try snapshotID()
        }
    }

    private enum ProbeOutcome {
        case id(Int)
        /// Another thread holds the probe transaction.
        case busy
        /// Another process grew the map (`MDB_MAP_RESIZED`).
        case resized
    }

    /// Takes an idle read transaction and renews it, or begins a new one.
    ///
    /// Returns nil on `MDB_MAP_RESIZED`. Call with `gate` held shared.
    private func beginRead() -> Result<OpaquePointer, LMDBError>? {
        if let idle = idleReaders.withLock({ $0.popLast() }) {
            let rc = mdb_txn_renew(idle.txn)
            if rc == 0 { return .success(idle.txn) }
            mdb_txn_abort(idle.txn)
            if rc == LMDBError.mapResized { return nil }
            return .failure(LMDBError(code: rc, function: "mdb_txn_renew"))
        }
        var txn: OpaquePointer?
        let rc = mdb_txn_begin(handle, nil, UInt32(MDB_RDONLY), &txn)
        if rc == LMDBError.mapResized { return nil }
        if rc != 0 { return .failure(LMDBError(code: rc, function: "mdb_txn_begin(read)")) }
        return .success(txn!)
    }

    /// Resets a read transaction and keeps it for the next read.
    private func endRead(_ txn: OpaquePointer) {
        mdb_txn_reset(txn)
        idleReaders.withLock { $0.append(ReaderHandle(txn: txn)) }
    }

    /// Runs `body` in a read-only transaction on the newest snapshot.
    ///
    /// The transaction and every buffer it returns are valid only inside `body`. `body` runs
    /// with `gate` held shared and must not use the environment again (the gate is not
    /// reentrant): a map resize waiting for it would wait for ever.
    func read<R>(_ body: (Transaction) throws -> R) throws -> R {
        while true {
            // No generic `Result<R, …>` here: for an unspecialised R its metadata is looked up
            // at run time on every call, which costs as much as the LMDB read itself.
            var resized = false
            let value: R? = try gate.withShared { () throws -> R? in
                if let error = unavailable("mdb_txn_begin") { throw error }
                switch beginRead() {
                case nil:
                    resized = true
                    return nil
                case .failure(let error)?:
                    throw error
                case .success(let txn)?:
                    defer { endRead(txn) }
                    return try body(Transaction(handle: txn, bounds: bounds, readOnly: true))
                }
            }
            if resized {
                try adoptResize()
                continue
            }
            return value!
        }
    }

    /// Runs `body` in a write transaction; commits when it returns, aborts when it throws.
    ///
    /// Only one write transaction runs at a time (``writerLock`` among SessionStore
    /// processes, then LMDB's writer lock in the lock file). Callers that may hit `MDB_MAP_FULL` call ``grow(ceiling:)`` after
    /// this returns the error, then retry.
    /// Takes ``writerLock`` first (reentrant: a caller may hold it around this call), so
    /// that waiting for another process's write never holds `gate`.
    @discardableResult
    func write<R>(_ body: (Transaction) throws -> R) throws -> R {
        try writerLock.withLock { try writeHoldingWriterLock(body) }
    }

    private func writeHoldingWriterLock<R>(_ body: (Transaction) throws -> R) throws -> R {
        while true {
            let outcome: Result<R, LMDBError>? = try gate.withShared { () throws -> Result<R, LMDBError>? in
                if let error = unavailable("mdb_txn_begin") { return .failure(error) }
                var txn: OpaquePointer?
                let rc = mdb_txn_begin(handle, nil, 0, &txn)
                if rc == LMDBError.mapResized { return nil }
                if rc != 0 { return .failure(LMDBError(code: rc, function: "mdb_txn_begin(write)")) }
                let value: R
                do {
                    TestHooks.insideWrite.run(path)
                    value = try body(Transaction(handle: txn!, bounds: bounds, readOnly: false))
                } catch {
                    mdb_txn_abort(txn)
                    throw error
                }
                let commit = mdb_txn_commit(txn)
                if commit != 0 { return .failure(LMDBError(code: commit, function: "mdb_txn_commit")) }
                return .success(value)
            }
            switch outcome {
            case nil: try adoptResize()
            case .success(let value)?: return value
            case .failure(let error)?: throw error
            }
        }
    }

    /// Doubles the map size, up to `ceiling`. Returns false when the map is already at it.
    ///
    /// Waits until no transaction of this process is active, as `mdb_env_set_mapsize` requires.
    func grow(ceiling: Int?) throws(LMDBError) -> Bool {
        try gate.withExclusive { () throws(LMDBError) -> Bool in
            if let error = unavailable("mdb_env_set_mapsize") { throw error }
            var info = MDB_envinfo()
            try LMDBError.check(mdb_env_info(handle, &info), "mdb_env_info")
            let current = max(info.me_mapsize, currentMapSize)
            var target = current > Int.max / 2 ? Int.max : current * 2
            if let ceiling { target = min(target, ceiling) }
            guard target > current else { return false }
            try setMapSize(target)
            currentMapSize = target
            return true
        }
    }

    /// Calls `mdb_env_set_mapsize`; on failure marks the environment broken. Hold `gate` exclusively.
    private func setMapSize(_ size: Int) throws(LMDBError) {
        let rc = mdb_env_set_mapsize(handle, size)
        if rc != 0 {
            let error = LMDBError(code: rc, function: "mdb_env_set_mapsize")
            broken = error
            usable.store(false, ordering: .relaxed)
            throw error
        }
        bounds.refresh(handle)
    }

    /// Adopts the map size another process set (after `MDB_MAP_RESIZED`).
    func adoptResize() throws(LMDBError) {
        try gate.withExclusive { () throws(LMDBError) in
            if let error = unavailable("mdb_env_set_mapsize") { throw error }
            try setMapSize(0)
            adoptCount.add(1, ordering: .relaxed)
            var info = MDB_envinfo()
            try LMDBError.check(mdb_env_info(handle, &info), "mdb_env_info")
            currentMapSize = info.me_mapsize
        }
    }
}
