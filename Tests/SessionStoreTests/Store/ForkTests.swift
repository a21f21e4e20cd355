import Foundation
import Testing
@testable import SessionStore

/// A store open across `fork()` is closed in the child and intact in the parent (issue #11, item 11).
@Suite struct ForkTests {
    @Test func aForkedChildIsRefusedTheParentsStoreAndTheParentGoesOn() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.child("store")
        let run = try runProduct("sessionstore-child", ["fork-use", path])
        #expect(run.status == 0, "\(run.output)")
        let lines = run.output.split(separator: "\n").map(String.init)
        // In the child: loads and saves throw storeClosed saying why, close returns at once,
        // and a store opened anew in the child works.
        #expect(lines.contains("child load=storeClosed(fork) save=storeClosed(fork) close=ok reopen=ok:before fork"), "\(run.output)")
        #expect(lines.contains("child exit=0"), "\(run.output)")
        #expect(lines.contains("parent load=after fork"), "\(run.output)")

        // The parent's commit after the fork is there, the child's attempt is not, and the
        // lock file still serves a new process.
        let store = try SessionStore(path: path)
        #expect(try store.session("fork").load(String.self, for: "k") == "after fork")
        try store.close()
        let get = try runProduct("sessionstore-child", ["get", path, "fork", "k"])
        #expect(get.status == 0 && get.output == "after fork\n", "\(get.output)")
    }

    @Test func aForkedChildDoesNotKeepTheWriterLockOfAParentThatDiedInAWrite() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.child("store")
        // The parent forks a sleeper, then is killed inside a write, holding the writer lock.
        let run = try runProduct("sessionstore-child", ["fork-hold", path])
        let sleeper = run.output.split(separator: "\n").first { $0.hasPrefix("sleeper ") }.flatMap { Int32($0.dropFirst(8)) }
        defer { if let sleeper { kill(sleeper, SIGKILL) } }
        #expect(run.status == SIGKILL, "\(run.output)")
        #expect(sleeper != nil, "\(run.output)")
        // While the sleeper lives, another process must still be able to write.
        let outcome = finishing(within: 15) { () throws -> String? in
            let store = try SessionStore(path: path)
            defer { try? store.close() }
            return try store.session("fork").save("after", for: "k")
        }
        guard let outcome else {
            Issue.record("a write waited for the writer lock of a dead process, held on by its forked child")
            if let sleeper { kill(sleeper, SIGKILL) }
            return
        }
        #expect(try outcome.get() == "before fork")
    }
}
