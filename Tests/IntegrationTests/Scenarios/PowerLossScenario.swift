import CrashWorkload
import Foundation
import Testing
@testable import SessionStore

#if canImport(Glibc)
import Glibc
#endif

/// Cut the power under a child committing multi-key batches: SIGKILL it at a random moment,
/// undo what the disk had not been told to keep (``PowerLoss``, from the journal of the
/// LD_PRELOAD shim Tools/FaultShim/powerloss.c), and check the store a fresh process finds.
///
/// A kill alone cannot see a missing or misplaced sync (the page cache keeps every write);
/// this loop can. One iteration uses a fresh store and one or two rounds on it, shaped like
/// ``KillLoopScenario``. The moment is either a time (after "ready", or early, while the
/// child creates or opens the store) or a journal event the shim kills itself at (a write,
/// a sync, a creation: every step of the commit protocol is hit, not only the long syncs).
/// Each loss takes one of the three ``PowerLoss/Shape``s at random.
///
/// After the loss:
/// - a fresh process (Tools/FaultShim/storecheck.c, raw LMDB) reads every page the
///   environment references and commits writes to a copy of it: it must open, read it all
///   and write (a damaged map or free list would crash that process, not the tests);
/// - the store opens with SessionStore and ``StoreInspection`` checks it: every
///   acknowledged durable batch is there, the store holds exactly the first K batches of
///   each task (no torn multi-key batch), every record decodes, the cache agrees; then the
///   parent writes and checks again;
/// - relaxed mode may lose the batches acknowledged after the last sync of data.mdb
///   (the shim prints "power-sync" after each, in order with the acknowledgements), never
///   one before it; the loss is measured (batches, and milliseconds between the earliest
///   lost acknowledgement and the cut) and must stay within the sync interval plus
///   ``relaxedSlack``.
///
/// Modes: `durable` (the default configuration), `relaxed` (a sync every 20–200 ms),
/// `growth` (a 256 KiB initial map, values of 2–30 KB and an ender task, so the cut often
/// falls in a map growth or an `end()`), and `creation`/`creationRelaxed`: every journal
/// event of creating a new store (directory, its sync, the files, the directory sync,
/// LMDB's first meta pages, the first commit) and of the first batches is a kill point in
/// turn, and each killed state gets all three shapes; the store must then open as a fresh
/// or a complete store, and again after a close (never refused forever).
struct PowerLossScenario: CrashScenario {
    enum Mode: String, Sendable {
        case durable, relaxed, growth, creation, creationRelaxed
    }

    var mode = Mode.durable

    /// How far past the sync interval a relaxed-mode loss may reach: a sync runs when a
    /// commit or the writer thread's timer sees the interval passed, and takes a few
    /// milliseconds on a quiet disk; on a loaded 2-core machine it ran up to 250 ms late.
    static let relaxedSlack = Duration.seconds(1)

    var name: String {
        switch mode {
        case .durable: "power-loss"
        case .relaxed: "power-loss-relaxed"
        case .growth: "power-loss-growth"
        case .creation: "power-loss-creation"
        case .creationRelaxed: "power-loss-creation-relaxed"
        }
    }

    var iterations: Int {
        switch mode {
        case .durable: RunSettings.powerIterations
        case .relaxed: max(1, RunSettings.powerIterations / 3)
        case .growth: max(1, RunSettings.powerIterations / 5)
        case .creation, .creationRelaxed: 1
        }
    }

    private var relaxed: Bool { mode == .relaxed || mode == .creationRelaxed }

    func run(_ context: ScenarioContext) async throws {
        switch mode {
        case .creation, .creationRelaxed: try await runCreation(context)
        default: try await runLoop(context)
        }
    }

    // MARK: - The loop

