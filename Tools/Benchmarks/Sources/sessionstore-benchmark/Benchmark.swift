import CBORCoding
import Foundation
import SessionStore
import Synchronization

/// Keeps a result alive so the optimizer cannot drop the work that produced it.
@inline(never)
func blackHole<T>(_ value: T) {}

/// Per-task mutable helpers (coders), each used by one task or thread only.
final class PerWorker<T>: @unchecked Sendable {
    var items: [T]
    init(_ count: Int, _ make: () -> T) { items = (0..<count).map { _ in make() } }
}

struct Options {
    var quick = false
    var jsonPath: String?
    var only: String?
    var profile: String?
    var profileOps = 20_000

    static func parse(_ arguments: [String]) -> Options {
        var options = Options()
        var index = 1
        func value() -> String {
            index += 1
            guard index < arguments.count else { fatalError("missing value after \(arguments[index - 1])") }
            return arguments[index]
        }
        while index < arguments.count {
            switch arguments[index] {
            case "--quick": options.quick = true
            case "--json": options.jsonPath = value()
            case "--only": options.only = value()
            case "--profile": options.profile = value()
            case "--ops": options.profileOps = Int(value()) ?? options.profileOps
            case "-h", "--help":
                print("""
                usage: sessionstore-benchmark [--quick] [--json path] [--only text]
                       sessionstore-benchmark --profile cached|dictget|uncached|rawget|save1|relaxed|rawnosync|end|save64|save64tasks [--ops n]

                  --quick     shorter rounds (under a minute in all)
                  --json      also write the table and goals as JSON to path
                  --only      run only the workloads whose name contains text
                  --profile   run one SessionStore workload for a fixed count, for callgrind
                """)
                exit(0)
            default:
                fatalError("unknown argument \(arguments[index]); see --help")
            }
            index += 1
        }
        return options
    }
}

/// A contender of one workload: its name, a note, and how to run one round of `seconds`.
struct Contender {
    var system: String
    var note: String
    var run: (Double) async throws -> Round
}

@main
struct Main {
    /// A synchronous entry that blocks the main thread on a semaphore while the work runs
    /// in a task: an `async` main parks the main thread in `dispatch_main`
    /// (`rt_sigsuspend`), which valgrind 3.19 crashes on, and callgrind is the profiler here.
    static func main() {
        let options = Options.parse(CommandLine.arguments)
        final class Status: @unchecked Sendable { var code: Int32 = 0 }
        let status = Status()
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            do {
                let bench = try Bench(options: options)
                defer { bench.cleanUp() }
                if let profile = options.profile {
                    try await bench.profile(profile, ops: options.profileOps)
                } else {
                    try await bench.run()
                }
            } catch {
                FileHandle.standardError.write(Data("sessionstore-benchmark: \(error)\n".utf8))
                status.code = 1
            }
            done.signal()
        }
        done.wait()
        exit(status.code)
    }
}

final class Bench {
    let options: Options
    let root: String
    let rounds: Int
    let diskRounds: Int
    let fastSeconds: Double
    let slowSeconds: Double
    let fastWarmup: Double
    let slowWarmup: Double
    var rows: [Row] = []
    var notes: [String] = []
    let cborEncoder = CBOREncoder()
    let cborDecoder = CBORDecoder()

    // Hot set: 10,000 keys of 40 characters in 100 sessions (store A, its copies, SQLite A).
    let hotKeys = Fixtures.keys(sessions: 100, perSession: 100, nameLength: 40, seed: 1)
    var storeA: SessionStore!
    var sessionsA: [Session] = []
    var rawA: RawLMDB!
    var relaxedStore: SessionStore!
    var sessionsRelaxed: [Session] = []
    var sqlA: SQLitePeer!

