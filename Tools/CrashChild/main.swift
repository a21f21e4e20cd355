// sessionstore-crash-child: the process SessionStore's crash and fault tests start,
// kill and inspect (Tests/IntegrationTests). It uses only SessionStore's public API.
//
//   sessionstore-crash-child <mode> <store-path> <seed> [--option value ...]
//
// Modes:
//   workload   concurrent tasks commit multi-key WriteBatches and print "ack <seq>" after
//              each commit returns; with --ender 1 another task fills big scopes and ends
//              them ("filled <n>", "ended <n> <count>"). Runs until killed.
//   faults     like workload, but arms an I/O fault (the LD_PRELOAD shim of
//              Tools/FaultShim, or RLIMIT_FSIZE with --fsize-slack) after a warm-up, then
//              reports what the store does: the failed commit, refused writes, a load,
//              close, reopen and writes after the reopen. Exits by itself.
//   big-batch  prints "begin" and applies one WriteBatch of --keys values, so the write
//              transaction lasts long enough to be stopped from outside; "ack big <ms>".
//   probe      prints "started", opens the store ("opened"), commits one value
//              ("committed") and exits: the next process after a crash.
//   reader     loads one big value in a loop with the cache off, so it is inside a read
//              transaction most of the time.
//   hold       opens the store and keeps it open until standard input closes.
//
// Store options of every mode: --map-size <bytes>, --cache <entries>, --relaxed-ms <ms>
// (relaxed durability with that sync interval), --ack-before-sync 1 (test-only: relaxed
// durability with a sync interval of an hour, so every "ack" is printed before its commit
// is synced; the power-loss tests use it to prove they can find a lost acknowledged write).
// --stamp 1 appends the CLOCK_MONOTONIC time in nanoseconds to every "ack" line.
//
// Every line goes to standard output with one write(2), so lines from concurrent tasks
// never interleave and a line is in the pipe before the next commit starts. Every mode
// exits when standard input reaches end of file (the parent went away).
//
// The payload formulas (`Workload`) live in Tools/CrashWorkload, shared with the tests,
// which recompute every value to check it byte for byte.
import Foundation
import CrashWorkload
import SessionStore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Output

/// Writes `line` and a newline to standard output with one unbuffered write(2).
func emit(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { buffer in
        var offset = 0
        while offset < buffer.count {
            let written = write(1, buffer.baseAddress! + offset, buffer.count - offset)
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { _exit(3) }
            offset += written
        }
    }
}

/// Prints "fatal <message>" (and the message on standard error) and exits with status 2.
func fail(_ message: String) -> Never {
    emit("fatal \(message)")
    FileHandle.standardError.write(Data(("sessionstore-crash-child: " + message + "\n").utf8))
    exit(2)
}

/// The code and a one-line message of `error`, as printed in "error" lines.
func describe(_ error: any Error) -> String {
    if let error = error as? SessionStoreError {
        return "\(error.code.rawValue) | \(error.message.replacingOccurrences(of: "\n", with: " "))"
    }
    return "other | \(String(describing: error).replacingOccurrences(of: "\n", with: " "))"
}

/// Exits the process when standard input reaches end of file, so a child never outlives
/// the test that started it.
func exitWhenParentGoes() {
    let thread = Thread {
        var byte: UInt8 = 0
        while true {
            let count = read(0, &byte, 1)
            if count == 0 || (count < 0 && errno != EINTR) { _exit(0) }
        }
    }
    thread.start()
}

// MARK: - Options

/// Whether "ack" lines carry the time (`--stamp 1`), for the power-loss tests' measurement
/// of what relaxed durability loses.
enum AckStamp {
    static let enabled: Bool = {
        let arguments = CommandLine.arguments
        guard let index = arguments.firstIndex(of: "--stamp"), index + 1 < arguments.count else { return false }
        return arguments[index + 1] != "0"
    }()

    /// CLOCK_MONOTONIC in nanoseconds, the clock the parent and the power-loss shim read too.
    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}

struct Options {
    let mode: String
    let path: String
    let seed: UInt64
    private var named: [String: String] = [:]

