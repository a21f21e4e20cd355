// sessionstore-child: a small program the tests run as a second process against a store.
//
//   sessionstore-child put <path> <session> <key> <text>   saves a String, prints the previous value
//   sessionstore-child get <path> <session> <key>          prints the String value or "(nil)"
//   sessionstore-child fill <path> <session> <count> <bytes> saves <count> Data values of <bytes> each
//   sessionstore-child types save|load <path>           saves, or loads and checks, values of a
//                                                        private, a local, a generic and a nested type
//   sessionstore-child scan build|check|rewrite <path>  writes (build), loads and compares (check) or
//                                                        saves again, reading each previous value
//                                                        (rewrite), every record of a fixed set of
//                                                        sessions; check and rewrite print one result
//                                                        line and exit 0 when every error was a
//                                                        SessionStoreError (3 otherwise)
import Foundation
import SessionStore

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
    case ("types", 3) where ["save", "load"].contains(arguments[1]):
        try storeTypes(arguments[2], save: arguments[1] == "save")
    case ("scan", 3) where ScanMode(rawValue: arguments[1]) != nil:
        scan(arguments[2], mode: ScanMode(rawValue: arguments[1])!)
    default:
        fail("unknown command or wrong argument count: \(arguments)")
    }
} catch {
    fail("\(error)")
}
