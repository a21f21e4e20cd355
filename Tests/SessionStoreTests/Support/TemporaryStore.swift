import CLMDB
import Foundation
import Synchronization
@testable import SessionStore

/// A fresh directory under the system's temporary directory, removed on `remove()`.
struct TemporaryDirectory {
    let path: String

    init(_ label: String = "store") {
        var template = Array((NSTemporaryDirectory() + "sessionstore-\(label)-XXXXXX").utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(created != nil, "mkdtemp failed: \(String(cString: strerror(errno)))")
        path = String(cString: created!)
    }

    /// A path inside the directory that does not exist yet.
    func child(_ name: String) -> String { path + "/" + name }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Opens a store in a new temporary directory, runs `body`, then closes and deletes it.
///
/// The store lives at `<tmp>/store`, so the store itself creates its directory.
func withTemporaryStore<R>(
    _ configuration: SessionStore.Configuration = .init(),
    _ body: (SessionStore, String) async throws -> R
) async throws -> R {
    let directory = TemporaryDirectory()
    defer { directory.remove() }
    let path = directory.child("store")
    let store = try SessionStore(path: path, configuration: configuration)
    do {
        let result = try await body(store, path)
        try store.close()
        return result
    } catch {
        try? store.close()
        throw error
    }
}

/// Every record of the store as (key, record bytes), read straight from LMDB.
func allRecords(_ store: SessionStore) throws -> [([UInt8], [UInt8])] {
    try allRecords(store.environment, store.records)
}

/// Every pair of database `dbi`, in key order.
func allRecords(_ environment: Environment, _ dbi: MDB_dbi) throws -> [([UInt8], [UInt8])] {
    try environment.read { txn in
        try txn.withCursor(dbi) { cursor in
            var records: [([UInt8], [UInt8])] = []
            var entry = try cursor.first()
            while let current = entry {
                records.append((Array(current.key), Array(current.value)))
                entry = try cursor.next()
            }
            return records
        }
    }
}

/// Record keys as text, for readable expectations.
func recordKeyStrings(_ store: SessionStore) throws -> [String] {
    try allRecords(store).map { String(decoding: $0.0, as: UTF8.self) }
}

/// Runs an executable built by this package and returns its exit status and output.
///
/// - Parameters:
///   - launcher: a command that runs the product, such as `["runuser", "-u", "nobody", "--"]`.
///   - environment: variables added to this process's environment for the child.
@discardableResult
func runProduct(_ name: String, _ arguments: [String], launcher: [String] = [], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
    let child = try startProduct(name, arguments, launcher: launcher, environment: environment)
    return child.wait()
}

/// A product started by ``startProduct(_:_:launcher:environment:)``, its output read when it ends.
struct StartedProduct {
    let process: Process
    let pipe: Pipe

    /// Waits for the process to end and returns its exit status and output.
    func wait() -> (status: Int32, output: String) {
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

/// Starts an executable built by this package (see ``runProduct(_:_:launcher:environment:)``) without waiting.
func startProduct(_ name: String, _ arguments: [String], launcher: [String] = [], environment: [String: String] = [:]) throws -> StartedProduct {
    let process = Process()
    if let command = launcher.first {
        process.executableURL = URL(fileURLWithPath: command)
        process.arguments = Array(launcher.dropFirst()) + [productURL(name).path] + arguments
    } else {
        process.executableURL = productURL(name)
        process.arguments = arguments
    }
    if !environment.isEmpty {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    return StartedProduct(process: process, pipe: pipe)
}

/// The path of an executable product built beside the test bundle.
func productURL(_ name: String) -> URL {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    let exe = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "")
    return exe.deletingLastPathComponent().appendingPathComponent(name)
}

/// Runs `body` on a thread of its own and waits at most `seconds` for it.
///
/// - Returns: `body`'s result, or nil when it did not finish in time (the thread is left
///   behind: the caller records the hang, and the process ends with the test run).
func finishing<R: Sendable>(within seconds: Double, _ body: @escaping @Sendable () throws -> R) -> Result<R, any Error>? {
    let done = DispatchSemaphore(value: 0)
    let box = Mutex<Result<R, any Error>?>(nil)
    let thread = Thread {
        let result = Result { try body() }
        box.withLock { $0 = result }
        done.signal()
    }
    thread.start()
    guard done.wait(timeout: .now() + seconds) == .success else { return nil }
    return box.withLock { $0 }
}