    init(options: Options) throws {
        self.options = options
        rounds = options.quick ? 3 : 9
        diskRounds = options.quick ? 3 : 7
        fastSeconds = options.quick ? 0.1 : 0.15
        slowSeconds = options.quick ? 0.25 : 0.5
        fastWarmup = options.quick ? 0.05 : 0.15
        slowWarmup = options.quick ? 0.1 : 0.2
        // A temp directory under /tmp: one filesystem with the work tree here (/dev/vda, ext4).
        root = NSTemporaryDirectory() + "sessionstore-bench-\(getpid())"
        try? FileManager.default.removeItem(atPath: root)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    func cleanUp() {
        try? storeA?.close()
        try? relaxedStore?.close()
        rawA?.close()
        try? sqlA?.close()
        try? FileManager.default.removeItem(atPath: root)
    }

    func wants(_ workload: String) -> Bool {
        guard let only = options.only else { return true }
        return workload.localizedCaseInsensitiveContains(only)
    }

    func log(_ message: String) {
        FileHandle.standardError.write(Data("[\(String(format: "%6.1f", Double(now() - started) / 1e9)) s] \(message)\n".utf8))
    }

    let started = now()

    // MARK: - Measuring

    /// Runs the contenders' rounds interleaved (A B C, A B C, …) after one warm-up each.
    /// The first contender is the subject: every row's ratio is subject ops/s ÷ row ops/s.
    func measure(_ workload: String, _ contenders: [Contender], slow: Bool) async throws {
        guard wants(workload) else { return }
        log("measuring \(workload)")
        let seconds = slow ? slowSeconds : fastSeconds
        for contender in contenders {
            _ = try await contender.run(slow ? slowWarmup : fastWarmup)
        }
        var collected = Array(repeating: [Round](), count: contenders.count)
        for _ in 0..<(slow ? diskRounds : rounds) {
            for (index, contender) in contenders.enumerated() {
                collected[index].append(try await contender.run(seconds))
            }
        }
        var group = zip(contenders, collected).map { Row(workload: workload, system: $0.system, note: $0.note, rounds: $1) }
        let subject = group[0].opsPerSecond
        for index in group.indices { group[index].ratio = subject / group[index].opsPerSecond }
        rows.append(contentsOf: group)
    }

    /// The SQLite peer's two rows of a write workload: synchronous=FULL (durable per
    /// commit) and synchronous=NORMAL (syncs at checkpoints only), each setting its mode
    /// before running `run`.
    func sqliteRows(_ sql: SQLitePeer, full: String, normal: String, _ run: @escaping (Double) async throws -> Round) -> [Contender] {
        [("FULL", full), ("NORMAL", normal)].map { mode, note in
            Contender(system: "SQLite (GRDB) WAL, synchronous=\(mode)", note: note) { seconds in
                try sql.setSynchronous(mode)
                return try await run(seconds)
            }
        }
    }

    func row(_ workload: String, _ system: String) -> Row? {
        rows.first { $0.workload == workload && $0.system == system }
    }

    // MARK: - Setup

    func populate(_ store: SessionStore, _ keys: [KeySpec]) throws -> [Session] {
        var sessions: [String: Session] = [:]
        var ordered: [Session] = []
        for chunk in stride(from: 0, to: keys.count, by: 1000) {
            var batch = WriteBatch()
            for index in chunk..<min(chunk + 1000, keys.count) {
                let spec = keys[index]
                let session: Session
                if let known = sessions[spec.session] {
                    session = known
                } else {
                    session = try store.session(spec.session)
                    sessions[spec.session] = session
                    ordered.append(session)
                }
                try batch.save(Profile.sample(index), for: spec.name, in: session)
            }
            try store.apply(batch)
        }
        return ordered
    }

    /// Checks that raw LMDB holds exactly the bytes the record format gives, for a sample of keys.
    func verifyRecords(_ raw: RawLMDB, _ keys: [KeySpec]) throws {
        for index in stride(from: 0, to: keys.count, by: max(1, keys.count / 200)) {
            let expected = try Fixtures.record(Profile.sample(index), encoder: cborEncoder)
            guard try raw.contains(keys[index].recordKey, value: expected) else {
                throw BenchError("raw LMDB copy differs from the record format at key \(keys[index].sqlKey): the benchmark's record bytes no longer match SessionStore's")
            }
        }
    }

    func copyStore(_ from: String, to: String) throws {
        try FileManager.default.createDirectory(atPath: to, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: from + "/data.mdb", toPath: to + "/data.mdb")
    }

    /// Writes `keys` into a new store at `path` (then closed) and copies its data file to
    /// each of `copies`, so every contender starts from the same bytes.
    func buildStore(_ path: String, _ keys: [KeySpec], configuration: SessionStore.Configuration = .init(), copies: [String]) throws {
        let store = try SessionStore(path: path, configuration: configuration)
        _ = try populate(store, keys)
        try store.close()
        for copy in copies { try copyStore(path, to: copy) }
    }

    /// A SQLite peer in `directory` holding `keys` as JSON.
    func sqlitePeer(_ directory: String, _ keys: [KeySpec]) throws -> SQLitePeer {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let sql = try SQLitePeer(path: directory + "/kv.sqlite")
        let encoder = JSONEncoder()
        try sql.insertAll(keys.enumerated().map { ($1.sqlKey, try encoder.encode(Profile.sample($0))) })
        return sql
    }

    func setUpHotSet(sqlite: Bool = true) throws {
        log("setting up the hot set (10,000 keys of 40 characters)")
        let path = root + "/A"
        try buildStore(path, hotKeys, copies: [root + "/rawA", root + "/relaxed", root + "/E0"])
        storeA = try SessionStore(path: path)
        sessionsA = try orderedSessions(storeA, hotKeys)
        // Load every key once: the cache (default capacity 10,000) now holds the whole hot set.
        for (index, spec) in hotKeys.enumerated() {
            guard try sessionsA[index / 100].load(Profile.self, for: spec.name) == Profile.sample(index) else {
                throw BenchError("store A returned a wrong value for \(spec.sqlKey)")
            }
        }
        relaxedStore = try SessionStore(path: root + "/relaxed", configuration: .init(durability: .relaxed(syncInterval: .seconds(1))))
        sessionsRelaxed = try orderedSessions(relaxedStore, hotKeys)
        rawA = try RawLMDB(path: root + "/rawA")
        try verifyRecords(rawA, hotKeys)
        if sqlite { sqlA = try sqlitePeer(root + "/sqlA", hotKeys) }
    }

    func orderedSessions(_ store: SessionStore, _ keys: [KeySpec]) throws -> [Session] {
        var result: [Session] = []
        for spec in keys where result.last?.id != spec.session { result.append(try store.session(spec.session)) }
        return result
    }

    // MARK: - The run

    func run() async throws {
        let header = Header(
            cores: ProcessInfo.processInfo.activeProcessorCount, lmdb: RawLMDB.version,
            swift: swiftVersion(), date: ISO8601DateFormatter().string(from: Date()),
            mode: "\(options.quick ? "--quick" : "default"): interleaved rounds, \(rounds) × \(fastSeconds) s (memory rows) and \(diskRounds) × \(slowSeconds) s (disk rows); ops/s is the median round, p50/p99 over all rounds",
            notes: [])
        try setUpHotSet()
        try await cachedLoad()
        try await uncachedLoad()
        try await durableSave()
        try await relaxedSave()
        try await endSession()
        try await mixed()
        try await codec()
        let goals = evaluateGoals()
        if var raw = row("durable save, 1 writer", "raw LMDB, durable txn per put") {
            let p50 = raw.latency.p50
            notes.append(String(format: "disk: a raw LMDB durable commit of one put took %.0f µs at p50 in this run (NOTES.md: 287 µs on this machine when its disk is quiet)%@", p50,
                                p50 > 400 ? "; the disk was busy, and slower syncs flatter group commit, so read the durable ratios with care" : ""))
        }
        var finalHeader = header
        finalHeader.notes = notes
        print(markdown(header: finalHeader, rows: &rows, goals: goals))
        if let path = options.jsonPath {
            try json(header: finalHeader, rows: &rows, goals: goals).write(to: URL(fileURLWithPath: path))
            log("wrote \(path)")
        }
        log("done")
    }

    // MARK: Cached load

    func cachedLoad() async throws {
        let dictionary = LockedDictionary()
        let anyDictionary = LockedAnyDictionary()
        for (index, spec) in hotKeys.enumerated() {
            dictionary.set(spec.name, Profile.sample(index))
            anyDictionary.set(spec.name, Profile.sample(index))
        }
        // 40-character names are unique across sessions here (index suffix), so the dictionary key is the name.
        let hot = 4242
        let hotSpec = hotKeys[hot]
        let hotSession = sessionsA[hot / 100]
        let order = Fixtures.shuffled(1000, seed: 7).map { $0 * 10 }   // 1,000 hot keys spread over the set
        let sessions = sessionsA
        let keys = hotKeys
        let raw = rawA!
        let decoder = cborDecoder

        try await measure("cached load, 1 hot key", [
            Contender(system: "SessionStore", note: "default cache (10,000 entries, full)") { seconds in
                try runLoop(seconds: seconds, sampleEvery: 16) { _ in
                    blackHole(try hotSession.load(Profile.self, for: hotSpec.name))
                }
            },
            Contender(system: "Dictionary + Mutex", note: "[String: Profile], 10,000 keys of 40 chars") { seconds in
                runLoop(seconds: seconds, sampleEvery: 16) { _ in blackHole(dictionary.get(hotSpec.name)) }
            },
            Contender(system: "Dictionary + NSLock, any + as?", note: "[String: any Sendable], caller casts (origin's shape)") { seconds in
                runLoop(seconds: seconds, sampleEvery: 16) { _ in blackHole(anyDictionary.get(hotSpec.name, as: Profile.self)) }
            },
            Contender(system: "raw LMDB get + CBOR decode", note: "read txn per get") { seconds in
                try runLoop(seconds: seconds, sampleEvery: 16) { _ in
                    blackHole(try raw.get(hotSpec.recordKey) { try decoder.decode(Profile.self, from: Fixtures.recordValue($0)!) })
                }
            },
        ], slow: false)

        try await measure("cached load, 1,000 hot keys", [
            Contender(system: "SessionStore", note: "random order, all cached") { seconds in
                try runLoop(seconds: seconds, sampleEvery: 16) { i in
                    let k = order[i % 1000]
                    blackHole(try sessions[k / 100].load(Profile.self, for: keys[k].name))
                }
            },
            Contender(system: "Dictionary + Mutex", note: "same keys, same order") { seconds in
                runLoop(seconds: seconds, sampleEvery: 16) { i in blackHole(dictionary.get(keys[order[i % 1000]].name)) }
            },
            Contender(system: "Dictionary + NSLock, any + as?", note: "same keys, same order") { seconds in
                runLoop(seconds: seconds, sampleEvery: 16) { i in blackHole(anyDictionary.get(keys[order[i % 1000]].name, as: Profile.self)) }
            },
            Contender(system: "raw LMDB get + CBOR decode", note: "read txn per get") { seconds in
                try runLoop(seconds: seconds, sampleEvery: 16) { i in
                    blackHole(try raw.get(keys[order[i % 1000]].recordKey) { try decoder.decode(Profile.self, from: Fixtures.recordValue($0)!) })
                }
            },
        ], slow: false)
    }

    // MARK: Uncached load

    func uncachedLoad() async throws {
        let workload = "uncached load, 100,000 keys"
        guard wants(workload) else { return }
        log("setting up 100,000 keys")
        let keys = Fixtures.keys(sessions: 1000, perSession: 100, nameLength: 16, seed: 2)
        let path = root + "/B"
        try buildStore(path, keys, configuration: .init(cacheCapacity: 0), copies: [root + "/rawB", root + "/B10k"])
        let uncached = try SessionStore(path: path, configuration: .init(cacheCapacity: 0))
        let smallCache = try SessionStore(path: root + "/B10k")
        let raw = try RawLMDB(path: root + "/rawB")
        try verifyRecords(raw, keys)
        let sql = try sqlitePeer(root + "/sqlB", keys)
        defer {
            try? uncached.close()
            try? smallCache.close()
            raw.close()
            try? sql.close()
        }
        let sessionsUncached = try orderedSessions(uncached, keys)
        let sessionsSmall = try orderedSessions(smallCache, keys)
        let order = Fixtures.shuffled(keys.count, seed: 11)
        let decoder = cborDecoder
        let jsonDecoder = JSONDecoder()
        // Each contender walks the same random permutation of all 100,000 keys, continuing
        // where its previous round stopped, so no round starts on keys it just read.
        final class Cursor { var next = 0 }
        let cursors = (0..<6).map { _ in Cursor() }
        func walk(_ c: Int, _ seconds: Double, _ body: (Int) throws -> Void) rethrows -> Round {
            let cursor = cursors[c]
            let base = cursor.next
            let round = try runLoop(seconds: seconds, sampleEvery: 4) { i in try body(order[(base + i) % order.count]) }
            cursor.next = (base + round.operations) % order.count
            return round
        }
        try await measure(workload, [
            Contender(system: "SessionStore", note: "cacheCapacity: 0 (no cache)") { seconds in
                try walk(0, seconds) { k in
                    blackHole(try sessionsUncached[k / 100].load(Profile.self, for: keys[k].name))
                }
            },
            Contender(system: "SessionStore, default cache", note: "cacheCapacity 10,000 < 100,000 keys: every load misses, then inserts and evicts") { seconds in
                try walk(1, seconds) { k in
                    blackHole(try sessionsSmall[k / 100].load(Profile.self, for: keys[k].name))
                }
            },
            Contender(system: "raw LMDB get + CBOR decode", note: "same keys and record bytes, read txn per get") { seconds in
                try walk(2, seconds) { k in
                    blackHole(try raw.get(keys[k].recordKey) { try decoder.decode(Profile.self, from: Fixtures.recordValue($0)!) })
                }
            },
            Contender(system: "SQLite (GRDB) read + JSON decode", note: "WAL pool, cached statement, WITHOUT ROWID") { seconds in
                try walk(3, seconds) { k in
                    blackHole(try jsonDecoder.decode(Profile.self, from: sql.get(keys[k].sqlKey)!))
                }
            },
            Contender(system: "SQLite (GRDB) read only", note: "same, without the JSON decode") { seconds in
                try walk(4, seconds) { k in blackHole(try sql.get(keys[k].sqlKey)) }
            },
            Contender(system: "SQLite (GRDB) read + JSON decode, 100 per access", note: "100 reads share one read access (snapshot); per-read figures") { seconds in
                let cursor = cursors[5]
                var next = cursor.next
                var round = try runLoop(seconds: seconds, sampleEvery: 1) { _ in
                    let start = next
                    next = (next + 100) % order.count
                    let slice = order[start..<min(start + 100, order.count)].map { keys[$0].sqlKey }
                    try sql.getMany(slice[...]) { data in blackHole(try jsonDecoder.decode(Profile.self, from: data)) }
                }
                cursor.next = next
                round.operations *= 100
                round.latencies = round.latencies.map { $0 / 100 }
                return round
            },
        ], slow: false)
        let stats = smallCache.cacheStatistics
        notes.append("uncached load: the goal row is SessionStore with cacheCapacity: 0; each contender walks one random permutation of the 100,000 keys, so no key is read twice within 100,000 loads (the default-cache store saw \(stats.hits) hits and \(stats.misses) misses).")
    }

    // MARK: Durable saves

    func durableSave() async throws {
        let keys = hotKeys
        let sessions = sessionsA
        let raw = rawA!
        let sql = sqlA!
        let encoder = cborEncoder
        let count = keys.count
        let writers = 64
        let jsonEncoders = PerWorker(writers) { JSONEncoder() }
        @Sendable func key(_ worker: Int, _ i: Int) -> Int { (worker * 157 + i * 7) % count }
        /// One writer's sync saves, .durable: its own workload, and the 64-writer goal's base.
        func saveOneWriter(_ seconds: Double) throws -> Round {
            try runLoop(seconds: seconds, sampleEvery: 1) { i in
                let k = key(0, i)
                blackHole(try sessions[k / 100].save(Profile.sample(i), for: keys[k].name))
            }
        }

        try await measure("durable save, 1 writer", [
            Contender(system: "SessionStore", note: "sync save, .durable", run: saveOneWriter),
            Contender(system: "raw LMDB, durable txn per put", note: "record encoded per put") { seconds in
                try runLoop(seconds: seconds, sampleEvery: 1) { i in
                    let k = key(0, i)
                    try raw.put(keys[k].recordKey, Fixtures.record(Profile.sample(i), encoder: encoder))
                }
            },
        ] + sqliteRows(sql, full: "JSON, write txn per put", normal: "not durable per commit (syncs at checkpoints)") { seconds in
            try runLoop(seconds: seconds, sampleEvery: 1) { i in
                let k = key(0, i)
                try sql.put(keys[k].sqlKey, jsonEncoders.items[0].encode(Profile.sample(i)))
            }
        }, slow: true)

        try await measure("durable save, 64 writers (tasks)", [
            Contender(system: "SessionStore", note: "64 tasks, async save (group commit)") { seconds in
                try await runTasks(writers, seconds: seconds) { w, i in
                    let k = key(w, i)
                    blackHole(try await sessions[k / 100].save(Profile.sample(i), for: keys[k].name))
                }
            },
            Contender(system: "SessionStore, 1 writer", note: "sync save, measured in the same rounds (the 15× goal's base)", run: saveOneWriter),
            Contender(system: "raw LMDB, 64 puts per durable txn", note: "1 thread, same keys: the group-commit floor") { seconds in
                var round = try runLoop(seconds: seconds, sampleEvery: 1) { i in
                    try raw.putAll(try (0..<writers).map { w in
                        let k = key(w, i)
                        return (keys[k].recordKey, try Fixtures.record(Profile.sample(i), encoder: encoder))
                    })
                }
                round.operations *= writers
                return round
            },
        ] + sqliteRows(sql, full: "64 tasks, async write, txn each", normal: "64 tasks, async write, txn each") { seconds in
            try await runTasks(writers, seconds: seconds) { w, i in
                let k = key(w, i)
                try await sql.put(keys[k].sqlKey, jsonEncoders.items[w].encode(Profile.sample(i)))
            }
        }, slow: true)

        try await measure("durable save, 64 writers (threads)", [
            Contender(system: "SessionStore", note: "64 threads, sync save (group commit)") { seconds in
                try runThreads(writers, seconds: seconds) { w, i in
                    let k = key(w, i)
                    blackHole(try sessions[k / 100].save(Profile.sample(i), for: keys[k].name))
                }
            },
        ] + sqliteRows(sql, full: "64 threads, sync write, txn each", normal: "64 threads, sync write, txn each") { seconds in
            try runThreads(writers, seconds: seconds) { w, i in
                let k = key(w, i)
                try sql.put(keys[k].sqlKey, jsonEncoders.items[w].encode(Profile.sample(i)))
            }
        }, slow: true)
        try sql.setSynchronous("FULL")
    }

    // MARK: Relaxed saves

    func relaxedSave() async throws {
        let keys = hotKeys
        let sessions = sessionsRelaxed
        let raw = rawA!
        let encoder = cborEncoder
        let count = keys.count
        try await measure("relaxed save, 1 writer", [
            Contender(system: "SessionStore", note: ".relaxed(syncInterval: 1 s), sync save") { seconds in
                try runLoop(seconds: seconds, sampleEvery: 1) { i in
                    let k = (i * 7) % count
                    blackHole(try sessions[k / 100].save(Profile.sample(i), for: keys[k].name))
                }
            },
            Contender(system: "raw LMDB, MDB_NOSYNC txn per put", note: "plus mdb_env_sync every 1 s, as relaxed does") { seconds in
                try raw.setNoSync(true)
                defer { try? raw.setNoSync(false) }
                var lastSync = now()
                let round = try runLoop(seconds: seconds, sampleEvery: 1) { i in
                    let k = (i * 7) % count
                    try raw.put(keys[k].recordKey, Fixtures.record(Profile.sample(i), encoder: encoder))
                    if now() - lastSync >= 1_000_000_000 {
                        try raw.sync()
                        lastSync = now()
                    }
                }
                try raw.sync()
                return round
            },
        ], slow: true)
    }

    // MARK: Ending a session

    func endSession() async throws {
        let workload = "end a session of 50 keys (durable)"
        guard wants(workload) else { return }
        let store = storeA!
        let raw = rawA!
        let encoder = cborEncoder
        let uncachedStore = try SessionStore(path: root + "/E0", configuration: .init(cacheCapacity: 0))
        defer { try? uncachedStore.close() }
        var rng = SplitMix(seed: 99)
        let names = (0..<50).map { Fixtures.keyName($0, length: 16) }
        /// Fills a new 50-key session of `store` (untimed), then times its `end()`.
        func endSessions(of store: SessionStore, seconds: Double) throws -> Round {
            try setupLoop(seconds: seconds) {
                let session = try store.session(Fixtures.sessionID(&rng))
                var batch = WriteBatch()
                for (i, name) in names.enumerated() { try batch.save(Profile.sample(i), for: name, in: session) }
                try store.apply(batch)
                return session
            } timed: { session in
                let removed = try session.end()
                if removed != 50 { throw BenchError("end() removed \(removed) records, expected 50") }
            }
        }
        try await measure(workload, [
            Contender(system: "SessionStore", note: "session.end(); store A, cache full (10,000 entries)") { seconds in
                try endSessions(of: store, seconds: seconds)
            },
            Contender(system: "SessionStore, cacheCapacity 0", note: "same data, no cache: isolates the cache's share") { seconds in
                try endSessions(of: uncachedStore, seconds: seconds)
            },
            Contender(system: "raw LMDB cursor delete", note: "50 keys, one durable txn") { seconds in
                try setupLoop(seconds: seconds) {
                    let sid = Fixtures.sessionID(&rng)
                    try raw.putAll(try names.enumerated().map { i, name in
                        (Fixtures.spec(session: sid, name: name).recordKey, try Fixtures.record(Profile.sample(i), encoder: encoder))
                    })
                    return Array("session/\(sid)/".utf8)
                } timed: { prefix in
                    let removed = try raw.deletePrefix(prefix)
                    if removed != 50 { throw BenchError("cursor delete removed \(removed) records, expected 50") }
                }
            },
        ], slow: true)
    }

    // MARK: Mixed

    func mixed() async throws {
        let keys = hotKeys
        let sessions = sessionsA
        let raw = rawA!
        let sql = sqlA!
        let encoder = cborEncoder
        let decoder = cborDecoder
        let count = keys.count
        let tasks = 8
        let jsonEncoders = PerWorker(tasks) { JSONEncoder() }
        let jsonDecoders = PerWorker(tasks) { JSONDecoder() }
        let generators = PerWorker(tasks) { SplitMix(seed: 0) }
        func reseed() { for t in 0..<tasks { generators.items[t] = SplitMix(seed: UInt64(t + 1) * 7919) } }
        try sql.setSynchronous("FULL")
        try await measure("mixed 90% load / 10% save, 8 tasks", [
            Contender(system: "SessionStore", note: ".durable, cache full; async save") { seconds in
                reseed()
                return try await runTasks(tasks, seconds: seconds) { t, i in
                    let r = generators.items[t].next()
                    let k = Int(r >> 8) % count
                    if r % 10 == 0 {
                        blackHole(try await sessions[k / 100].save(Profile.sample(i), for: keys[k].name))
                    } else {
                        blackHole(try sessions[k / 100].load(Profile.self, for: keys[k].name))
                    }
                }
            },
            Contender(system: "raw LMDB", note: "get + decode / durable txn per put (blocks the task's thread)") { seconds in
                reseed()
                return try await runTasks(tasks, seconds: seconds) { t, i in
                    let r = generators.items[t].next()
                    let k = Int(r >> 8) % count
                    if r % 10 == 0 {
                        try raw.put(keys[k].recordKey, Fixtures.record(Profile.sample(i), encoder: encoder))
                    } else {
                        blackHole(try raw.get(keys[k].recordKey) { try decoder.decode(Profile.self, from: Fixtures.recordValue($0)!) })
                    }
                }
            },
            Contender(system: "SQLite (GRDB) WAL, synchronous=FULL", note: "async read + JSON decode / async write") { seconds in
                reseed()
                return try await runTasks(tasks, seconds: seconds) { t, i in
                    let r = generators.items[t].next()
                    let k = Int(r >> 8) % count
                    if r % 10 == 0 {
                        try await sql.put(keys[k].sqlKey, jsonEncoders.items[t].encode(Profile.sample(i)))
                    } else {
                        let data = try await sql.read(keys[k].sqlKey)!
                        blackHole(try jsonDecoders.items[t].decode(Profile.self, from: data))
                    }
                }
            },
        ], slow: true)
    }

    // MARK: Codec

    func codec() async throws {
        let value = Profile(name: "Ada Lovelace", email: "ada@example.com", visits: 42, roles: ["admin", "editor"])
        let cborEncoder = CBOREncoder()
        let cborDecoder = CBORDecoder()
        let jsonEncoder = JSONEncoder()
        let jsonDecoder = JSONDecoder()
        let plistEncoder = PropertyListEncoder()
        plistEncoder.outputFormat = .binary
        let plistDecoder = PropertyListDecoder()
        let cbor = try cborEncoder.encode(value)
        let json = try jsonEncoder.encode(value)
        let plist = try plistEncoder.encode(value)
        guard try cborDecoder.decode(Profile.self, from: cbor) == value,
              try jsonDecoder.decode(Profile.self, from: json) == value,
              try plistDecoder.decode(Profile.self, from: plist) == value else {
            throw BenchError("a codec does not round-trip the sample value")
        }
        try await measure("codec: encode", [
            Contender(system: "CBOREncoder", note: "\(cbor.count) bytes") { seconds in
                try runLoop(seconds: seconds, sampleEvery: 8) { _ in blackHole(try cborEncoder.encode(value)) }
            },
            Contender(system: "JSONEncoder", note: "\(json.count) bytes") { seconds in
                try runLoop(seconds: seconds, sampleEvery: 8) { _ in blackHole(try jsonEncoder.encode(value)) }
            },
            Contender(system: "PropertyListEncoder (binary)", note: "\(plist.count) bytes") { seconds in
                try runLoop(seconds: seconds, sampleEvery: 8) { _ in blackHole(try plistEncoder.encode(value)) }
            },
        ], slow: false)
        try await measure("codec: decode", [
            Contender(system: "CBORDecoder", note: "from Data") { seconds in
                try runLoop(seconds: seconds, sampleEvery: 8) { _ in blackHole(try cborDecoder.decode(Profile.self, from: cbor)) }
            },
            Contender(system: "JSONDecoder", note: "from Data") { seconds in
                try runLoop(seconds: seconds, sampleEvery: 8) { _ in blackHole(try jsonDecoder.decode(Profile.self, from: json)) }
            },
            Contender(system: "PropertyListDecoder", note: "from Data") { seconds in
                try runLoop(seconds: seconds, sampleEvery: 8) { _ in blackHole(try plistDecoder.decode(Profile.self, from: plist)) }
            },
        ], slow: false)
    }

    // MARK: Goals

    func evaluateGoals() -> [Goal] {
        var goals: [Goal] = []
        func ops(_ workload: String, _ system: String) -> Double? { row(workload, system)?.opsPerSecond }
        func p50(_ workload: String, _ system: String) -> Double? {
            guard var found = row(workload, system) else { return nil }
            return found.latency.p50
        }
        /// "; p50 a ÷ b = r×": the same comparison on median latencies, less sensitive to a busy disk.
        func p50Ratio(_ workload: String, _ a: String, _ b: String) -> String {
            guard let x = p50(workload, a), let y = p50(workload, b), y > 0 else { return "" }
            return String(format: " (p50 latency: %.2f×)", x / y)
        }
        /// A goal met when `x ÷ y` (ops/s) is at least `minimum`; none when a row is missing.
        func atLeast(_ name: String, _ minimum: Double, _ x: Double?, _ y: Double?, format: String = "%.2f×",
                     p50 note: @autoclosure () -> String = "") {
            guard let x, let y else { return }
            let r = x / y
            goals.append(Goal(name: name, target: String(format: "≥ %g×", minimum),
                              measured: String(format: format, r) + note(), met: r >= minimum))
        }
        /// A goal met when SessionStore's time per operation in `workload` is at most 1.5× the
        /// `raw` row's; none when a row is missing.
        func withinRawTime(_ name: String, _ workload: String, raw: String) {
            guard let ss = ops(workload, "SessionStore"), let rawOps = ops(workload, raw) else { return }
            let r = rawOps / ss
            goals.append(Goal(name: name, target: "time ≤ 1.5× raw",
                              measured: String(format: "%.2f× raw's time", r) + p50Ratio(workload, "SessionStore", raw), met: r <= 1.5))
        }
        let c = "cached load, 1 hot key"
        atLeast("cached load vs locked Dictionary (1 hot key)", 0.5, ops(c, "SessionStore"), ops(c, "Dictionary + Mutex"))
        atLeast("cached load vs NSLock Dictionary of any + as? (info, not the goal row)", 0.5,
                ops(c, "SessionStore"), ops(c, "Dictionary + NSLock, any + as?"))
        let u = "uncached load, 100,000 keys"
        atLeast("uncached load vs SQLite read + JSON decode", 4, ops(u, "SessionStore"), ops(u, "SQLite (GRDB) read + JSON decode"))
        atLeast("uncached load vs SQLite read + JSON decode, 100 reads per access (info, not the goal row)", 4,
                ops(u, "SessionStore"), ops(u, "SQLite (GRDB) read + JSON decode, 100 per access"))
        withinRawTime("uncached load vs raw LMDB + CBOR decode", u, raw: "raw LMDB get + CBOR decode")
        let one = ops("durable save, 64 writers (tasks)", "SessionStore, 1 writer") ?? ops("durable save, 1 writer", "SessionStore")
        // The goal rows are the 64 tasks using the async save (what a server's request
        // handlers are); the 64 threads using the sync save are shown for information.
        for mode in ["tasks", "threads"] {
            let w = "durable save, 64 writers (\(mode))"
            let suffix = mode == "tasks" ? "" : " (info, not the goal row)"
            atLeast("64 writers (\(mode)) vs 1 writer\(suffix)", 15, ops(w, "SessionStore"), one, format: "%.1f×")
            atLeast("64 writers (\(mode)) vs SQLite FULL, 64 writers\(suffix)", 10,
                    ops(w, "SessionStore"), ops(w, "SQLite (GRDB) WAL, synchronous=FULL"), format: "%.1f×")
        }
        let r = "relaxed save, 1 writer"
        atLeast("relaxed save vs raw LMDB MDB_NOSYNC", 0.6, ops(r, "SessionStore"), ops(r, "raw LMDB, MDB_NOSYNC txn per put"),
                p50: p50Ratio(r, "raw LMDB, MDB_NOSYNC txn per put", "SessionStore"))
        withinRawTime("end a 50-key session vs raw LMDB cursor delete", "end a session of 50 keys (durable)", raw: "raw LMDB cursor delete")
        return goals
    }

    // MARK: Profiling entry

    /// Runs one SessionStore workload `ops` times with no timing, inside `profileRegion`,
    /// so `valgrind --tool=callgrind --toggle-collect='*profileRegion*'` counts only it.
    func profile(_ name: String, ops: Int) async throws {
        try setUpHotSet(sqlite: false)
        let keys = hotKeys
        let sessions = sessionsA
        switch name {
        case "cached":
            let session = sessionsA[4242 / 100]
            let key = hotKeys[4242].name
            profileRegion(ops) { _ in blackHole(try? session.load(Profile.self, for: key)) }
        case "dictget":
            // The cached-load goal's peer, for comparing instruction counts with "cached".
            let dictionary = LockedDictionary()
            for (index, spec) in hotKeys.enumerated() { dictionary.set(spec.name, Profile.sample(index)) }
            let key = hotKeys[4242].name
            profileRegion(ops) { _ in blackHole(dictionary.get(key)) }
        case "uncached":
            let store = try SessionStore(path: root + "/A0", configuration: .init(cacheCapacity: 0))
            let sessions0 = try populate(store, keys)
            profileRegion(ops) { i in
                let k = (i * 7919) % keys.count
                blackHole(try? sessions0[k / 100].load(Profile.self, for: keys[k].name))
            }
            try store.close()
        case "rawget":
            let raw = rawA!
            let decoder = cborDecoder
            profileRegion(ops) { i in
                let k = (i * 7919) % keys.count
                blackHole(try? raw.get(keys[k].recordKey) { try decoder.decode(Profile.self, from: Fixtures.recordValue($0)!) })
            }
        case "save1":
            profileRegion(ops) { i in
                let k = (i * 7) % keys.count
                blackHole(try? sessions[k / 100].save(Profile.sample(i), for: keys[k].name))
            }
        case "relaxed":
            let relaxed = sessionsRelaxed
            profileRegion(ops) { i in
                let k = (i * 7) % keys.count
                blackHole(try? relaxed[k / 100].save(Profile.sample(i), for: keys[k].name))
            }
        case "rawnosync":
            let raw = rawA!
            try raw.setNoSync(true)
            let encoder = cborEncoder
            profileRegion(ops) { i in
                let k = (i * 7) % keys.count
                try? raw.put(keys[k].recordKey, Fixtures.record(Profile.sample(i), encoder: encoder))
            }
        case "end":
            let store = storeA!
            var rng = SplitMix(seed: 5)
            let names = (0..<50).map { Fixtures.keyName($0, length: 16) }
            var prepared: [Session] = []
            for _ in 0..<ops {
                let session = try store.session(Fixtures.sessionID(&rng))
                var batch = WriteBatch()
                for (i, name) in names.enumerated() { try batch.save(Profile.sample(i), for: name, in: session) }
                try await store.apply(batch)
                prepared.append(session)
            }
            profileRegion(ops) { i in blackHole(try? prepared[i].end()) }
        case "save64":
            let group = DispatchGroup()
            let perThread = max(1, ops / 64)
            profileRegion(1) { _ in
                for w in 0..<64 {
                    group.enter()
                    Thread {
                        for i in 0..<perThread {
                            let k = (w * 157 + i * 7) % keys.count
                            blackHole(try? sessions[k / 100].save(Profile.sample(i), for: keys[k].name))
                        }
                        group.leave()
                    }.start()
                }
                group.wait()
            }
        case "save64tasks":
            let perTask = max(1, ops / 64)
            await withTaskGroup(of: Void.self) { group in
                for w in 0..<64 {
                    group.addTask {
                        for i in 0..<perTask {
                            let k = (w * 157 + i * 7) % keys.count
                            blackHole(try? await sessions[k / 100].save(Profile.sample(i), for: keys[k].name))
                        }
                    }
                }
            }
        default:
            throw BenchError("unknown profile workload \(name)")
        }
        log("profiled \(name) × \(ops)")
    }
}

@inline(never)
func profileRegion(_ ops: Int, _ body: (Int) -> Void) {
    for i in 0..<ops { body(i) }
}

/// Runs `setup` (untimed) then `timed` until `seconds` of wall time pass; only `timed` counts.
func setupLoop<T>(seconds: Double, setup: () throws -> T, timed: (T) throws -> Void) throws -> Round {
    let deadline = now() + UInt64(seconds * 1e9)
    var latencies: [UInt64] = []
    latencies.reserveCapacity(1 << 14)
    var total: UInt64 = 0
    while now() < deadline {
        let input = try setup()
        let t0 = now()
        try timed(input)
        let elapsed = now() - t0
        latencies.append(elapsed)
        total += elapsed
    }
    return Round(operations: latencies.count, seconds: Double(total) / 1e9, latencies: latencies)
}

/// The origin's storage taken literally: values of any type behind an `NSLock`, and the
/// caller's type assertion (`as?`).
final class LockedAnyDictionary: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [String: any Sendable] = [:]
    func set(_ key: String, _ value: any Sendable) { lock.lock(); storage[key] = value; lock.unlock() }
    @inline(__always)
    func get<T>(_ key: String, as type: T.Type) -> T? {
        lock.lock()
        defer { lock.unlock() }
        return storage[key] as? T
    }
}

/// The origin's in-memory storage: a Dictionary behind a lock.
final class LockedDictionary: Sendable {
    private let storage = Mutex<[String: Profile]>([:])
    func set(_ key: String, _ value: Profile) { storage.withLock { $0[key] = value } }
    @inline(__always)
    func get(_ key: String) -> Profile? { storage.withLock { $0[key] } }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func swiftVersion() -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["swift", "--version"]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = Pipe()
    if (try? process.run()) != nil {
        process.waitUntilExit()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        if let range = text.range(of: #"Swift version [0-9.]+"#, options: .regularExpression) {
            return String(text[range].dropFirst("Swift version ".count))
        }
    }
    #if compiler(>=6.3)
    return "6.3+ (compiler)"
    #else
    return "6.x (compiler)"
    #endif
}
