import Synchronization

/// Points inside the store where this package's tests and test child pause or act.
///
/// Hooks are process-wide and receive the store directory's canonical path, so a test
/// acts only on its own store while other tests run in parallel. Unset, a hook costs one
/// relaxed atomic load.
package enum TestHooks {
    /// Runs inside every write transaction, after it began and before its changes.
    package static let insideWrite = Hook()
    /// Runs after the writer's transaction ended (committed, empty or aborted) and before
    /// it settles the cache, still holding the writer lock.
    package static let beforeSettlingCommit = Hook()
    /// Runs inside the `close()` that closes the store, before it stops the writer.
    package static let duringClose = Hook()
}

/// One action that ``TestHooks`` runs when set.
package final class Hook: Sendable {
    private let armed = Atomic<Bool>(false)
    private let action = Lock<(@Sendable (String) -> Void)?>(nil)

    /// Sets (or with nil, clears) the action; it receives the store's canonical path.
    package func set(_ action: (@Sendable (_ path: String) -> Void)?) {
        self.action.withLock { $0 = action }
        armed.store(action != nil, ordering: .releasing)
    }

    @inline(__always)
    func run(_ path: String) {
        if armed.load(ordering: .relaxed), let action = action.withLock({ $0 }) { action(path) }
    }
}