    private func runLoop(_ context: ScenarioContext) async throws {
        let growth = mode == .growth
        let directory = TemporaryDirectory("power")
        defer { directory.remove() }
        let path = directory.child("store")
        let journal = directory.child("journal")
        try FileManager.default.createDirectory(atPath: journal, withIntermediateDirectories: false)
        var expectations = StoreExpectations()
        let rounds = context.int(1...2)
        for round in 0..<rounds {
            let tasks = context.int(2...4)
            var plan = Workload(seed: context.seed, base: round * 10_000_000, stride: tasks)
            var options = ["tasks": "\(tasks)", "stamp": "1"]
            var ender: EnderWorkload?
            var interval = Duration.zero
            if growth {
                plan.minLength = 2_000
                plan.maxLength = context.int(8_000...30_000)
                options["map-size"] = "\(256 << 10)"
                let enderPlan = EnderWorkload(seed: context.seed, base: round * 10_000_000, fill: context.int(120...300))
                ender = enderPlan
                options.merge(enderPlan.childOptions) { $1 }
            } else {
                plan.maxLength = [200, 1_500, 6_000][context.int(0..<3)]
            }
            if relaxed {
                let milliseconds = context.int(20...200)
                interval = .milliseconds(milliseconds)
                options["relaxed-ms"] = "\(milliseconds)"
            }
            options.merge(plan.childOptions) { $1 }

            // The moment: a journal event (a quarter of the rounds), an early time, or a
            // time after "ready".
            let moment: Moment
            switch context.int(0..<20) {
            case 0..<5: moment = .event(UInt64(round == 0 && context.int(0..<2) == 0 ? context.int(1...12) : context.int(1...600)))
            case 5..<7: moment = .early(context.milliseconds(0, 120))
            default: moment = .afterReady(context.milliseconds(growth ? 20 : 0, growth ? 450 : 250))
            }
            let killed = try await cut(context, path: path, journal: journal, options: options, moment: moment)
            guard let killed else { return }
            let shape = PowerLoss.Shape.allCases[context.int(0..<PowerLoss.Shape.allCases.count)]
            let outcome = try PowerLoss.apply(shape, killed.journal, random: &context.random)
            let known = KnownIssue(relaxed: relaxed, shape)
            tallyLoss(context, outcome, killed)
            if growth {
                let size = fileSize(path + "/data.mdb")
                context.tally.maximum("data-mdb-bytes", size)
                if size > 256 << 10 { context.tally.count("rounds-past-initial-map") }
            }

            var run = WorkloadRun(plan: plan, tasks: 0..<tasks, killed: true)
            run.lossSinceSyncAllowed = relaxed
            run.read(killed.lines)
            expectations.workloads.append(run)
            context.tally.acknowledged += run.acknowledgedCount
            if let ender {
                var enderRun = EnderRun(plan: ender)
                enderRun.read(killed.lines)
                expectations.enders.append(enderRun)
                context.tally.acknowledged += enderRun.filled.count + enderRun.ended.count
                context.tally.count("scopes-ended", enderRun.ended.count)
            }
            let what = "power loss in round \(round + 1) of \(rounds) (\(killed.moment), \(outcome.summary); \(run.acknowledgedCount) batches acknowledged, \(tasks) tasks)"
            // After a failure (known or not) the store is not fit for another round.
            guard checkFreshProcess(context, path: path, after: what, killed.journal, known) else { return }
            let reopen = growth ? SessionStore.Configuration(mapSize: 256 << 10) : SessionStore.Configuration()
            let counts: InspectionCounts
            do {
                let (found, updated) = try inspectStore(at: path, expectations, configuration: reopen) { store, expectations in
                    try parentWrites(store, &expectations, round: round, seed: context.seed)
                }
                counts = found
                expectations = updated
            } catch {
                if known == nil { context.tally.unexpected += 1 }
                context.fail("after \(what): the store does not open: \(error)", knownIssue: known?.rawValue)
                return
            }
            if relaxed { measureRelaxedLoss(context, run, counts, killed, interval: interval, after: what, known) }
            context.record(counts, after: what, knownIssue: known?.rawValue)
            if !counts.clean { return }
        }
    }

