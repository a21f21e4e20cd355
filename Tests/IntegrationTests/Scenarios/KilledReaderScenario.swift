import CrashWorkload
import Foundation
import Testing
@testable import SessionStore

#if canImport(Glibc)
import Glibc
#endif

/// SIGKILL a child inside a read transaction; its stale reader slot must be reclaimed,
/// and the file must not keep growing under later rewrites.
///
/// A reader child loads a 4 MiB value in a loop with the cache off. The parent stops it
/// with SIGSTOP until LMDB's reader table (read with `mdb_reader_list`) shows its slot
/// pinning a snapshot, so it is known to be inside a read transaction. A holder process
/// keeps the store open throughout, so the lock file (and the stale slot) survive.
///
/// 1. Control: while the stopped reader is alive, rewriting the same keys must grow
///    data.mdb by megabytes: a pinned snapshot keeps its pages, and the measurement can
///    see it (a test that cannot fail would not).
/// 2. The parent closes its store, then SIGKILLs the reader inside its transaction; the
///    slot of the dead process must stay in the table, still pinning its snapshot. (Had
///    the store stayed open, its writer's own `mdb_reader_check` every 64 commits would
///    free the slot before the reopen could show that it does.)
/// 3. The parent reopens the store (open runs `mdb_reader_check`) and closes it before
///    any commit: the slot must be gone. Reopened again, thousands of rewrites after a
///    warm-up must leave the file size bounded.
/// 4. A second reader is stopped inside a read transaction and killed while the parent's
///    store stays open (a server that outlives a killed reader process): the store must
///    stop growing after a warm-up, as its writer runs `mdb_reader_check` every 64 commits.
/// 5. Every value is checked at the end.
struct KilledReaderScenario: CrashScenario {
    let name = "killed-reader"
    var iterations: Int { 2 }

    static let churnKeys = 120
    static let blobSize = 4 << 20

    func run(_ context: ScenarioContext) async throws {
        let directory = TemporaryDirectory("reader")
        defer { directory.remove() }
        let path = directory.child("store")
        let dataFile = path + "/data.mdb"
        var churn = Churn(seed: context.seed)
        let blob = Workload.payload(seq: Int(truncatingIfNeeded: context.seed % 1_000_000), part: 8, length: Self.blobSize)
        do {
            let store = try SessionStore(path: path)
            try await store.session("r").save(blob, for: "blob")
            try churn.run(store, commits: 50)
            try store.close()
        }

        let holder = try ChildProcess("hold", path: path, seed: context.seed)
        defer { holder.terminate() }
        guard holder.waitFor("ready", timeout: .seconds(30)) != nil else {
            context.fail("the holder never started: \(holder.standardError.suffix(400))")
            return
        }
        let reader = try ChildProcess("reader", path: path, seed: context.seed)
        defer { reader.terminate() }
        guard let pinned = try await stopInsideReadTransaction(reader, path: path, context) else { return }

        // 1. Control: a live pinned reader makes rewrites grow the file.
        var store = try SessionStore(path: path, configuration: Churn.configuration)
        let (_, controlGrowth) = try churn.growth(of: dataFile, store, warmUp: 200, rewrites: 1_000)
        context.tally.maximum("control-growth-kib", controlGrowth >> 10)
        context.check(controlGrowth >= 2 << 20,
                      "control: with a reader pinning snapshot \(pinned.snapshot!), 1000 rewrites grew data.mdb by only \(controlGrowth) bytes; the growth measurement cannot see a pinned snapshot")
        try store.close()

        // 2. Kill the reader inside its read transaction; its slot stays behind.
        try reader.killAndCollect()
        context.tally.kills += 1
        let stale = try readerTable(path).filter { $0.pid == reader.pid }
        context.check(stale.contains { $0.snapshot != nil },
                      "premise: the reader killed inside its read transaction left no slot pinning a snapshot (\(stale)), so the reopen has nothing to reclaim")

        // 3. Reopen: mdb_reader_check at open reclaims the slot; rewrites stay bounded.
        try SessionStore(path: path, configuration: Churn.configuration).close()
        let after = try readerTable(path).filter { $0.pid == reader.pid }
        context.check(after.isEmpty, "the dead reader's slot is still in the reader table after the reopen: \(after)")
        if after.isEmpty { context.tally.count("stale-slots-reclaimed") }
        store = try SessionStore(path: path, configuration: Churn.configuration)
        let (boundedStart, boundedGrowth) = try churn.growth(of: dataFile, store, warmUp: 600, rewrites: 3_000)
        context.tally.maximum("growth-after-reopen-kib", boundedGrowth >> 10)
        context.check(boundedGrowth <= 256 << 10,
                      "after the reopen, 3000 rewrites of the same \(Self.churnKeys) keys grew data.mdb by \(boundedGrowth) bytes (from \(boundedStart)); the dead reader's snapshot still seems pinned")
        try store.close()

        // 4. A process that stays open across the kill must stop growing too.
        let secondReader = try ChildProcess("reader", path: path, seed: context.seed)
        defer { secondReader.terminate() }
        guard try await stopInsideReadTransaction(secondReader, path: path, context) != nil else { return }
        store = try SessionStore(path: path, configuration: Churn.configuration)
        try secondReader.killAndCollect()
        context.tally.kills += 1
        let (_, serverGrowth) = try churn.growth(of: dataFile, store, warmUp: 300, rewrites: 1_000)
        context.tally.maximum("server-growth-after-kill-kib", serverGrowth >> 10)
        context.check(serverGrowth <= 256 << 10,
                      "a store that stayed open while a reader process was killed inside its read transaction grew by \(serverGrowth) bytes over 1000 rewrites (after 300 warm-up rewrites): the dead reader's snapshot stays pinned until the store is reopened")
        try store.close()
        holder.terminate()

        // 5. Every value is intact.
        var expectations = StoreExpectations()
        expectations.present = churn.expected
        expectations.present[.session("r", "blob")] = .data(blob)
        let (counts, _) = try inspectStore(at: path, expectations)
        context.tally.count("rewrite-commits", churn.commits)
        context.record(counts, after: "the reader killed in its read transaction")
    }

