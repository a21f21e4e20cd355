import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A running `sessionstore-crash-child`: its output lines as they arrive, and signals.
///
/// Spawned with `posix_spawn`, with every descriptor but its three pipes closed in the
/// child, so a child never holds another child's (or another test's) pipe open and end of
/// file on standard output means exactly that this child is gone. Standard input stays
/// open until ``terminate()``; the child exits when it closes, so none outlives the test.
// @unchecked Sendable: the mutable state below `inputWriter` is guarded by
// `condition`; the rest is immutable after init.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    let mode: String
    private let inputWriter: Int32
    private let condition = NSCondition()
    private var lines: [String] = []
    private var partial: [UInt8] = []
    private var outputClosed = false
    private var errorText: [UInt8] = []
    private var errorClosed = false
    private var exitStatus: Int32?
    private var inputClosed = false
    private var sanitizerChecked = false

    /// Starts `sessionstore-crash-child <mode> <path> <seed> --name value ...`.
    init(_ mode: String, path: String, seed: UInt64, options: [String: String] = [:],
         environment: [String: String] = [:]) throws {
        self.mode = mode
        var arguments = [ChildProcess.executable.path, mode, path, String(seed)]
        for (name, value) in options.sorted(by: { $0.key < $1.key }) { arguments += ["--" + name, value] }
        var env = ProcessInfo.processInfo.environment
        for (name, value) in environment { env[name] = value }

        let input = try Self.makePipe(), output = try Self.makePipe(), errors = try Self.makePipe()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input.read, 0)
        posix_spawn_file_actions_adddup2(&actions, output.write, 1)
        posix_spawn_file_actions_adddup2(&actions, errors.write, 2)
        if let closeFrom = Self.addCloseFrom {
            _ = closeFrom(&actions, 3)
        } else {
            for fd in Int32(3)..<Int32(1024) { posix_spawn_file_actions_addclose(&actions, fd) }
        }
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child: pid_t = 0
        let rc = posix_spawn(&child, arguments[0], &actions, nil, argv, envp)
        close(input.read)
        close(output.write)
        close(errors.write)
        guard rc == 0 else {
            close(input.write)
            close(output.read)
            close(errors.read)
            throw ChildError("cannot start \(arguments[0]): \(String(cString: strerror(rc)))")
        }
        pid = child
        inputWriter = input.write
        startReading(output.read, isOutput: true)
        startReading(errors.read, isOutput: false)
    }

    deinit {
        terminate()
    }

    /// The crash child executable built beside the test bundle.
    static let executable: URL = {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<5 {
            let candidate = directory.appendingPathComponent("sessionstore-crash-child")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        let exe = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "")
        return exe.deletingLastPathComponent().appendingPathComponent("sessionstore-crash-child")
    }()

    // MARK: - Output

    /// Every complete line printed so far.
    var output: [String] {
        condition.withLock { lines }
    }

    /// What the child printed on standard error so far.
    var standardError: String {
        condition.withLock { String(decoding: errorText, as: UTF8.self) }
    }

    /// Waits until a line at index `start` or later matches `predicate`; nil when the child
    /// closed its output or `timeout` passed first.
    func waitForLine(after start: Int = 0, timeout: Duration, _ predicate: (String) -> Bool) -> (index: Int, line: String)? {
        let deadline = Date().addingTimeInterval(timeout.seconds)
        return condition.withLock { () -> (index: Int, line: String)? in
            var next = start
            while true {
                while next < lines.count {
                    if predicate(lines[next]) { return (next, lines[next]) }
                    next += 1
                }
                if outputClosed { return nil }
                if !condition.wait(until: deadline) && Date() >= deadline {
                    while next < lines.count {
                        if predicate(lines[next]) { return (next, lines[next]) }
                        next += 1
                    }
                    return nil
                }
            }
        }
    }

    /// Waits for the line `text` exactly.
    func waitFor(_ text: String, after start: Int = 0, timeout: Duration) -> Int? {
        waitForLine(after: start, timeout: timeout) { $0 == text }?.index
    }

    // MARK: - Lifetime

    /// Sends `signal` to the child (unless it was already reaped).
    func send(_ signal: Int32) {
        let reaped = condition.withLock { exitStatus != nil }
        if !reaped { kill(pid, signal) }
    }

    /// SIGKILLs the child, reaps it, and returns every line it printed.
    @discardableResult
    func killAndCollect() throws -> [String] {
        send(SIGKILL)
        guard waitForExit(timeout: .seconds(20)) != nil else { throw ChildError("\(mode) child \(pid) did not die after SIGKILL") }
        guard waitForOutputEnd(timeout: .seconds(20)) else { throw ChildError("\(mode) child \(pid): output did not close after it died") }
        return output
    }

    /// Waits for the child to exit by itself and returns its lines, or throws after `timeout`.
    func finish(timeout: Duration) throws -> (status: Int32, lines: [String]) {
        guard let status = waitForExit(timeout: timeout) else {
            let lines = (try? killAndCollect()) ?? output
            throw ChildError("\(mode) child \(pid) did not exit within \(timeout); last lines: \(lines.suffix(5)); stderr: \(standardError.suffix(600))")
        }
        _ = waitForOutputEnd(timeout: .seconds(20))
        return (status, output)
    }

    /// Waits until the child exited and returns its wait status, or nil after `timeout`.
    func waitForExit(timeout: Duration) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let reaped = condition.withLock { () -> Int32? in
                if let status = exitStatus { return status }
                var status: Int32 = 0
                let result = waitpid(pid, &status, WNOHANG)
                if result == pid {
                    exitStatus = status
                    return status
                }
                if result < 0 && errno == ECHILD {
                    exitStatus = -1
                    return -1
                }
                return nil
            }
            if let reaped { return reaped }
            if ContinuousClock.now >= deadline { return nil }
            usleep(2_000)
        }
    }

    /// Kills the child if it still runs, reaps it and closes its standard input. Idempotent.
    func terminate() {
        let alreadyClosed = condition.withLock { () -> Bool in
            defer { inputClosed = true }
            return inputClosed
        }
        if !alreadyClosed { close(inputWriter) }
        if waitForExit(timeout: .zero) == nil {
            send(SIGKILL)
            _ = waitForExit(timeout: .seconds(20))
        }
        _ = waitForOutputEnd(timeout: .seconds(5))
    }

    /// Waits until both output pipes reached end of file, then notes sanitizer reports.
    private func waitForOutputEnd(timeout: Duration) -> Bool {
        let deadline = Date().addingTimeInterval(timeout.seconds)
        let (closed, text, firstLook) = condition.withLock { () -> (Bool, String, Bool) in
            while !(outputClosed && errorClosed) {
                if !condition.wait(until: deadline) && Date() >= deadline { break }
            }
            let firstLook = outputClosed && errorClosed && !sanitizerChecked
            if firstLook { sanitizerChecked = true }
            return (outputClosed, String(decoding: errorText, as: UTF8.self), firstLook)
        }
        if firstLook { Self.noteSanitizerReports(in: text, mode: mode, pid: pid) }
        return closed
    }

    /// Reports of ThreadSanitizer (or another sanitizer) found in children's standard
    /// error since the last ``takeSanitizerReports()``.
    private static let sanitizerReports = Mutex<[String]>([])

    private static func noteSanitizerReports(in text: String, mode: String, pid: pid_t) {
        guard text.contains("WARNING: ThreadSanitizer") || text.contains("ERROR: AddressSanitizer")
                || text.contains("runtime error:") else { return }
        sanitizerReports.withLock { $0.append("\(mode) child \(pid):\n\(text.prefix(4_000))") }
    }

    /// Returns and clears the sanitizer reports of children seen so far.
    static func takeSanitizerReports() -> [String] {
        sanitizerReports.withLock { reports in
            defer { reports.removeAll() }
            return reports
        }
    }

    private func startReading(_ fd: Int32, isOutput: Bool) {
        let thread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                let ended = condition.withLock { () -> Bool in
                    defer { condition.broadcast() }
                    if count <= 0 {
                        if isOutput {
                            if !partial.isEmpty { lines.append(String(decoding: partial, as: UTF8.self)) }
                            partial.removeAll()
                            outputClosed = true
                        } else {
                            errorClosed = true
                        }
                        return true
                    }
                    if isOutput {
                        for byte in buffer[0..<count] {
                            if byte == UInt8(ascii: "\n") {
                                lines.append(String(decoding: partial, as: UTF8.self))
                                partial.removeAll(keepingCapacity: true)
                            } else {
                                partial.append(byte)
                            }
                        }
                    } else if errorText.count < 1 << 20 {
                        errorText.append(contentsOf: buffer[0..<count])
                    }
                    return false
                }
                if ended {
                    close(fd)
                    return
                }
            }
        }
        thread.name = "crash-child-\(isOutput ? "out" : "err")"
        thread.start()
    }

    // MARK: - Plumbing

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+), which Swift's Glibc
    /// module does not declare.
    private static let addCloseFrom: AddCloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np")
        .map { unsafeBitCast($0, to: AddCloseFrom.self) }
    private static let pipe2: Pipe2? = dlsym(nil, "pipe2").map { unsafeBitCast($0, to: Pipe2.self) }

    /// A pipe whose both ends are close-on-exec (the spawn dup2s the child's ends).
    private static func makePipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        if let pipe2 {
            guard pipe2(&fds, O_CLOEXEC) == 0 else { throw ChildError("pipe2: \(String(cString: strerror(errno)))") }
        } else {
            guard pipe(&fds) == 0 else { throw ChildError("pipe: \(String(cString: strerror(errno)))") }
            _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        }
        return (fds[0], fds[1])
    }
}

/// A failure of the harness itself (a child that would not start, die or answer).
struct ChildError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension Duration {
    /// The duration in seconds, as a Double.
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// The duration in whole milliseconds.
    var milliseconds: Int {
        let (seconds, attoseconds) = components
        return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
    }
}
