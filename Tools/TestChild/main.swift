// sessionstore-child: a small program the tests run as a second process against a store.
//
//   sessionstore-child put <path> <session> <key> <text>   saves a String, prints the previous value
//   sessionstore-child get <path> <session> <key>          prints the String value or "(nil)"
//   sessionstore-child fill <path> <session> <count> <bytes> saves <count> Data values of <bytes> each
//   sessionstore-child stall-write <path>              grows a 1 MiB map with a 3 MiB value, prints
//                                                        "grown", then stops itself (SIGSTOP) inside
//                                                        its next write transaction; prints "done"
//   sessionstore-child keys save|load <path>            saves, or loads and checks, values under a
//                                                        Set key and under keys spelled NFD / NFC
//   sessionstore-child types save|load <path>           saves, or loads and checks, values of a
//                                                        private, a local, a generic and a nested type
//   sessionstore-child fork-hold <path>                 saves, fork()s a child that sleeps 60 s (and
//                                                        prints "sleeper <pid>"), then dies by SIGKILL
//                                                        inside its next write transaction
//   sessionstore-child fork-use <path>                  saves, fork()s, and reports what load, save, close
//                                                        and a reopen do in the forked child; then
//                                                        the parent saves and loads again
//   sessionstore-child scan build|check|rewrite <path>  writes (build), loads and compares (check) or
//                                                        saves again, reading each previous value
//                                                        (rewrite), every record of a fixed set of
//                                                        sessions; check and rewrite print one result
//                                                        line and exit 0 when every error was a
//                                                        SessionStoreError (3 otherwise)
//
// With SESSIONSTORE_CHILD_START_AT=<CLOCK_REALTIME nanoseconds> set, the child sleeps until
// then before it runs the command, so several children started together race.
import Foundation
import SessionStore
import Synchronization

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
}

// Types whose `String(reflecting:)` holds a run-time address (private, local), or not.
private struct PrivateDraft: Codable, Sendable, Equatable { var text: String }
struct Wrapper<Content: Codable & Sendable & Equatable>: Codable, Sendable, Equatable { var content: Content }
enum Outer { struct Nested: Codable, Sendable, Equatable { var number: Int } }

/// Saves (or loads and compares) one value of each kind of type in session "types".
func storeTypes(_ path: String, save: Bool) throws {
    struct LocalNote: Codable, Sendable, Equatable { var line: String }
    let store = try SessionStore(path: path)
    let session = try store.session("types")
    func check<V: Codable & Sendable & Equatable>(_ value: V, _ key: String) throws {
        if save {
            try session.save(value, for: key)
        } else {
            let loaded = try session.load(V.self, for: key)
            guard loaded == value else { fail("\(key): loaded \(String(describing: loaded)), expected \(value)") }
        }
    }
    try check(PrivateDraft(text: "private"), "private")
    try check(LocalNote(line: "local"), "local")
    try check(Wrapper(content: PrivateDraft(text: "generic")), "generic")
    try check(Wrapper(content: LocalNote(line: "generic local")), "generic-local")
    try check(Outer.Nested(number: 7), "nested")
    print(save ? "saved 5" : "loaded 5")
    try store.close()
}

/// The code of the error `body` throws, "ok" when it throws none; with the message's mention of fork().
func outcome(_ body: () throws -> Void) -> String {
    do {
        try body()
        return "ok"
    } catch let error as SessionStoreError {
        return error.code.rawValue + (error.message.contains("fork()") ? "(fork)" : "")
    } catch {
        return "other"
    }
}

@_silgen_name("fork") func forkProcess() -> Int32

/// Saves, forks, and reports from the forked child what the parent's store does there.
///
/// The child prints one line "child load=… save=… close=… reopen=…" and leaves with
/// `_exit`; the parent waits for it (10 s at most), prints "child exit=<status>", then
/// saves and loads again and prints "parent load=<value>".
func forkUse(_ path: String) throws {
    let store = try SessionStore(path: path)
    let session = try store.session("fork")
    try session.save("before fork", for: "k")
    _ = try session.load(String.self, for: "k")
    fflush(nil)
    let pid = forkProcess()
    guard pid >= 0 else { fail("fork failed: \(String(cString: strerror(errno)))") }
    if pid == 0 {
        let load = outcome { _ = try session.load(String.self, for: "k") }
        let save = outcome { try session.save("written by the forked child", for: "k") }
        // Written before close, so that a close that hangs still shows the first two.
        print("child load=\(load) save=\(save)", terminator: " ")
        fflush(nil)
        let close = outcome { try store.close() }
        var reopened = "nil"
        let reopen = outcome {
            let again = try SessionStore(path: path)
            reopened = try again.session("fork").load(String.self, for: "k") ?? "nil"
            try again.close()
        }
        print("close=\(close) reopen=\(reopen):\(reopened)")
        fflush(nil)
        _exit(0)
    }
    var status: Int32 = 0
    var waited: Int32 = 0
    for _ in 0..<1000 {
        waited = waitpid(pid, &status, WNOHANG)
        if waited != 0 { break }
        usleep(10_000)
    }
    if waited == 0 {
        kill(pid, SIGKILL)
        waitpid(pid, &status, 0)
        print("child hung")
    } else {
        print("child exit=\(status)")
    }
    try session.save("after fork", for: "k")
    print("parent load=\(try session.load(String.self, for: "k") ?? "nil")")
    try store.close()
}