    /// Checks the relaxed-mode loss against the sync interval and adds it to the tally.
    private func measureRelaxedLoss(_ context: ScenarioContext, _ run: WorkloadRun, _ counts: InspectionCounts,
                                    _ killed: Killed, interval: Duration, after what: String, _ known: KnownIssue?) {
        guard known == nil else { return }
        // This round's losses only: the inspection lists the earlier rounds' again.
        var counts = counts
        counts.allowedLoss = counts.allowedLoss.filter { $0 >= run.plan.base && $0 < run.plan.base + 10_000_000 }
        context.tally.count("relaxed-losses")
        context.tally.count("relaxed-writes-lost", counts.allowedLoss.count)
        context.tally.maximum("relaxed-writes-lost-at-once", counts.allowedLoss.count)
        let sinceSync = run.lastSyncNanoseconds.map { Int(killed.nanoseconds.subtractingSaturated($0) / 1_000_000) }
        if let sinceSync { context.tally.maximum("relaxed-ms-since-last-sync", sinceSync) }
        guard !counts.allowedLoss.isEmpty else { return }
        context.tally.count("relaxed-losses-with-lost-writes")
        let times = counts.allowedLoss.compactMap { run.ackNanoseconds[$0] }
        guard let earliest = times.min() else {
            context.fail("after \(what): lost acknowledgements \(counts.allowedLoss.prefix(5)) carry no time")
            return
        }
        let window = Duration.nanoseconds(Int64(killed.nanoseconds.subtractingSaturated(earliest)))
        context.tally.maximum("relaxed-loss-window-ms", window.milliseconds)
        context.tally.maximum("relaxed-loss-window-over-interval-ms", (window - interval).milliseconds)
        context.check(window <= interval + Self.relaxedSlack,
                      "after \(what): relaxed mode lost \(counts.allowedLoss.count) acknowledged batches over \(window.milliseconds) ms, more than the sync interval \(interval.milliseconds) ms + \(Self.relaxedSlack.milliseconds) ms")
    }

    // MARK: - Creation, step by step

    /// Kills the child at every journal event of creating a store and of its first batches,
    /// applies each shape to a copy of the killed state, and checks that the store opens.
    private func runCreation(_ context: ScenarioContext) async throws {
        let directory = TemporaryDirectory("power-create")
        defer { directory.remove() }
        let path = directory.child("store")
        let backup = directory.child("store-at-kill")
        let journal = directory.child("journal")
        try FileManager.default.createDirectory(atPath: journal, withIntermediateDirectories: false)
        var stepsAfterReady = 0
        var step: UInt64 = 1
        while stepsAfterReady < 4 && step <= 64 {
            defer { step += 1 }
            try? FileManager.default.removeItem(atPath: path)
            var plan = Workload(seed: context.seed, base: 0, stride: 2)
            plan.maxLength = 600
            var options = ["tasks": "2", "stamp": "1"]
            if relaxed { options["relaxed-ms"] = "\(context.int(20...100))" }
            options.merge(plan.childOptions) { $1 }
            guard let killed = try await cut(context, path: path, journal: journal, options: options, moment: .event(step)) else { return }
            if killed.lines.contains("ready") { stepsAfterReady += 1 }
            if killed.killedAtEvent == nil {
                context.fail("the child was not killed at event \(step): it never reached it (\(killed.lines.suffix(3)))")
                return
            }
            context.tally.count("creation-steps")
            try? FileManager.default.removeItem(atPath: backup)
            if FileManager.default.fileExists(atPath: path) { try FileManager.default.copyItem(atPath: path, toPath: backup) }
            for shape in PowerLoss.Shape.allCases {
                try? FileManager.default.removeItem(atPath: path)
                if FileManager.default.fileExists(atPath: backup) { try FileManager.default.copyItem(atPath: backup, toPath: path) }
                let outcome = try PowerLoss.apply(shape, killed.journal, random: &context.random)
                tallyLoss(context, outcome, killed)
                let known = KnownIssue(relaxed: relaxed, shape)
                var run = WorkloadRun(plan: plan, tasks: 0..<2, killed: true)
                run.lossSinceSyncAllowed = relaxed
                run.read(killed.lines)
                context.tally.acknowledged += run.acknowledgedCount
                let what = "power loss at creation step \(step) (\(killed.moment), \(outcome.summary))"
                // Every step and shape is checked, so that one run lists every failing one.
                guard checkFreshProcess(context, path: path, after: what, killed.journal, known) else { continue }
                var expectations = StoreExpectations()
                expectations.workloads = [run]
                do {
                    let (counts, _) = try inspectStore(at: path, expectations) { store, expectations in
                        try parentWrites(store, &expectations, round: 0, seed: context.seed)
                    }
                    context.record(counts, after: what, knownIssue: known?.rawValue)
                    // Never refused forever: it opens again after the close.
                    let again = try SessionStore(path: path)
                    try again.close()
                } catch {
                    if known == nil { context.tally.unexpected += 1 }
                    context.fail("after \(what): the store does not open: \(error)", knownIssue: known?.rawValue)
                    continue
                }
                if outcome.storeVanished { context.tally.count("creation-losses-store-vanished") }
                if killed.lines.contains("ready") { context.tally.count("creation-losses-after-ready") }
            }
        }
    }

