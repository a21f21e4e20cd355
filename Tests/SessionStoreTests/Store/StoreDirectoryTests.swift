import CBORCoding
import CLMDB
import Foundation
import Testing
@testable import SessionStore

/// Opening a path: planted links, other owners, loose modes, races between processes,
/// half-created stores and LMDB environments that are not stores (issue #11, items 10 and 15).
@Suite struct StoreDirectoryTests {
    /// A closed store at `<directory>/store` holding "s"/"k" = "v".
    func makeStore(in directory: TemporaryDirectory) throws -> String {
        let path = directory.child("store")
        let store = try SessionStore(path: path)
        try store.session("s").save("v", for: "k")
        try store.close()
        return path
    }

    func info(_ path: String) throws -> stat {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: path]) }
        return info
    }

    /// Whether this process holds the shared lock on the first byte of `lock.mdb` by which
    /// LMDB tells other processes that the environment is in use (after /proc/locks, whose
    /// lines read "1: POSIX  ADVISORY  READ <pid> <major>:<minor>:<inode> 0 0").
    func holdsLock(on file: String) throws -> Bool {
        let inode = ":\(try info(file).st_ino) "
        return try String(contentsOfFile: "/proc/locks", encoding: .utf8)
            .split(separator: "\n")
            .contains { $0.contains("POSIX") && $0.contains(" READ \(getpid()) ") && $0.contains(inode) && $0.hasSuffix(" 0 0") }
    }

    // MARK: Links

    @Test func aStoreDirectoryReachedThroughASymlinkIsRefused() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let real = try makeStore(in: directory)
        let link = directory.child("link")
        #expect(symlink(real, link) == 0)
        let error = #expect(throws: SessionStoreError.self) { try SessionStore(path: link) }
        #expect(error?.code == .permissionDenied)
        #expect(error?.message.contains(link) == true)
        #expect(error?.message.contains("symbolic link") == true)
    }

    @Test(arguments: ["data.mdb", "lock.mdb"])
    func aStoreFilePlantedAsASymlinkIsRefusedAndItsTargetUntouched(_ name: String) throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.child("store")
        #expect(mkdir(path, 0o700) == 0)
        let victim = directory.child("victim")
        let victimBytes = Data("the file an attacker wants overwritten\n".utf8)
        #expect(FileManager.default.createFile(atPath: victim, contents: victimBytes, attributes: [.posixPermissions: 0o644]))
        #expect(symlink(victim, path + "/" + name) == 0)

        let error = #expect(throws: SessionStoreError.self) { try SessionStore(path: path) }
        #expect(error?.code == .permissionDenied)
        #expect(error?.message.contains(path + "/" + name) == true)
        #expect(error?.message.contains("symbolic link") == true)
        #expect(FileManager.default.contents(atPath: victim) == victimBytes)
        #expect(try info(victim).st_mode & 0o777 == 0o644)
    }

    // MARK: Modes and owners

    /// (file inside the store, or "" for the directory; the mode it is given)
    static let writableByOthers: [(String, mode_t)] = [("", 0o770), ("", 0o707), ("", 0o1777), ("data.mdb", 0o620), ("lock.mdb", 0o602)]

    @Test(arguments: writableByOthers)
    func aStoreDirectoryOrFileWritableByOthersIsRefused(_ name: String, _ mode: mode_t) throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = try makeStore(in: directory)
        let target = name.isEmpty ? path : path + "/" + name
        #expect(chmod(target, mode) == 0)
        let error = #expect(throws: SessionStoreError.self) { try SessionStore(path: path) }
        #expect(error?.code == .permissionDenied)
        #expect(error?.message.contains("\(target) is writable by") == true, "\(String(describing: error))")
        #expect(try info(target).st_mode & 0o7777 == mode, "the refused open changed the mode")
    }

    @Test func existingFilesReadableByOthersAreNarrowedTo0600() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = try makeStore(in: directory)
        for name in ["data.mdb", "lock.mdb"] { #expect(chmod(path + "/" + name, 0o644) == 0) }
        let store = try SessionStore(path: path)
        #expect(try store.session("s").load(String.self, for: "k") == "v")
        for name in ["data.mdb", "lock.mdb"] { #expect(try info(path + "/" + name).st_mode & 0o777 == 0o600) }
        if FileManager.default.fileExists(atPath: "/proc/locks") {
            #expect(try holdsLock(on: path + "/lock.mdb"), "narrowing the mode dropped LMDB's lock on lock.mdb")
        }
        try store.close()
    }

    /// The owner rule for a process that is not root, with its user passed in.
    @Test(.enabled(if: geteuid() == 0, "needs root to give files to another user"))
    func aDirectoryOrFileOfAnotherOwnerIsRefusedToANonRootUser() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = try makeStore(in: directory)  // everything owned by root
        let ownDirectory = #expect(throws: SessionStoreError.self) { try StoreDirectory(path: path, effectiveUID: 65534) }
        #expect(ownDirectory?.code == .permissionDenied)
        #expect(ownDirectory?.message.contains("\(path) is owned by uid 0, not by this process's user (uid 65534)") == true, "\(String(describing: ownDirectory))")

        #expect(chown(path, 65534, 65534) == 0)  // the directory is the user's, its files are not
        let checked = try StoreDirectory(path: path, effectiveUID: 65534)
        let file = #expect(throws: SessionStoreError.self) { try checked.prepareFiles() }
        #expect(file?.code == .permissionDenied)
        #expect(file?.message.contains("\(path)/data.mdb is owned by uid 0") == true, "\(String(describing: file))")

        // Root (uid 0) passes the owner rule for the same files.
        try StoreDirectory(path: path, effectiveUID: 0).prepareFiles()
    }

    /// Root may open (and so dump) a store another user owns; it is left as it was.
    @Test(.enabled(if: geteuid() == 0, "needs root to give the store to another user"))
    func rootOpensAStoreOwnedByAnotherUserAndLeavesItsOwnerAndModes() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = try makeStore(in: directory)
        let names = [path, path + "/data.mdb", path + "/lock.mdb"]
        for name in names { #expect(chown(name, 65534, 65534) == 0) }
        #expect(chmod(path + "/data.mdb", 0o640) == 0)
        let store = try SessionStore(path: path)
        #expect(try store.session("s").load(String.self, for: "k") == "v")
        try store.close()
        for name in names { #expect(try info(name).st_uid == 65534) }
        #expect(try info(path + "/data.mdb").st_mode & 0o777 == 0o640)
    }

    /// A process of another user is refused a store it may write through its group.
    @Test(.enabled(if: geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/runuser"),
                   "needs root and runuser to run the child as nobody"))
    func anotherUsersProcessIsRefusedEvenWhenItsGroupMayWrite() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        #expect(chmod(directory.path, 0o755) == 0)
        let path = try makeStore(in: directory)
        for name in [path, path + "/data.mdb", path + "/lock.mdb"] { #expect(chown(name, 0, 65534) == 0) }
        #expect(chmod(path, 0o770) == 0)
        for name in ["data.mdb", "lock.mdb"] { #expect(chmod(path + "/" + name, 0o660) == 0) }
        let run = try runProduct("sessionstore-child", ["get", path, "s", "k"], launcher: ["/usr/sbin/runuser", "-u", "nobody", "--"])
        #expect(run.status != 0, "the child read the store: \(run.output)")
        #expect(run.output.contains("permissionDenied"), "\(run.output)")
        #expect(run.output.contains("\(path) is owned by uid 0"), "\(run.output)")
    }

    /// LMDB keeps a POSIX lock on lock.mdb while a process has the environment open, and
    /// closing any descriptor of that file drops it: the checks of a second open must not.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/proc/locks"), "needs /proc/locks"))
    func aRefusedSecondOpenKeepsTheFirstOpensLockOnLockMdb() async throws {
        try await withTemporaryStore { store, path in
            #expect(try holdsLock(on: path + "/lock.mdb"), "no lock of this process on lock.mdb while the store is open")
            let error = #expect(throws: SessionStoreError.self) { try SessionStore(path: path) }
            #expect(error?.code == .alreadyOpen)
            #expect(try holdsLock(on: path + "/lock.mdb"), "the refused second open dropped the first open's lock")
            try store.session("s").save(1, for: "k")
        }
    }

    // MARK: Creation

    @Test func processesOpeningAFreshPathAtOnceAllSucceed() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let processes = 4
        for round in 0..<8 {
            let path = directory.child("store\(round)")
            var start = timespec()
            clock_gettime(CLOCK_REALTIME, &start)
            let startAt = Int(start.tv_sec) * 1_000_000_000 + Int(start.tv_nsec) + 400_000_000
            let children = try (0..<processes).map { index in
                try startProduct("sessionstore-child", ["put", path, "s", "k\(index)", "v\(index)"],
                                 environment: ["SESSIONSTORE_CHILD_START_AT": String(startAt)])
            }
            for (index, child) in children.enumerated() {
                let run = child.wait()
                #expect(run.status == 0, "round \(round), child \(index): \(run.output)")
            }
            let store = try SessionStore(path: path)
            for index in 0..<processes {
                #expect(try store.session("s").load(String.self, for: "k\(index)") == "v\(index)")
            }
            try store.close()
        }
    }

    @Test func aFreshStoreIsCreatedInOneTransaction() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.child("store")
        try SessionStore(path: path).close()
        // The named databases and the format record: one commit, so no crash can split them.
        let commits = try RawLMDB.lastTransactionID(path)
        #expect(commits == 1, "creating the store took \(commits) commits")
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/strace"), "needs strace"))
    func creatingAStoreSyncsItsDirectoryAndTheParent() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.child("store")
        let trace = directory.child("trace")
        let run = try runProduct("sessionstore-child", ["put", path, "s", "k", "v"],
                                 launcher: ["/usr/bin/strace", "-f", "-y", "-e", "trace=fsync", "-o", trace])
        #expect(run.status == 0, "\(run.output)")
        let calls = (try? String(contentsOfFile: trace, encoding: .utf8)) ?? ""
        #expect(calls.contains("<\(path)>) = 0"), "no fsync of the store directory in:\n\(calls)")
        #expect(calls.contains("<\(directory.path)>) = 0"), "no fsync of the parent directory in:\n\(calls)")
    }

    // MARK: Half-created stores and foreign environments

    /// What an earlier version's crash between its creation transactions left behind.
    static let halfCreated: [[String]] = [["records"], ["records", "meta"]]

    @Test(arguments: halfCreated)
    func aHalfCreatedStoreIsCompletedOnOpen(_ databases: [String]) throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.child("store")
        #expect(mkdir(path, 0o700) == 0)
        try RawLMDB.write(path, databases: databases.map { ($0, []) })
        let store = try SessionStore(path: path)
        try store.session("s").save("v", for: "k")
        try store.close()
        let reopened = try SessionStore(path: path)
        #expect(try reopened.session("s").load(String.self, for: "k") == "v")
        let format = try reopened.environment.read { txn in try txn.get(reopened.metadata, key: Array("format".utf8)).map(Array.init) }
        #expect(format == (try CBOREncoder().encodeBytes(Record.formatVersion)))
        try reopened.close()
    }

    /// LMDB environments of other programs: (label, pairs in the main database, named databases).
    static let foreign: [(String, [(String, String)], [(name: String, pairs: [(String, String)])])] = [
        ("plain keys", [("user:1", "alice")], []),
        ("another program's named database", [], [(name: "users", pairs: [("1", "alice")])]),
        ("an empty named database of another name", [], [(name: "records", pairs: []), (name: "index", pairs: [])]),
        ("records that no format record vouches for", [], [(name: "records", pairs: [("a", "b")]), (name: "meta", pairs: [])]),
        ("meta without the format record", [], [(name: "records", pairs: []), (name: "meta", pairs: [("schema", "3")])]),
    ]

    @Test(arguments: foreign)
    func anLMDBEnvironmentThatIsNotAStoreIsRefusedAndLeftUnchanged(
        _ label: String, _ main: [(String, String)], _ databases: [(name: String, pairs: [(String, String)])]
    ) throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.child("env")
        #expect(mkdir(path, 0o700) == 0)
        try RawLMDB.write(path, main: main, databases: databases)
        let before = try fileBytes(path)
        let error = #expect(throws: SessionStoreError.self, "\(label)") { try SessionStore(path: path) }
        #expect(error?.code == .invalidPath, "\(label)")
        #expect(error?.message.contains("not a SessionStore store") == true, "\(label): \(String(describing: error))")
        #expect(try fileBytes(path) == before, "\(label): the refused open changed data.mdb")
        // The path is free again: the refusal released it.
        let again = #expect(throws: SessionStoreError.self) { try SessionStore(path: path) }
        #expect(again?.code == .invalidPath)
    }
}

