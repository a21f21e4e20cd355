import CrashWorkload
import Foundation
import Synchronization
import Testing

/// One crash or fault scenario: a name, how many iterations a run does, and one iteration.
///
/// To add a scenario, write a type conforming to this protocol and append it to
/// ``CrashScenarios/all``. An iteration gets a fresh seed in its ``ScenarioContext``,
/// takes every random choice from `context.random`, reports problems through
/// `context.check` / `context.record` (which prefix the seed) and adds what it did to
/// `context.tally`.
protocol CrashScenario: Sendable {
    /// A short name, used in messages, in the summary and by `SESSIONSTORE_SCENARIO`.
    var name: String { get }
    /// How many iterations a normal run does.
    var iterations: Int { get }
    /// Runs one iteration.
    func run(_ context: ScenarioContext) async throws
}

/// What scenarios did, summed over iterations, for the summary line.
struct Tally: Sendable {
    /// Iterations run.
    var iterations = 0
    /// SIGKILLs of a child doing store work (not of idle helpers).
    var kills = 0
    /// Writes (multi-key batches, ends) the children acknowledged.
    var acknowledged = 0
    /// Acknowledged writes missing afterwards (must be 0).
    var lost = 0
    /// Multi-key writes found partly applied (must be 0).
    var torn = 0
    /// Every other problem an inspection found (must be 0).
    var unexpected = 0
    /// Records scanned by the inspections.
    var records = 0
    /// Keys loaded twice through the API and compared with the scan.
    var cacheChecks = 0
    /// I/O faults injected.
    var faultsInjected = 0
    /// How each injected fault was reported, one entry per fault kind.
    var faultReports: [String] = []
    /// Named counters a scenario wants in its line (for example how often a kill landed
    /// inside an `end()`).
    var counters: [String: Int] = [:]
    /// Largest values a scenario wants in its line.
    var maxima: [String: Int] = [:]

    mutating func add(_ counts: InspectionCounts) {
        lost += counts.lost
        torn += counts.torn
        unexpected += counts.unexpected
        records += counts.records
        cacheChecks += counts.cacheChecks
    }

    mutating func count(_ name: String, _ amount: Int = 1) { counters[name, default: 0] += amount }
    mutating func maximum(_ name: String, _ value: Int) { maxima[name] = max(maxima[name] ?? value, value) }

    mutating func merge(_ other: Tally) {
        iterations += other.iterations
        kills += other.kills
        acknowledged += other.acknowledged
        lost += other.lost
        torn += other.torn
        unexpected += other.unexpected
        records += other.records
        cacheChecks += other.cacheChecks
        faultsInjected += other.faultsInjected
        faultReports += other.faultReports
        for (name, value) in other.counters { counters[name, default: 0] += value }
        for (name, value) in other.maxima { maximum(name, value) }
    }
}

/// One iteration's seed, random source and tally, and the way to report a failure.
///
/// Every failure message starts with the scenario, iteration and seed, and ends with the
/// command that replays the iteration.
// @unchecked Sendable: an iteration runs on one task; the context is not shared.
final class ScenarioContext: @unchecked Sendable {
    let scenario: String
    let iteration: Int
    let seed: UInt64
    var random: SeededRandom
    var tally = Tally()
    private(set) var failures = 0

    init(scenario: String, iteration: Int, seed: UInt64) {
        self.scenario = scenario
        self.iteration = iteration
        self.seed = seed
        random = SeededRandom(seed: seed)
    }

    /// The prefix of every message: scenario, iteration, seed.
    var label: String { "[\(scenario) iteration \(iteration) seed \(seed)]" }

    /// The command that replays this iteration.
    var replay: String {
        "replay: SESSIONSTORE_SCENARIO=\(scenario) SESSIONSTORE_SEED=\(seed) swift test --scratch-path .build-crash --filter IntegrationTests"
    }

    /// Records a test failure with the seed unless `condition` holds.
    func check(_ condition: Bool, _ message: @autoclosure () -> String, sourceLocation: SourceLocation = #_sourceLocation) {
        if !condition { fail(message(), sourceLocation: sourceLocation) }
    }