    // MARK: - Known defects

    /// Defects of the code as it stands that this loop finds, reported as known issues
    /// (``ScenarioContext/fail(_:knownIssue:sourceLocation:)``) so that every other check
    /// keeps failing the run; `SESSIONSTORE_STRICT_KNOWN_ISSUES=1` makes them failures.
    enum KnownIssue: String {
        /// Relaxed durability opens LMDB with `MDB_NOSYNC`, which keeps the store consistent
        /// only on a disk that keeps writes in order: when a later meta page reaches the disk
        /// and the pages it points to do not (``PowerLoss/Shape/reorders``), the store is
        /// damaged, refused, or loses or tears batches acknowledged before the last sync.
        case relaxedReordered = "relaxed-reordered"

        /// The known defect any failure after a loss of `shape` in this mode is, if any.
        init?(relaxed: Bool, _ shape: PowerLoss.Shape) {
            guard relaxed && shape.reorders else { return nil }
            self = .relaxedReordered
        }
    }

    // MARK: - One cut

    /// When the power goes.
    enum Moment: CustomStringConvertible {
        /// The shim kills the child at the start of this journal event.
        case event(UInt64)
        /// This long after the start, maybe while the store is created or opened.
        case early(Duration)
        /// This long after the child printed "ready".
        case afterReady(Duration)

        var description: String {
            switch self {
            case .event(let seq): "killed at journal event \(seq)"
            case .early(let delay): "killed \(delay.milliseconds) ms after the start"
            case .afterReady(let delay): "killed \(delay.milliseconds) ms after ready"
            }
        }
    }

    /// A killed child: its output, its journal, when it died.
    struct Killed {
        var lines: [String]
        var journal: PowerLossJournal
        /// CLOCK_MONOTONIC nanoseconds of the kill.
        var nanoseconds: UInt64
        /// The event the shim killed the child at, if it did.
        var killedAtEvent: String?
        var moment: String
    }

    /// Runs the workload child under the power-loss shim and kills it at `moment`; nil
    /// (after a recorded failure) when the child misbehaved.
    func cut(_ context: ScenarioContext, path: String, journal: String, options: [String: String],
             moment: Moment, extraEnvironment: [String: String] = [:]) async throws -> Killed? {
        var environment = ["LD_PRELOAD": try FaultShim.powerLossLibrary(), "POWERLOSS_STORE": path,
                           "POWERLOSS_JOURNAL": journal, "POWERLOSS_SAY_SYNCS": "1"]
        if case .event(let seq) = moment { environment["POWERLOSS_KILL_AT"] = "\(seq)" }
        environment.merge(extraEnvironment) { $1 }
        let child = try ChildProcess("workload", path: path, seed: context.seed, options: options, environment: environment)
        defer { child.terminate() }
        var killTime: UInt64 = 0
        switch moment {
        case .event:
            if child.waitForExit(timeout: .seconds(30)) == nil { killTime = monotonicNanoseconds() }
        case .early(let delay):
            await pause(delay)
            context.tally.count("early-kills")
            killTime = monotonicNanoseconds()
        case .afterReady(let delay):
            guard child.waitFor("ready", timeout: .seconds(60)) != nil else {
                context.fail("the workload child never became ready: \(child.output.suffix(5)) \(child.standardError.suffix(800))")
                return nil
            }
            await pause(delay)
            killTime = monotonicNanoseconds()
        }
        let lines = try child.killAndCollect()
        context.tally.kills += 1
        let fatal = lines.filter { $0.hasPrefix("error") || $0.hasPrefix("fatal") || $0.hasPrefix("power-journal-failed") }
        if !fatal.isEmpty {
            context.fail("the child reported errors before the cut: \(fatal.prefix(3)) \(child.standardError.suffix(800))")
            return nil
        }
        let powerKill = lines.last { $0.hasPrefix("power-kill ") }?.split(separator: " ")
        if let powerKill, powerKill.count == 4, let time = UInt64(powerKill[3]) { killTime = time }
        let journalFile = try PowerLossJournal(directory: journal, pid: child.pid, diedEarly: lines.isEmpty)
        unlink("\(journal)/\(child.pid).journal")
        if killTime == 0 { killTime = max(journalFile.lastRecordNanoseconds, 1) }
        let event = powerKill.map { String($0[2]) }
        var description = moment.description
        if let event { description += " (\(event))" } else if case .event = moment { description += " (not reached; killed after 30 s)" }
        return Killed(lines: lines, journal: journalFile, nanoseconds: killTime, killedAtEvent: event, moment: description)
    }