    /// Stops `reader` with SIGSTOP at a moment the reader table shows it inside a read
    /// transaction, and returns its slot; nil (after failing the iteration) when it never
    /// started or 60 attempts stopped it outside one. Only while this process has no
    /// store open on `path` (see ``readerTable(_:)``).
    private func stopInsideReadTransaction(_ reader: ChildProcess, path: String, _ context: ScenarioContext) async throws -> ReaderSlot? {
        guard reader.waitFor("reading", timeout: .seconds(30)) != nil else {
            context.fail("the reader never started: \(reader.output.suffix(3)) \(reader.standardError.suffix(800))")
            return nil
        }
        for _ in 0..<60 {
            await pause(context.milliseconds(1, 15))
            reader.send(SIGSTOP)
            if let slot = try readerTable(path).first(where: { $0.pid == reader.pid && $0.snapshot != nil }) {
                return slot
            }
            context.tally.count("stops-outside-read-txn (retried)")
            reader.send(SIGCONT)
        }
        context.fail("could not stop the reader inside a read transaction in 60 attempts")
        return nil
    }
}

/// Rewrites the same keys of session `churn` over and over, one batch of 10 per commit.
struct Churn {
    /// Relaxed durability: the churn needs many commits, not their syncs (page reuse does
    /// not depend on them).
    static let configuration = SessionStore.Configuration(durability: .relaxed(syncInterval: .seconds(60)))

    let seed: UInt64
    private(set) var commits = 0
    private(set) var expected: [RecordName: ExpectedValue] = [:]

    init(seed: UInt64) { self.seed = seed }

    mutating func run(_ store: SessionStore, commits count: Int) throws {
        let session = try store.session("churn")
        for _ in 0..<count {
            var batch = WriteBatch()
            for slot in 0..<10 {
                let key = (commits * 10 + slot) % KilledReaderScenario.churnKeys
                let value = Workload.payload(seq: commits * 1_000 + key, part: 7, length: 300 + (key * 37) % 500)
                try batch.save(value, for: "c\(key)", in: session)
                expected[.session("churn", "c\(key)")] = .data(value)
            }
            try store.apply(batch)
            commits += 1
        }
    }

    /// Runs `warmUp` commits, then `rewrites` more, and returns the size of `file` between
    /// the two and how many bytes the rewrites added to it.
    mutating func growth(of file: String, _ store: SessionStore, warmUp: Int, rewrites: Int) throws -> (start: Int, growth: Int) {
        try run(store, commits: warmUp)
        let start = fileSize(file)
        try run(store, commits: rewrites)
        return (start, fileSize(file) - start)
    }
}