    /// Records a test failure with the seed.
    ///
    /// With `knownIssue`, the failure is a defect of the code under test that the scenario
    /// recognizes and an open issue tracks: it is recorded as a known issue (shown, counted
    /// as `known-issue-<name>` in the summary, not failing the test and not stopping the
    /// scenario) unless `SESSIONSTORE_STRICT_KNOWN_ISSUES=1`.
    func fail(_ message: String, knownIssue: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
        let comment = Comment(rawValue: "\(label) \(message)\n\(replay)")
        if let knownIssue, !RunSettings.strictKnownIssues {
            tally.count("known-issue-\(knownIssue)")
            withKnownIssue(Comment(rawValue: knownIssue), sourceLocation: sourceLocation) {
                Issue.record(comment, sourceLocation: sourceLocation)
            }
            return
        }
        failures += 1
        Issue.record(comment, sourceLocation: sourceLocation)
    }

    /// Adds an inspection's counts to the tally and fails, listing the problems, unless clean.
    func record(_ counts: InspectionCounts, after what: String, knownIssue: String? = nil,
                sourceLocation: SourceLocation = #_sourceLocation) {
        if knownIssue != nil && !RunSettings.strictKnownIssues && !counts.clean {
            // A known defect's findings are counted apart, so the summary's loss counts stay
            // those of the checks that must hold.
            tally.records += counts.records
            tally.cacheChecks += counts.cacheChecks
            tally.count("known-issue-lost", counts.lost)
            tally.count("known-issue-torn", counts.torn)
        } else {
            tally.add(counts)
        }
        if !counts.clean {
            fail("after \(what): lost \(counts.lost), torn \(counts.torn), other problems \(counts.unexpected):\n  "
                 + counts.summary, knownIssue: knownIssue, sourceLocation: sourceLocation)
        }
    }

    /// A random integer in `range`.
    func int(_ range: Range<Int>) -> Int { Int.random(in: range, using: &random) }
    func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &random) }
    /// A random duration between `low` and `high` milliseconds.
    func milliseconds(_ low: Int, _ high: Int) -> Duration { .milliseconds(int(low...high)) }
}

/// Settings read from the environment.
enum RunSettings {
    static let environment = ProcessInfo.processInfo.environment

    /// `SESSIONSTORE_KILL_ITERATIONS`: iterations of the kill loop (default 100).
    static var killIterations: Int { max(1, Int(environment["SESSIONSTORE_KILL_ITERATIONS"] ?? "") ?? 100) }
    /// `SESSIONSTORE_GROWTH_ITERATIONS`: iterations of the map growth / end() scenario
    /// (default: 30 % of the kill iterations).
    static var growthIterations: Int {
        Int(environment["SESSIONSTORE_GROWTH_ITERATIONS"] ?? "") ?? max(1, killIterations * 3 / 10)
    }
    /// `SESSIONSTORE_POWER_ITERATIONS`: iterations of the durable power-loss loop (default
    /// 120; the relaxed and growth loops run a third and a fifth of it, each iteration one or
    /// two losses, and the creation scenarios add every step of a store's creation).
    static var powerIterations: Int { max(1, Int(environment["SESSIONSTORE_POWER_ITERATIONS"] ?? "") ?? 120) }
    /// `SESSIONSTORE_STRICT_KNOWN_ISSUES=1`: fail on the defects scenarios report as known issues.
    static var strictKnownIssues: Bool { environment["SESSIONSTORE_STRICT_KNOWN_ISSUES"] == "1" }
    /// `SESSIONSTORE_SEED`: replay one iteration with this seed.
    static var replaySeed: UInt64? { environment["SESSIONSTORE_SEED"].flatMap { UInt64($0) } }
    /// `SESSIONSTORE_SCENARIO`: run only the scenario of this name.
    static var onlyScenario: String? { environment["SESSIONSTORE_SCENARIO"].flatMap { $0.isEmpty ? nil : $0 } }
    /// `SESSIONSTORE_RUN_SEED`: the seed the iterations' seeds derive from (random by default).
    static let runSeed: UInt64 = environment["SESSIONSTORE_RUN_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64.max)
    /// `SESSIONSTORE_SUMMARY_FILE`: a file the summary lines are appended to.
    static var summaryFile: String? { environment["SESSIONSTORE_SUMMARY_FILE"] }
}

/// Runs scenarios iteration by iteration and prints their summary lines.
enum ScenarioRunner {
    private struct Board {
        var finished = 0
        var tallies: [(String, Tally)] = []
        var seconds = 0.0
    }
    private static let board = Mutex(Board())

