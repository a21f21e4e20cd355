#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The store's writer lock among processes: an `flock` on the store directory, taken
/// before LMDB's own writer lock and held until the write's effects on the cache are settled.
///
/// LMDB's writer mutex is taken inside `mdb_txn_begin`, where a waiting thread of this
/// process would hold the environment's gate and so stop every reader of the process from
/// adopting a map that another process grew. Waiting here instead, outside the gate, keeps
/// reads answering while another process writes (or is stopped in a write). Holding it
/// past the commit keeps another process from committing the transaction id this process
/// announced to its cache and then withdrew (an aborted or empty commit), which the cache
/// would take for its own.
///
/// Every SessionStore process takes it; a program that writes the files with LMDB alone
/// does not, and is waited for inside LMDB as before. The lock is on the directory, not on
/// `lock.mdb`: closing any descriptor of `lock.mdb` would drop LMDB's `fcntl` locks on it.
///
/// Reentrant within a thread, so a caller can hold it around ``Environment/write(_:)``.
///
/// A `flock` belongs to the open file description, which a child made by `fork()` shares:
/// every forked child closes its copy at once (``ForkGeneration``), so that a child that
/// outlives this process cannot keep the lock held for every other process.
// @unchecked Sendable: `depth` is read and written only while `mutex` is held; the mutex
// lives in heap memory allocated in `init` and freed in `deinit`; `descriptor` is set in `init`.
final class WriterLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let descriptor: Int32
    private var depth = 0
    /// This lock's slot among the descriptors forked children close.
    private let forkSlot: Int?
    private let forkGeneration = ForkGeneration.register()

    /// Opens the directory at `path` for locking.
    ///
    /// - Throws: when the directory cannot be opened, or its file system has no working
    ///   `flock` (a network file system may not; LMDB does not support those either).
    init(directory path: String) throws(LMDBError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw LMDBError(code: errno, function: "open(\(path)) for the writer lock") }
        // A probe: a lock held elsewhere is fine (EWOULDBLOCK); any other failure means
        // the lock would silently not exclude anyone.
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            _ = flock(fd, LOCK_UN)
        } else if errno != EWOULDBLOCK {
            let code = errno
            close(fd)
            throw LMDBError(code: code, function: "flock(\(path)) for the writer lock")
        }
        descriptor = fd
        forkSlot = ForkGeneration.closeInForkedChildren(fd)
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_RECURSIVE))
        pthread_mutex_init(mutex, &attributes)
        pthread_mutexattr_destroy(&attributes)
    }

    deinit {
        // A forked child closed its copy right after the fork; the number may be reused since.
        if ForkGeneration.current == forkGeneration {
            if let forkSlot { ForkGeneration.forget(forkSlot) }
            close(descriptor)
        }
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` holding the lock, waiting for other threads and processes that hold it.
    func withLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        depth += 1
        if depth == 1 {
            // EINTR: a signal arrived while waiting; wait again. Any other failure (EBADF,
            // ENOLCK) leaves LMDB's own writer lock as the only one, as for a plain LMDB writer.
            while flock(descriptor, LOCK_EX) != 0 && errno == EINTR {}
        }
        defer {
            depth -= 1
            if depth == 0 { _ = flock(descriptor, LOCK_UN) }
        }
        return try body()
    }
}
