// sessionstore-child: a small program the tests run as a second process against a store.
//
//   sessionstore-child put <path> <session> <key> <text>   saves a String, prints the previous value
//   sessionstore-child get <path> <session> <key>          prints the String value or "(nil)"
//   sessionstore-child hold <path> <seconds>               keeps the store open for a while
import Foundation
import SessionStore

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard let command = arguments.first else { fail("usage: sessionstore-child put|get|hold ...") }

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
    default:
        fail("unknown command or wrong argument count: \(arguments)")
    }
} catch {
    fail("\(error)")
}