    /// Runs every iteration of `scenario` (or the one `SESSIONSTORE_SEED` names), then
    /// prints its summary line, and the total line once every scenario has run.
    static func run(_ scenario: any CrashScenario) async {
        defer { finish() }
        if let only = RunSettings.onlyScenario, only != scenario.name {
            if !CrashScenarios.all.contains(where: { $0.name == only }) {
                Issue.record("SESSIONSTORE_SCENARIO=\(only) names no scenario; known: \(CrashScenarios.all.map(\.name))")
            }
            print("CRASH-SUMMARY \(scenario.name): not run (SESSIONSTORE_SCENARIO=\(only))")
            return
        }
        let seeds: [UInt64]
        if let replay = RunSettings.replaySeed {
            seeds = [replay]
        } else {
            let salt = scenario.name.utf8.reduce(UInt64(1469598103934665603)) { ($0 ^ UInt64($1)) &* 1099511628211 }
            seeds = (0..<scenario.iterations).map { Workload.mix(RunSettings.runSeed ^ salt &+ UInt64($0)) }
        }
        var tally = Tally()
        var failedIterations = 0
        let start = ContinuousClock.now
        for (iteration, seed) in seeds.enumerated() {
            let context = ScenarioContext(scenario: scenario.name, iteration: iteration, seed: seed)
            do {
                try await scenario.run(context)
            } catch {
                context.fail("the iteration stopped: \(error)")
            }
            for report in ChildProcess.takeSanitizerReports() {
                context.fail("a child process reported a sanitizer finding:\n\(report)")
            }
            context.tally.iterations += 1
            tally.merge(context.tally)
            if context.failures > 0 {
                failedIterations += 1
                if failedIterations >= 3 && seeds.count > 3 {
                    Issue.record(Comment(rawValue: "[\(scenario.name)] stopping after 3 failing iterations of \(seeds.count)"))
                    break
                }
            }
        }
        let elapsed = ContinuousClock.now - start
        let line = summaryLine(scenario.name, tally, seconds: elapsed.seconds)
        emitSummary(line)
        board.withLock {
            $0.tallies.append((scenario.name, tally))
            $0.seconds += elapsed.seconds
        }
    }

    private static func finish() {
        let total: (tallies: [(String, Tally)], seconds: Double)? = board.withLock { board in
            board.finished += 1
            return board.finished == CrashScenarios.all.count ? (board.tallies, board.seconds) : nil
        }
        guard let total else { return }
        var sum = Tally()
        for (_, tally) in total.tallies { sum.merge(tally) }
        var line = "CRASH-SUMMARY total: run-seed=\(RunSettings.runSeed) " + counts(sum)
        line += " io-faults-injected=\(sum.faultsInjected) seconds=\(String(format: "%.1f", total.seconds))"
        emitSummary(line)
        for report in sum.faultReports { emitSummary("CRASH-SUMMARY io-fault: \(report)") }
    }

    private static func summaryLine(_ name: String, _ tally: Tally, seconds: Double) -> String {
        var line = "CRASH-SUMMARY \(name): " + counts(tally)
        if tally.faultsInjected > 0 { line += " io-faults-injected=\(tally.faultsInjected)" }
        for (key, value) in tally.counters.sorted(by: { $0.key < $1.key }) { line += " \(key)=\(value)" }
        for (key, value) in tally.maxima.sorted(by: { $0.key < $1.key }) { line += " max-\(key)=\(value)" }
        line += " seconds=\(String(format: "%.1f", seconds))"
        return line
    }

    /// The counts every summary line shows, from iterations to cache checks.
    private static func counts(_ tally: Tally) -> String {
        "iterations=\(tally.iterations) kills=\(tally.kills)"
            + " writes-acknowledged=\(tally.acknowledged) writes-lost=\(tally.lost) torn-multi-key-writes=\(tally.torn)"
            + " other-problems=\(tally.unexpected) records-checked=\(tally.records) cache-checks=\(tally.cacheChecks)"
    }

    private static func emitSummary(_ line: String) {
        print(line)
        fflush(nil)
        if let path = RunSettings.summaryFile, let handle = FileHandle(forWritingAtPath: path) ?? {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            return FileHandle(forWritingAtPath: path)
        }() {
            handle.seekToEndOfFile()
            handle.write(Data((line + "\n").utf8))
            try? handle.close()
        }
    }
}

/// A fresh directory under the system's temporary directory, removed on `remove()`.
struct TemporaryDirectory {
    let path: String

    init(_ label: String) {
        var template = Array((NSTemporaryDirectory() + "sessionstore-crash-\(label)-XXXXXX").utf8CString)
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

/// The size of the file at `path` in bytes (0 when missing).
func fileSize(_ path: String) -> Int {
    var info = stat()
    return stat(path, &info) == 0 ? Int(info.st_size) : 0
}

/// Sleeps the calling task for `duration`.
func pause(_ duration: Duration) async {
    try? await Task.sleep(for: duration)
}
