import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A state that one thread at a time may use, where the others go elsewhere instead of
/// waiting: an atomic flag, cheaper than a mutex's try-lock and unlock.
///
/// The environment keeps its snapshot-probe read transaction in one: a load that finds it
/// taken uses a pooled read transaction instead.
// @unchecked Sendable: `state` is read and written only by the thread that set `taken`
// (acquiring) until it clears it (releasing), so accesses never overlap; the state lives
// in stable heap memory allocated in `init` and freed in `deinit`.
final class TryLock<State>: @unchecked Sendable {
    private let taken = Atomic<Bool>(false)
    private let state = UnsafeMutablePointer<State>.allocate(capacity: 1)

    init(_ initial: State) {
        state.initialize(to: initial)
    }

    deinit {
        state.deinitialize(count: 1)
        state.deallocate()
    }

    /// Runs `body` with exclusive access to the state, or returns nil at once when another
    /// thread is using it.
    @inline(__always)
    func withLockIfAvailable<R, E: Error>(_ body: (inout State) throws(E) -> R) throws(E) -> R? {
        guard taken.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return nil }
        defer { taken.store(false, ordering: .releasing) }
        return try body(&state.pointee)
    }

    /// Runs `body` with exclusive access to the state, waiting while another thread uses it.
    func withLock<R>(_ body: (inout State) -> R) -> R {
        while true {
            if let result = withLockIfAvailable(body) { return result }
            sched_yield()
        }
    }
}