    init(_ arguments: [String]) {
        guard arguments.count >= 3 else {
            fail("usage: sessionstore-crash-child <mode> <store-path> <seed> [--option value ...]")
        }
        mode = arguments[0]
        path = arguments[1]
        guard let seed = UInt64(arguments[2]) else { fail("the seed \(arguments[2]) is not an unsigned integer") }
        self.seed = seed
        var index = 3
        while index < arguments.count {
            let name = arguments[index]
            guard name.hasPrefix("--"), index + 1 < arguments.count else { fail("bad option \(name)") }
            named[String(name.dropFirst(2))] = arguments[index + 1]
            index += 2
        }
    }

    func int(_ name: String, _ fallback: Int) -> Int {
        guard let text = named[name] else { return fallback }
        guard let value = Int(text) else { fail("--\(name) \(text) is not an integer") }
        return value
    }

    func flag(_ name: String) -> Bool { int(name, 0) != 0 }
}

// MARK: - Writing the workload (formulas in Tools/CrashWorkload, shared with the tests)

extension Workload {
    /// The batch number `index` of `task`: three keys carrying its sequence number (two in a
    /// session, one in an instance of it), the task's last-sequence key, and every fifth
    /// batch the removal of the task's batch from two steps before.
    func batch(_ store: SessionStore, task: Int, index: Int) throws -> (seq: Int, batch: WriteBatch) {
        let seq = self.seq(task: task, index: index)
        var batch = WriteBatch()
        let session = try store.session(sessionID(seq))
        let instance = try session.instance(instanceID(seq))
        try batch.save(value(seq: seq, part: 0), for: "w\(seq)-a", in: session)
        try batch.save(value(seq: seq, part: 1), for: "w\(seq)-b", in: session)
        try batch.save(value(seq: seq, part: 2), for: "w\(seq)-c", in: instance)
        try batch.save(seq, for: lastKey(task: task), in: try store.session(Self.tasksSession))
        if retire && index % 5 == 4 {
            let old = self.seq(task: task, index: index - 2)
            let oldSession = try store.session(sessionID(old))
            try batch.remove("w\(old)-a", in: oldSession)
            try batch.remove("w\(old)-b", in: oldSession)
            try batch.remove("w\(old)-c", in: try oldSession.instance(instanceID(old)))
        }
        return (seq, batch)
    }
}

extension EnderWorkload {
    func fillBatch(_ store: SessionStore, number: Int) throws -> WriteBatch {
        var batch = WriteBatch()
        let session = try store.session(sessionID(number))
        for item in 0..<fill {
            if let instance = instanceID(item) {
                try batch.save(value(number, item), for: "f\(item)", in: try session.instance(instance))
            } else {
                try batch.save(value(number, item), for: "f\(item)", in: session)
            }
        }
        return batch
    }
}

func workload(_ options: Options, stride: Int? = nil) -> Workload {
    let tasks = options.int("tasks", 4)
    return Workload(
        seed: options.seed, base: options.int("base", 0), stride: stride ?? options.int("stride", tasks),
        minLength: options.int("min", 16), maxLength: options.int("max", 1500),
        sessions: options.int("sessions", 5), instances: options.int("instances", 3),
        retire: options.flag("retire"))
}

func configuration(_ options: Options) -> SessionStore.Configuration {
    var configuration = SessionStore.Configuration()
    configuration.mapSize = options.int("map-size", configuration.mapSize)
    configuration.cacheCapacity = options.int("cache", configuration.cacheCapacity)
    let relaxed = options.int("relaxed-ms", 0)
    if relaxed > 0 { configuration.durability = .relaxed(syncInterval: .milliseconds(relaxed)) }
    if options.flag("ack-before-sync") { configuration.durability = .relaxed(syncInterval: .seconds(3600)) }
    return configuration
}

func openStore(_ options: Options, _ configuration: SessionStore.Configuration) -> SessionStore {
    do {
        return try SessionStore(path: options.path, configuration: configuration)
    } catch {
        fail("open: \(describe(error))")
    }
}

/// Blocks until standard input closes, then exits (the parent kills us before, usually).
func waitForParent() -> Never {
    var byte: UInt8 = 0
    while true {
        let count = read(0, &byte, 1)
        if count == 0 || (count < 0 && errno != EINTR) { exit(0) }
    }
}

// MARK: - Modes