if let startAt = ProcessInfo.processInfo.environment["SESSIONSTORE_CHILD_START_AT"].flatMap(Int.init) {
    var deadline = timespec(tv_sec: startAt / 1_000_000_000, tv_nsec: startAt % 1_000_000_000)
    while clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &deadline, nil) == EINTR {}
}

/// Saves (or loads and checks) values under keys whose bytes could differ between processes:
/// a `Set` (hash order is per process) and strings in two Unicode spellings.
func storeEquivalentKeys(_ path: String, save: Bool) throws {
    struct Tagged: Codable, Hashable, Sendable { var name: String; var tags: Set<String> }
    let store = try SessionStore(path: path)
    let session = try store.session("keys")
    let letters = (0..<26).map { String(UnicodeScalar(UInt8(ascii: "a") + UInt8($0))) }
    // Built in a different order in each mode, and iterated in each process's hash order.
    let set = Set(save ? letters : letters.reversed())
    let decomposed = "Cafe\u{301}"    // "Café" as e + combining acute (NFD)
    let composed = "Caf\u{E9}"        // "Café" as one scalar (NFC)
    if save {
        try session.save("by set", for: set)
        try session.save("by text", for: decomposed)
        try session.save("by struct", for: Tagged(name: decomposed, tags: set))
        print("saved 3")
    } else {
        for (value, key) in [("by set", AnyHashableKey(set)), ("by text", AnyHashableKey(composed)), ("by struct", AnyHashableKey(Tagged(name: composed, tags: set)))] {
            let loaded = try key.load(from: session)
            guard loaded == value else { fail("\(value): loaded \(loaded ?? "nil")") }
        }
        print("loaded 3")
    }
    try store.close()
}

/// A key of any `Encodable & Hashable` type, loaded as a `String` value.
struct AnyHashableKey {
    let load: (Session) throws -> String?
    init<K: Encodable & Hashable & Sendable>(_ key: K) { load = { try $0.load(String.self, for: key) } }
    func load(from session: Session) throws -> String? { try load(session) }
}

/// The records `scan` writes and checks: sessions `s0`…, keys `k0`…, Data values of a
/// size and content derived from both indexes, every seventh one large enough for
/// LMDB's overflow pages.
enum ScanLayout {
    static let sessions = 30
    static let keys = 20

    static func value(session: Int, key: Int) -> Data {
        let count = key % 7 == 3 ? 6_000 : 40 + (session * 13 + key * 29) % 500
        return Data((0..<count).map { UInt8(truncatingIfNeeded: session &* 31 &+ key &* 7 &+ $0) })
    }
}

enum ScanMode: String { case build, check, rewrite }

