import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A readers-writer gate: many shared holders at once, or one exclusive holder.
///
/// The environment holds it shared around every read transaction and exclusive while it
/// changes the map size, which LMDB allows only when no transaction of the process is
/// active. Shared entry is one atomic add and exit one atomic subtract, about a fifth of
/// a pthread rwlock's cost on a cache hit's path; exclusive entry, rare, waits for the
/// shared holders to leave, and new shared entrants wait for it, so it is never starved.
///
/// Not reentrant: a thread holding the gate must not enter it again.
final class ReadWriteGate: Sendable {
    /// Set while an exclusive holder is in or waiting to enter.
    private static let exclusiveBit = 1 << 62
    /// The number of shared holders, plus `exclusiveBit`.
    private let word = Atomic<Int>(0)
    /// Held for the whole exclusive section; shared entrants that find the bit set block
    /// on it rather than spin.
    private let exclusive = Lock<Void>(())

    /// Runs `body` while holding the gate shared.
    @inline(__always)
    func withShared<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        if word.wrappingAdd(1, ordering: .acquiring).oldValue & Self.exclusiveBit != 0 {
            waitForExclusiveHolder()
        }
        defer { word.wrappingSubtract(1, ordering: .releasing) }
        return try body()
    }

    /// Steps back out and waits until the exclusive holder is done, then enters shared.
    private func waitForExclusiveHolder() {
        repeat {
            word.wrappingSubtract(1, ordering: .releasing)
            exclusive.withLock { _ in }
        } while word.wrappingAdd(1, ordering: .acquiring).oldValue & Self.exclusiveBit != 0
    }

    /// Runs `body` while holding the gate exclusively, once every shared holder has left.
    func withExclusive<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        try exclusive.withLock { _ throws(E) -> R in
            word.bitwiseOr(Self.exclusiveBit, ordering: .acquiringAndReleasing)
            defer { word.bitwiseAnd(~Self.exclusiveBit, ordering: .releasing) }
            var spins = 0
            while word.load(ordering: .acquiring) != Self.exclusiveBit {
                spins += 1
                if spins < 100 { sched_yield() } else { usleep(100) }
            }
            return try body()
        }
    }
}
