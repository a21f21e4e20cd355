#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A mutex-protected state with a condition variable, for threads that wait for a change.
///
/// The state is reached only inside `withLock`. `withLock(waitingUntil:deadline:_:)`
/// blocks the calling thread until a predicate on the state holds (or a deadline passes).
/// Use it on dedicated threads and for synchronous callers; async code must not wait on it.
///
/// Like ``Lock``, the state lives behind a pointer so that access skips Swift's run-time
/// exclusivity check, which the mutex makes redundant.
// @unchecked Sendable: `state` is read and written only while `mutex` is held, and the
// pthread objects and state live in stable heap memory allocated in `init` and freed in `deinit`.
final class ConditionLock<State>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let state = UnsafeMutablePointer<State>.allocate(capacity: 1)

    init(_ initial: State) {
        state.initialize(to: initial)
        pthread_mutex_init(mutex, nil)
        #if canImport(Glibc)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
        #else
        pthread_cond_init(condition, nil)
        #endif
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
        state.deinitialize(count: 1)
        state.deallocate()
    }

    /// Runs `body` with exclusive access to the state.
    func withLock<R, E: Error>(_ body: (inout State) throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&state.pointee)
    }

    /// Waits until `ready` holds or `deadline` (monotonic nanoseconds) passes, then runs `body`.
    ///
    /// - Parameters:
    ///   - ready: checked under the lock before each wait.
    ///   - deadline: a `MonotonicClock.now`-style value in nanoseconds, or nil for no limit.
    ///   - body: runs under the lock; its second argument says whether `ready` held.
    func withLock<R>(
        waitingUntil ready: (inout State) -> Bool,
        deadline: UInt64? = nil,
        _ body: (inout State, Bool) throws -> R
    ) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        var isReady = ready(&state.pointee)
        while !isReady {
            if let deadline {
                // One reading of the clock for the check and the wait: a second one, later,
                // could pass the deadline and make the remaining time underflow.
                guard let remaining = MonotonicClock.remaining(until: deadline, now: MonotonicClock.nanoseconds()) else { break }
                #if canImport(Glibc)
                _ = remaining
                var time = timespec(
                    tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
                pthread_cond_timedwait(condition, mutex, &time)
                #else
                // Darwin has no monotonic condition clock: wait relative to now.
                var time = timespec(
                    tv_sec: Int(remaining / 1_000_000_000), tv_nsec: Int(remaining % 1_000_000_000))
                pthread_cond_timedwait_relative_np(condition, mutex, &time)
                #endif
            } else {
                pthread_cond_wait(condition, mutex)
            }
            isReady = ready(&state.pointee)
        }
        return try body(&state.pointee, isReady)
    }

    /// Wakes every thread waiting in `withLock(waitingUntil:deadline:_:)`.
    func broadcast() {
        pthread_cond_broadcast(condition)
    }
}

/// Monotonic time in nanoseconds, the clock `ConditionLock` deadlines use.
enum MonotonicClock {
    static func nanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }

    /// The nanoseconds from `now` to `deadline`, or nil when the deadline has passed.
    static func remaining(until deadline: UInt64, now: UInt64) -> UInt64? {
        now < deadline ? deadline - now : nil
    }

    static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        if seconds < 0 { return 0 }
        return UInt64(seconds) &* 1_000_000_000 &+ UInt64(attoseconds / 1_000_000_000)
    }
}