/// Writes the `scan` records, or loads (or saves again) every one and prints a tally of what came back.
///
/// A damaged store must give a clean error: the open error, or per record; any error that
/// is not a `SessionStoreError` ends the run with status 3. A crash (a signal) is the
/// defect the damaged-file tests look for.
func scan(_ path: String, mode: ScanMode) {
    let store: SessionStore
    do {
        store = try SessionStore(path: path)
    } catch let error as SessionStoreError {
        print("open-error \(error.code): \(error.message)")
        exit(0)
    } catch {
        print("unexpected open error: \(error)")
        exit(3)
    }
    var loaded = 0, missing = 0, mismatched = 0
    var errors: [String: Int] = [:]
    var firstError: String?
    func record(_ error: Error) {
        guard let error = error as? SessionStoreError else {
            print("unexpected error: \(error)")
            exit(3)
        }
        errors[error.code.rawValue, default: 0] += 1
        if firstError == nil { firstError = error.message }
    }
    for s in 0..<ScanLayout.sessions {
        do {
            let session = try store.session("s\(s)")
            if mode == .build {
                for k in 0..<ScanLayout.keys { try session.save(ScanLayout.value(session: s, key: k), for: "k\(k)") }
                continue
            }
            for k in 0..<ScanLayout.keys {
                do {
                    let value = ScanLayout.value(session: s, key: k)
                    let result = mode == .rewrite ? try session.save(value, for: "k\(k)") : try session.load(Data.self, for: "k\(k)")
                    switch result {
                    case nil: missing += 1
                    case let found? where found == value: loaded += 1
                    case _?: mismatched += 1
                    }
                } catch {
                    record(error)
                }
            }
            do { _ = try session.keys() } catch { record(error) }
        } catch {
            record(error)
        }
    }
    do { try store.close() } catch { record(error) }
    if mode == .build {
        print(errors.isEmpty ? "built" : "build errors \(errors)")
        exit(errors.isEmpty ? 0 : 2)
    }
    let tally = errors.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    print("scanned loaded=\(loaded) missing=\(missing) mismatched=\(mismatched) errors=\(tally.isEmpty ? "none" : tally)")
    if let firstError { print("first error: \(firstError)") }
    exit(0)
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard let command = arguments.first else { fail("usage: sessionstore-child put|get|fill ...") }

do {
    switch (command, arguments.count) {
    case ("put", 5):
        // A test that must know the open and save have started (the process is not still
        // starting up) asks for this.
        if ProcessInfo.processInfo.environment["SESSIONSTORE_CHILD_ANNOUNCE"] == "1" {
            FileHandle.standardError.write(Data("opening\n".utf8))
        }
        let store = try SessionStore(path: arguments[1])
        let previous = try store.session(arguments[2]).save(arguments[4], for: arguments[3])
        print(previous ?? "(nil)")
        try store.close()
    case ("get", 4):
        let store = try SessionStore(path: arguments[1])
        print(try store.session(arguments[2]).load(String.self, for: arguments[3]) ?? "(nil)")
        try store.close()
    case ("fill", 5):
        guard let count = Int(arguments[3]), let size = Int(arguments[4]) else { fail("fill: count and bytes must be integers") }
        let store = try SessionStore(path: arguments[1], configuration: .init(mapSize: 1 << 20))
        let session = try store.session(arguments[2])
        for index in 0..<count {
            try session.save(Data(repeating: UInt8(index & 0xFF), count: size), for: "fill\(index)")
        }
        print("filled \(count)")
        try store.close()
    case ("stall-write", 2):
        let store = try SessionStore(path: arguments[1], configuration: .init(mapSize: 1 << 20))
        let session = try store.session("grow")
        try session.save(Data(count: 3 << 20), for: "big")
        FileHandle.standardOutput.write(Data("grown\n".utf8))
        let stopped = Atomic<Bool>(false)
        TestHooks.insideWrite.set { _ in
            if !stopped.exchange(true, ordering: .relaxed) { raise(SIGSTOP) }
        }
        try session.save("after", for: "late")
        print("done")
        try store.close()
    case ("keys", 3) where ["save", "load"].contains(arguments[1]):
        try storeEquivalentKeys(arguments[2], save: arguments[1] == "save")
    case ("types", 3) where ["save", "load"].contains(arguments[1]):
        try storeTypes(arguments[2], save: arguments[1] == "save")
    case ("fork-hold", 2):
        let store = try SessionStore(path: arguments[1])
        let session = try store.session("fork")
        try session.save("before fork", for: "k")
        let pid = forkProcess()
        guard pid >= 0 else { fail("fork failed: \(String(cString: strerror(errno)))") }
        if pid == 0 {
            // The sleeper keeps whatever descriptors it inherited, but pipes and sockets (the
            // output, and the launcher's), so that the test need not wait for it to exit.
            let null = open("/dev/null", O_WRONLY)
            dup2(null, 1)
            dup2(null, 2)
            for descriptor in Int32(3)..<1024 {
                var info = stat()
                guard fstat(descriptor, &info) == 0 else { continue }
                let kind = info.st_mode & S_IFMT
                if kind == S_IFIFO || kind == S_IFSOCK { close(descriptor) }
            }
            sleep(60)
            _exit(0)
        }
        FileHandle.standardOutput.write(Data("sleeper \(pid)\n".utf8))
        TestHooks.insideWrite.set { _ in kill(getpid(), SIGKILL) }
        try session.save("never", for: "k")
        fail("the save returned")
    case ("fork-use", 2):
        try forkUse(arguments[1])
    case ("scan", 3) where ScanMode(rawValue: arguments[1]) != nil:
        scan(arguments[2], mode: ScanMode(rawValue: arguments[1])!)
    default:
        fail("unknown command or wrong argument count: \(arguments)")
    }
} catch {
    fail("\(error)")
}
