// sessionstore-child: a small program the tests run as a second process against a store.
//
//   sessionstore-child put <path> <session> <key> <text>   saves a String, prints the previous value
//   sessionstore-child get <path> <session> <key>          prints the String value or "(nil)"
//   sessionstore-child fill <path> <session> <count> <bytes> saves <count> Data values of <bytes> each
import Foundation
import SessionStore

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
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
    default:
        fail("unknown command or wrong argument count: \(arguments)")
    }
} catch {
    fail("\(error)")
}
