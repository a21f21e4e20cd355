import Foundation
import Synchronization

/// The C helpers of the I/O fault and power-loss scenarios (Tools/FaultShim), compiled at
/// run time: the LD_PRELOAD fault shim (`faultshim.c`), the power-loss journal shim
/// (`powerloss.c`) and the store checker (`storecheck.c`, linked with LMDB).
///
/// Each is built once per source version into the temporary directory and reused by later
/// runs. The compiler is the first that works of: `$CC`; `clang`, `cc`, `gcc` on `PATH`;
/// the `clang` beside the `swift` driver on `PATH` (Swift toolchains ship one); and
/// `/opt/swift/usr/bin/clang`, `/usr/bin/clang`. When none works the scenarios that need
/// them fail, naming every candidate and its error: they are never skipped.
enum FaultShim {
    private static let built = Mutex<[String: Result<String, ChildError>]>([:])

    /// The path of the compiled fault shim (a shared library for LD_PRELOAD).
    static func library() throws -> String {
        try compiled("faultshim.c", shared: true)
    }

    /// The path of the compiled power-loss journal shim (a shared library for LD_PRELOAD).
    static func powerLossLibrary() throws -> String {
        try compiled("powerloss.c", shared: true)
    }

    /// The path of the compiled store checker (an executable linked with LMDB).
    static func storeCheck() throws -> String {
        try compiled("storecheck.c", shared: false)
    }

    private static func compiled(_ name: String, shared: Bool) throws -> String {
        try built.withLock { cache in
            if cache[name] == nil { cache[name] = compile(name, shared: shared) }
            return try cache[name]!.get()
        }
    }

    /// The directory of the C sources, found from this file's path in the repository.
    static var sourceDirectory: String {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Tools/FaultShim").path
    }

    /// Compiles `name` to `<tmp>/sessionstore-<name>-<uid>-<hash of the source and shim.h>[.so]`, or
    /// reuses that file when an earlier run built the same source.
    private static func compile(_ name: String, shared: Bool) -> Result<String, ChildError> {
        let source = sourceDirectory + "/" + name
        guard let sourceBytes = FileManager.default.contents(atPath: source) else {
            return .failure(ChildError("the C source is missing at \(source)"))
        }
        // The shared header counts too: a change there must not reuse an old build.
        let header = FileManager.default.contents(atPath: sourceDirectory + "/shim.h") ?? Data()
        let hash = (sourceBytes + header).reduce(UInt64(1469598103934665603)) { ($0 ^ UInt64($1)) &* 1099511628211 }
        let stem = name.replacingOccurrences(of: ".c", with: "")
        let output = NSTemporaryDirectory() + "sessionstore-\(stem)-\(getuid())-\(String(hash, radix: 16))" + (shared ? ".so" : "")
        if FileManager.default.fileExists(atPath: output) { return .success(output) }
        let partial = output + ".\(getpid()).partial"
        let arguments = shared
            ? ["-shared", "-fPIC", "-O1", "-o", partial, source, "-ldl", "-lpthread"]
            : ["-O1", "-o", partial, source, "-llmdb"]
        var attempts: [String] = []
        for compiler in candidates() {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: compiler)
            process.arguments = arguments
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = errors
            do {
                try process.run()
            } catch {
                attempts.append("\(compiler): \(error)")
                continue
            }
            let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            if process.terminationStatus == 0 && rename(partial, output) == 0 {
                print("fault shim: compiled \(source) with \(compiler) to \(output)")
                return .success(output)
            }
            unlink(partial)
            attempts.append("\(compiler): exit \(process.terminationStatus): \(text.prefix(400))")
        }
        return .failure(ChildError("cannot compile \(source); tried: \(attempts.isEmpty ? "no compiler found" : attempts.joined(separator: "; ")). Install clang or gcc (and liblmdb-dev), or set CC"))
    }

    /// Compilers to try, in order, existing and executable.
    private static func candidates() -> [String] {
        let environment = ProcessInfo.processInfo.environment
        let path = (environment["PATH"] ?? "").split(separator: ":").map(String.init)
        var names: [String] = []
        if let cc = environment["CC"], !cc.isEmpty {
            names.append(cc.contains("/") ? cc : path.map { $0 + "/" + cc }.first(where: isExecutable) ?? cc)
        }
        for name in ["clang", "cc", "gcc"] {
            if let found = path.map({ $0 + "/" + name }).first(where: isExecutable) { names.append(found) }
        }
        if let swift = path.map({ $0 + "/swift" }).first(where: isExecutable) {
            let resolved = URL(fileURLWithPath: swift).resolvingSymlinksInPath().deletingLastPathComponent()
            names.append(resolved.appendingPathComponent("clang").path)
        }
        names += ["/opt/swift/usr/bin/clang", "/usr/bin/clang", "/usr/bin/cc"]
        var seen: Set<String> = []
        return names.filter { isExecutable($0) && seen.insert($0).inserted }
    }

    private static func isExecutable(_ path: String) -> Bool {
        FileManager.default.isExecutableFile(atPath: path)
    }
}