    /// Adds one loss to the tally.
    private func tallyLoss(_ context: ScenarioContext, _ outcome: PowerLoss.Outcome, _ killed: Killed) {
        context.tally.count("losses")
        context.tally.count("loss-\(outcome.shape.rawValue)")
        context.tally.count("unsynced-writes", outcome.unsyncedWrites)
        context.tally.count("writes-rolled-back", outcome.writesRolledBack)
        if outcome.shape == .tornSectors { context.tally.count("sectors-torn-back", outcome.sectorsRolledBack) }
        context.tally.count("entries-vanished", outcome.entriesVanished.count)
        if outcome.storeVanished { context.tally.count("stores-vanished") }
        if outcome.unsyncedExtensions > 0 { context.tally.count("losses-with-unsynced-file-growth") }
        context.tally.count("files-shrunk-by-loss", outcome.filesShrunk)
        if let event = killed.killedAtEvent { context.tally.count("cut-at-\(event)") }
        if !killed.lines.contains("ready") { context.tally.count("cuts-before-ready") }
        context.tally.maximum("unsynced-writes-at-once", outcome.unsyncedWrites)
    }

    /// Runs the store checker on `path` in its own process; false (after a recorded
    /// failure) when the environment does not open or read whole.
    private func checkFreshProcess(_ context: ScenarioContext, path: String, after what: String,
                                   _ journal: PowerLossJournal, _ known: KnownIssue?) -> Bool {
        guard FileManager.default.fileExists(atPath: path + "/data.mdb") else {
            context.tally.count("fresh-checks-no-data-file")
            return true
        }
        do {
            let (status, output) = try runStoreCheck(path)
            if status == 0 {
                context.tally.count(output.hasPrefix("empty") ? "fresh-checks-empty" : "fresh-checks-ok")
                return true
            }
            // A data file that never held a commit is emptied by SessionStore's open (raw
            // LMDB, here, refuses its torn first meta pages): repaired by the open below.
            let issue = known
            if issue == nil { context.tally.unexpected += 1 }
            var verdict = ""
            if output.hasPrefix("error mdb_env_open ") {
                // LMDB refused the files before mapping them, so SessionStore may try too:
                // what counts is whether it opens them (it may repair what LMDB refuses).
                do {
                    let store = try SessionStore(path: path)
                    try store.close()
                    let (after, checked) = try runStoreCheck(path)
                    if after == 0 {
                        if issue == nil { context.tally.unexpected -= 1 }
                        context.tally.count("fresh-checks-repaired-by-open")
                        return true
                    }
                    verdict = "; SessionStore opened it, yet a fresh process still cannot read it: \(checked)"
                } catch {
                    verdict = "; SessionStore refuses it too: \(error)"
                }
            }
            context.fail("after \(what): a fresh process cannot read the store: \(output)\(verdict)", knownIssue: issue?.rawValue)
        } catch {
            context.fail("after \(what): the store checker did not run: \(error)")
        }
        return false
    }
}

/// Runs Tools/FaultShim/storecheck.c on the store at `path` (reading every page, then
/// committing writes to a copy of data.mdb beside the store): its exit status (-signal when
/// a signal killed it) and its output line.
func runStoreCheck(_ path: String) throws -> (status: Int32, output: String) {
    let scratch = path + ".storecheck"
    try? FileManager.default.removeItem(atPath: scratch)
    try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try FaultShim.storeCheck())
    process.arguments = [path, scratch]
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    try process.run()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    let line = text.trimmingCharacters(in: .whitespacesAndNewlines)
    if process.terminationReason == .uncaughtSignal {
        return (-process.terminationStatus, "storecheck was killed by signal \(process.terminationStatus) (\(String(cString: strsignal(process.terminationStatus)))) \(line)")
    }
    return (process.terminationStatus, line)
}

/// CLOCK_MONOTONIC in nanoseconds (the clock the crash child and the power-loss shim use).
func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

extension UInt64 {
    /// `self - other`, or 0 when `other` is larger.
    func subtractingSaturated(_ other: UInt64) -> UInt64 { self > other ? self - other : 0 }
}
