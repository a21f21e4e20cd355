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
        // Runs in the child right after fork(): an atomic add, atomic loads and close()
        // are async-signal-safe.
        ForkGeneration.counter.add(1, ordering: .relaxed)
        let claimed = ForkGeneration.claimedSlots.load(ordering: .acquiring)
        for slot in 0..<ForkGeneration.slotCount where claimed & (1 << slot) != 0 {
            let descriptor = ForkGeneration.descriptors[slot]
            if descriptor >= 0 { close(descriptor) }
        }
    }

    /// Descriptors the child closes right after a fork (see ``closeInForkedChildren(_:)``),
    /// by slot; a slot is claimed by setting its bit in `claimedSlots`, so the child
    /// handler reads them without a lock (a lock held by another thread at the fork would
    /// stay held in the child).
    private static let slotCount = 64
    private static let claimedSlots = Atomic<UInt64>(0)
    // Written only by a slot's claimant while its bit is set; read by the child handler.
    nonisolated(unsafe) private static let descriptors: UnsafeMutablePointer<Int32> = {
        let slots = UnsafeMutablePointer<Int32>.allocate(capacity: slotCount)
        slots.initialize(repeating: -1, count: slotCount)
        return slots
    }()

    /// Makes every forked child close `descriptor` at once, so that a lock held through its
    /// open file description (`flock`) is not kept alive by a child after this process ends.
    ///
    /// - Returns: the slot to pass to ``forget(_:)``, or nil when all 64 slots are taken.
    static func closeInForkedChildren(_ descriptor: Int32) -> Int? {
        _ = registration
        _ = descriptors
        var claimed = claimedSlots.load(ordering: .relaxed)
        while true {
            guard claimed != .max else { return nil }
            let slot = (~claimed).trailingZeroBitCount
            let (exchanged, original) = claimedSlots.compareExchange(
                expected: claimed, desired: claimed | (1 << slot), ordering: .acquiringAndReleasing)
            if exchanged {
                // The slot held -1 since its last ``forget(_:)``; a fork before this write
                // just leaves the descriptor open in that child.
                descriptors[slot] = descriptor
                return slot
            }
            claimed = original
        }
    }

    /// Gives up a slot of ``closeInForkedChildren(_:)``, before its descriptor is closed.
    static func forget(_ slot: Int) {
        descriptors[slot] = -1
        claimedSlots.bitwiseAnd(~(1 << UInt64(slot)), ordering: .acquiringAndReleasing)
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