/// Commits batches from concurrent tasks until killed.
func runWorkload(_ options: Options) async {
    exitWhenParentGoes()
    let store = openStore(options, configuration(options))
    let plan = workload(options)
    let tasks = options.int("tasks", 4)
    let ender = options.flag("ender") ? EnderWorkload(
        seed: options.seed, base: options.int("base", 0), fill: options.int("fill", 240),
        minLength: options.int("fill-min", 500), maxLength: options.int("fill-max", 1500)) : nil
    emit("ready")
    await withTaskGroup(of: Void.self) { group in
        for task in 0..<tasks {
            group.addTask {
                var index = 0
                while await commit(store, plan, task: task, index: index) { index += 1 }
            }
        }
        if let ender {
            group.addTask {
                var number = 0
                while true {
                    do {
                        let batch = try ender.fillBatch(store, number: number)
                        try await store.apply(batch)
                        emit("filled \(number)")
                        let removed = try await store.session(ender.sessionID(number)).end()
                        emit("ended \(number) \(removed)")
                    } catch {
                        emit("error ender-\(number) \(describe(error))")
                        return
                    }
                    number += 1
                }
            }
        }
    }
    // Only reached when every task stopped on an error.
    emit("stopped")
    waitForParent()
}

/// Whether a write of the armed phase failed, and how many were attempted.
final class Progress: Sendable {
    let failed = Atomic<Bool>(false)
    let attempts = Atomic<Int>(0)
}

/// Commits the batch number `index` of `task`, prints "ack" or "error", and returns
/// whether it committed.
func commit(_ store: SessionStore, _ plan: Workload, task: Int, index: Int) async -> Bool {
    do {
        let (seq, batch) = try plan.batch(store, task: task, index: index)
        do {
            try await store.apply(batch)
            emit(AckStamp.enabled ? "ack \(seq) \(AckStamp.now())" : "ack \(seq)")
            return true
        } catch {
            emit("error \(seq) \(describe(error))")
            return false
        }
    } catch {
        fail("building a batch: \(describe(error))")
    }
}

/// Commits batches, arms an I/O fault, and reports how the store behaves around it.
///
/// Task slots (the parent decodes them from the sequence numbers): 0..<tasks write
/// concurrently once armed, `tasks` is the warm-up, `tasks + 1` the writes after the
/// failure, `tasks + 2` the writes after the reopen.
func runFaults(_ options: Options) async {
    exitWhenParentGoes()
    let tasks = options.int("tasks", 1)
    let plan = workload(options, stride: tasks + 3)
    let warmup = tasks, refused = tasks + 1, reopened = tasks + 2
    var store = openStore(options, configuration(options))
    emit("ready")

    emit("phase warmup")
    for index in 0..<options.int("warmup", 10) where !(await commit(store, plan, task: warmup, index: index)) {
        fail("a warm-up write failed before any fault was armed")
    }

    // Arm the fault.
    let fsizeSlack = options.int("fsize-slack", 0)
    typealias Arm = @convention(c) () -> Int32
    typealias Disarm = @convention(c) () -> Int
    var disarm: Disarm?
    if fsizeSlack > 0 {
        signal(SIGXFSZ, SIG_IGN)
        var info = stat()
        guard stat(options.path + "/data.mdb", &info) == 0 else { fail("stat data.mdb: \(errno)") }
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &limit)
        limit.rlim_cur = rlim_t(Int(info.st_size) + fsizeSlack)
        guard setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &limit) == 0 else { fail("setrlimit: \(errno)") }
        emit("armed fsize \(limit.rlim_cur)")
    } else {
        guard let armSymbol = dlsym(nil, "faultshim_arm"), let disarmSymbol = dlsym(nil, "faultshim_disarm") else {
            fail("the fault shim is not loaded (LD_PRELOAD)")
        }
        let arm = unsafeBitCast(armSymbol, to: Arm.self)
        disarm = unsafeBitCast(disarmSymbol, to: Disarm.self)
        guard arm() == 0 else { fail("faultshim_arm refused the FAULTSHIM_* environment") }
        emit("armed shim")
    }

    // Concurrent writes until the first failure (each task stops at its own first error).
    emit("phase armed")
    let progress = Progress()
    let limit = options.int("limit", 3000)
    let current = store
    await withTaskGroup(of: Void.self) { group in
        for task in 0..<tasks {
            group.addTask {
                var index = 0
                while !progress.failed.load(ordering: .acquiring), progress.attempts.add(1, ordering: .relaxed).newValue <= limit {
                    if !(await commit(current, plan, task: task, index: index)) {
                        progress.failed.store(true, ordering: .releasing)
                        return
                    }
                    index += 1
                }
            }
        }
    }
    if !progress.failed.load(ordering: .acquiring) { emit("no-fault") }

    // Later writes must be refused until the store is reopened.
    emit("phase refused")
    for index in 0..<options.int("refused", 5) { _ = await commit(store, plan, task: refused, index: index) }
    do {
        let data = try store.session(plan.sessionID(plan.seq(task: warmup, index: 0))).load(Data.self, for: "w\(plan.seq(task: warmup, index: 0))-a")
        emit(data == plan.value(seq: plan.seq(task: warmup, index: 0), part: 0) ? "load ok" : "load wrong")
    } catch {
        emit("load error \(describe(error))")
    }
    if options.flag("close-while-broken") {
        do { try store.close(); emit("close ok") } catch { emit("close error \(describe(error))") }
    }

    // The disk recovers; reopen and write again.
    if fsizeSlack > 0 {
        var unlimited = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &unlimited)
        unlimited.rlim_cur = unlimited.rlim_max
        setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &unlimited)
    }
    if let disarm { emit("disarmed \(disarm())") }
    if !store.isClosed {
        do { try store.close(); emit("close ok") } catch { emit("close error \(describe(error))") }
    }
    do {
        store = try SessionStore(path: options.path, configuration: configuration(options))
        emit("reopen ok")
    } catch {
        emit("reopen error \(describe(error))")
        exit(0)
    }
    emit("phase reopened")
    for index in 0..<options.int("after", 5) { _ = await commit(store, plan, task: reopened, index: index) }
    do { try store.close(); emit("close ok") } catch { emit("close error \(describe(error))") }
    emit("done")
    exit(0)
}

