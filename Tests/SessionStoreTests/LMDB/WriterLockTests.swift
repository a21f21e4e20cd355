import Foundation
import Synchronization
import Testing
@testable import SessionStore

/// The writer lock among processes (``WriterLock``): what waiting for another process's
/// write must not block, and what another process must not do while this one settles a commit.
/// Serialized: the hooks are process-wide, one action at a time.
@Suite(.serialized) struct WriterLockTests {
    /// Whether the process `pid` is stopped (state `T` in `/proc/<pid>/stat`).
    private func isStopped(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return stat[close...].dropFirst(2).first == "T"
    }

    /// Polls `condition` every 10 ms for at most `seconds`.
    private func eventually(within seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/proc/self/stat"), "reads a process's state from /proc"))
    func loadsKeepAnsweringWhileAnotherProcessThatGrewTheMapIsStoppedInItsWrite() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.child("store")
        let store = try SessionStore(path: path, configuration: .init(mapSize: 1 << 20))
        defer { try? store.close() }
        let session = try store.session("s")
        try session.save("1", for: "a")

        // The other process grows the map past this process's mapping, then stops inside
        // its next write transaction, holding the writer lock.
        let child = Process()
        child.executableURL = productURL("sessionstore-child")
        child.arguments = ["stall-write", path]
        let output = Pipe()
        child.standardOutput = output
        child.standardError = output
        try child.run()
        defer { if child.isRunning { kill(child.processIdentifier, SIGCONT); child.terminate() } }
        let firstLine = output.fileHandleForReading.availableData
        #expect(String(decoding: firstLine, as: UTF8.self).contains("grown"), "child: \(String(decoding: firstLine, as: UTF8.self))")
        #expect(eventually(within: 20) { isStopped(child.processIdentifier) }, "the child did not stop in its write")

        // A local save now waits for the other process's write.
        let saved = Atomic<Bool>(false)
        let saver = Thread {
            do { try session.save("2", for: "b") } catch { Issue.record("local save: \(error)") }
            saved.store(true, ordering: .releasing)
        }
        saver.start()
        usleep(300_000)
        let savedEarly = saved.load(ordering: .acquiring)
        #expect(!savedEarly, "the save should wait for the stopped writer")

        // Loads of existing keys must adopt the grown map and answer meanwhile.
        let outcome = finishing(within: 10) { try session.load(String.self, for: "a") }
        if let outcome {
            #expect(try outcome.get() == "1")
        } else {
            Issue.record("a load waited behind another process's write transaction")
        }

        kill(child.processIdentifier, SIGCONT)
        child.waitUntilExit()
        let rest = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(child.terminationStatus == 0, "child: \(rest)")
        #expect(eventually(within: 20) { saved.load(ordering: .acquiring) }, "the local save did not finish after the other writer")
        #expect(try session.load(String.self, for: "b") == "2")
        #expect(try store.session("grow").load(String.self, for: "late") == "after")
    }

    enum UnusedCommit: String, CaseIterable, Sendable { case empty, aborted }

    @Test(arguments: UnusedCommit.allCases)
    func anUnusedCommitsIDIsNotTakenForOurOwnWhenAnotherProcessCommitsNext(_ kind: UnusedCommit) throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.child("store")
        let store = try SessionStore(path: path, configuration: .init(mapSize: 1 << 20, maxMapSize: 1 << 20))
        defer { try? store.close() }
        let session = try store.session("s")
        try session.save("1", for: "k")
        #expect(try session.load(String.self, for: "k") == "1")
        #expect(store.cache.count == 1)

        // Between this process's empty commit and the cache's withdrawal of its id, another
        // process saves k: it must not be able to commit under the withdrawn id, or a load
        // here would take that commit for this process's own and serve the cached "1".
        struct Seen: Sendable { var childFinished = false; var childStatus: Int32 = -1; var loaded: String?; var error: String? }
        let seen = Mutex(Seen())
        let fired = Atomic<Bool>(false)
        let canonical = store.environment.path
        TestHooks.beforeSettlingCommit.set { hookPath in
            guard hookPath == canonical, !fired.exchange(true, ordering: .relaxed) else { return }
            do {
                let child = Process()
                child.executableURL = productURL("sessionstore-child")
                child.arguments = ["put", path, "s", "k", "2"]
                child.environment = ProcessInfo.processInfo.environment.merging(["SESSIONSTORE_CHILD_ANNOUNCE": "1"]) { $1 }
                let announcements = Pipe()
                child.standardOutput = FileHandle.nullDevice
                child.standardError = announcements
                try child.run()
                // Wait until the child starts opening the store (a slow start on a busy machine
                // must not pass for a blocked write), then give its open and save a second.
                let opened = announcements.fileHandleForReading.availableData
                let saving = String(decoding: opened, as: UTF8.self).contains("opening")
                let deadline = Date().addingTimeInterval(1)
                while child.isRunning && Date() < deadline { usleep(10_000) }
                let finished = !child.isRunning
                guard saving else { throw SessionStoreError(.storageFailure, "the child did not start its save: \(String(decoding: opened, as: UTF8.self))") }
                let loaded = try session.load(String.self, for: "k")
                seen.withLock { $0.childFinished = finished; $0.childStatus = finished ? child.terminationStatus : -1; $0.loaded = loaded }
                if !finished {
                    // Let it finish after this commit settles.
                    Thread.detachNewThread { child.waitUntilExit() }
                }
            } catch {
                seen.withLock { $0.error = "\(error)" }
            }
        }
        defer { TestHooks.beforeSettlingCommit.set(nil) }
        switch kind {
        case .empty:
            // Removing a missing key changes nothing: LMDB takes no new transaction id.
            #expect(try session.remove("missing") == false)
        case .aborted:
            // Larger than the map at its ceiling: the transaction aborts with map full.
            #expect(throws: SessionStoreError.self) { try session.save(Data(count: 2 << 20), for: "big") }
        }
        TestHooks.beforeSettlingCommit.set(nil)

        let during = seen.withLock { $0 }
        let didFire = fired.load(ordering: .relaxed)
        #expect(didFire)
        #expect(during.error == nil, "\(during.error ?? "")")
        if during.childFinished {
            #expect(during.childStatus == 0)
            #expect(during.loaded == "2", "another process's commit under the withdrawn id was served from the cache as \(during.loaded ?? "nil")")
        } else {
            #expect(during.loaded == "1")
        }
        // Once settled, the other process commits and this one sees its value.
        #expect(eventually(within: 20) { (try? session.load(String.self, for: "k")) == "2" }, "the other process's save was not seen")
    }
}
