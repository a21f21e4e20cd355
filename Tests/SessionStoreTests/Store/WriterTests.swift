import Foundation
import Synchronization
import Testing
@testable import SessionStore

/// The group-commit writer's life cycle.
@Suite struct WriterTests {
    final class Counter: Sendable {
        let value = Atomic<Int>(0)
    }

    /// `close()` stops the writer thread; a synchronous caller may hold the writer role at
    /// that moment, and giving the role up must then still wake the thread to stop.
    @Test func closeReturnsWhileASynchronousCallerIsCommitting() throws {
        for round in 0..<10 {
            let directory = TemporaryDirectory()
            defer { directory.remove() }
            let store = try SessionStore(path: directory.child("store"))
            let session = try store.session("s")
            let saves = Counter()
            Thread {
                // Back-to-back durable saves: this thread holds the writer role most of the time.
                for step in 0... {
                    do { try session.save(step, for: "k") } catch { return }
                    saves.value.add(1, ordering: .relaxed)
                }
            }.start()
            while saves.value.load(ordering: .relaxed) < 3 + round { usleep(100) }
            let closed = DispatchSemaphore(value: 0)
            Thread {
                try? store.close()
                closed.signal()
            }.start()
            #expect(closed.wait(timeout: .now() + 10) == .success, "close() hung in round \(round)")
        }
    }
}