/// Applies one huge batch so its write transaction can be stopped from outside.
func runBigBatch(_ options: Options) -> Never {
    exitWhenParentGoes()
    let store = openStore(options, configuration(options))
    let keys = options.int("keys", 100_000)
    let size = options.int("size", 200)
    var batch = WriteBatch()
    do {
        let session = try store.session("big")
        for index in 0..<keys {
            try batch.save(Workload.payload(seq: index, part: 6, length: size), for: "k\(index)", in: session)
        }
    } catch {
        fail("building the big batch: \(describe(error))")
    }
    emit("ready")
    emit("begin")
    let start = ContinuousClock.now
    do {
        try store.apply(batch)
    } catch {
        emit("error big \(describe(error))")
        waitForParent()
    }
    let elapsed = ContinuousClock.now - start
    emit("ack big \(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)")
    waitForParent()
}

/// The next process after a crash: opens the store and commits one value.
func runProbe(_ options: Options) -> Never {
    exitWhenParentGoes()
    emit("started")
    let store = openStore(options, configuration(options))
    emit("opened")
    do {
        try store.session("probe").save(Int(truncatingIfNeeded: options.seed), for: "p\(options.seed)")
        emit("committed")
        try store.close()
    } catch {
        emit("error probe \(describe(error))")
        exit(1)
    }
    exit(0)
}

/// Loads one big value in a tight loop with the cache off.
func runReader(_ options: Options) -> Never {
    exitWhenParentGoes()
    var settings = configuration(options)
    settings.cacheCapacity = 0
    let store = openStore(options, settings)
    emit("ready")
    var loads = 0
    while true {
        do {
            guard let blob = try store.session("r").load(Data.self, for: "blob"), !blob.isEmpty else { fail("the blob is missing") }
        } catch {
            fail("load: \(describe(error))")
        }
        loads += 1
        if loads == 1 { emit("reading") }
    }
}

/// Keeps the store open, so its lock file stays in use, until standard input closes.
func runHold(_ options: Options) -> Never {
    let store = openStore(options, configuration(options))
    emit("ready")
    withExtendedLifetime(store) { waitForParent() }
}

// MARK: - Main

let options = Options(Array(CommandLine.arguments.dropFirst()))
switch options.mode {
case "workload": await runWorkload(options)
case "faults": await runFaults(options)
case "big-batch": runBigBatch(options)
case "probe": runProbe(options)
case "reader": runReader(options)
case "hold": runHold(options)
default: fail("unknown mode \(options.mode)")
}
