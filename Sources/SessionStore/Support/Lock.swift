#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A state reachable only inside `withLock`, guarded by a pthread mutex.
///
/// Used instead of `Synchronization.Mutex` because ThreadSanitizer understands pthread
/// mutexes on Linux, while it reported the standard library's futex-based `Mutex` as
/// racing with itself, which would hide real races in the TSan run.
///
/// The state lives behind a pointer rather than in a stored `var`: the mutex already makes
/// access exclusive, and a class's `var` would add Swift's run-time exclusivity check to
/// every call, which measured as a sizeable part of a cache hit.
// @unchecked Sendable: `state` is read and written only while `mutex` is held, and the
// mutex and state live in stable heap memory allocated in `init` and freed in `deinit`.
final class Lock<State>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let state = UnsafeMutablePointer<State>.allocate(capacity: 1)

    init(_ initial: State) {
        state.initialize(to: initial)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        state.deinitialize(count: 1)
        state.deallocate()
    }

    /// Runs `body` with exclusive access to the state.
    @inline(__always)
    func withLock<R, E: Error>(_ body: (inout State) throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&state.pointee)
    }
}
