// sessionstore-child: a small program the tests run as a second process against a store.
//
//   sessionstore-child put <path> <session> <key> <text>   saves a String, prints the previous value
//   sessionstore-child get <path> <session> <key>          prints the String value or "(nil)"
//   sessionstore-child fill <path> <session> <count> <bytes> saves <count> Data values of <bytes> each
//   sessionstore-child stall-write <path>              grows a 1 MiB map with a 3 MiB value, prints
//                                                        "grown", then stops itself (SIGSTOP) inside
//                                                        its next write transaction; prints "done"
//   sessionstore-child types save|load <path>           saves, or loads and checks, values of a
//                                                        private, a local, a generic and a nested type
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
    case ("types", 3) where ["save", "load"].contains(arguments[1]):
        try storeTypes(arguments[2], save: arguments[1] == "save")
    default:
        fail("unknown command or wrong argument count: \(arguments)")
    }
} catch {
    fail("\(error)")
}
