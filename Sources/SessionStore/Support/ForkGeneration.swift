import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The number of `fork()`s between the process that started and this one.
///
/// A `pthread_atfork` child handler, registered by the first ``register()``, adds one in
/// each forked child. A store records the generation when it opens; a different value
/// later means the caller is a forked child, which must not use the parent's LMDB
/// environment (LMDB forbids it: the child would act on the parent's reader slots and
/// locks). Reading it is one relaxed atomic load, unlike `getpid()`, a system call.
enum ForkGeneration {
    private static let counter = Atomic<UInt>(0)

    private static let registration: Int32 = pthread_atfork(nil, nil) {
        // Runs in the child right after fork(): an atomic add is async-signal-safe.
        ForkGeneration.counter.add(1, ordering: .relaxed)
    }

    /// Registers the fork handler (once per process) and returns the current generation.
    static func register() -> UInt {
        _ = registration
        return current
    }

    /// The current generation: 0 in the process that was started, one more in each forked child.
    @inline(__always)
    static var current: UInt { counter.load(ordering: .relaxed) }
}
