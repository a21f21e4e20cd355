#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The record keys whose `loadOrInit` value is being built, so that concurrent callers wait
/// for one build, and a caller that would wait for itself throws instead.
///
/// Each build belongs to the thread that runs its `make` closure (a synchronous call runs on
/// one thread from start to end). A thread that asks for a key its own build holds, or whose
/// wait would close a chain of builds each waiting for the next, gets `.initCycle`: waiting
/// would never end.
final class InitBuilds: Sendable {
    private struct State {
        /// The thread building each key.
        var owners: [[UInt8]: UInt] = [:]
        /// The key each waiting thread waits for.
        var waiting: [UInt: [UInt8]] = [:]

        /// Whether `thread` waiting for `key` would wait, through the builds' owners, for itself.
        func closesCycle(_ thread: UInt, waitingFor key: [UInt8]) -> Bool {
            var next = key
            // Each step moves to another thread; a chain longer than the waiting threads loops elsewhere.
            for _ in 0...waiting.count {
                guard let owner = owners[next] else { return false }
                if owner == thread { return true }
                guard let wanted = waiting[owner] else { return false }
                next = wanted
            }
            return false
        }
    }

    private let state = ConditionLock(State())

    /// The calling thread, as a number that no other live thread has.
    private static var currentThread: UInt {
        #if canImport(Darwin)
        UInt(bitPattern: pthread_self())
        #else
        UInt(pthread_self())
        #endif
    }

    /// Waits until no other thread builds `key`, then marks it as built by this thread.
    ///
    /// - Throws: `.initCycle` when the wait would never end.
    func begin(_ key: [UInt8], describing name: @autoclosure () -> String) throws(SessionStoreError) {
        let me = Self.currentThread
        let acquired = state.withLock(waitingUntil: { state in
            if state.owners[key] == nil || state.closesCycle(me, waitingFor: key) { return true }
            state.waiting[me] = key
            return false
        }) { state, _ in
            state.waiting[me] = nil
            guard state.owners[key] == nil else { return false }
            state.owners[key] = me
            return true
        }
        guard acquired else {
            throw SessionStoreError(.initCycle, "loadOrInit for \(name()) would wait for itself: its make closure, or a build it waits for, asks for the same key; build the value without calling loadOrInit for that key inside make")
        }
    }

    /// Ends this thread's build of `key` and wakes the threads waiting for it.
    func end(_ key: [UInt8]) {
        state.withLock { _ = $0.owners.removeValue(forKey: key) }
        state.broadcast()
    }
}
