import CrashWorkload
import Foundation
import Testing
@testable import SessionStore

#if canImport(Glibc)
import Glibc
#endif

/// SIGKILL a child committing multi-key batches from concurrent tasks at a random moment,
/// reopen, and check that nothing acknowledged is lost and nothing is torn.
///
/// One iteration uses a fresh store and one or two kill rounds on it (the second child
/// starts on the store the first one crashed). After each kill the parent reopens the
/// store and runs ``StoreInspection``: the per-task oracle (every acknowledged batch is
/// there, the store holds exactly the first K batches of each task, every batch all or
/// nothing), every record decodes, the cache agrees with a raw scan; then it writes
/// through the API itself and checks again. About one kill in ten lands while the child
/// is still opening (or creating) the store.
///
/// Modes:
/// - `durable`: the default configuration;
/// - `relaxed`: relaxed durability (a sync every 20–200 ms). A SIGKILL kills the process,
///   not the machine, and the kernel keeps what LMDB wrote, so here too nothing
///   acknowledged may be lost;
/// - `growth`: a 256 KiB initial map and values of 2–30 KB, so the map grows again and
///   again, plus an ender task that fills big scopes (one batch) and ends them (one
///   `end()`): the oracle also checks that every scope is fully there or fully gone and
///   that an acknowledged end removed everything.
struct KillLoopScenario: CrashScenario {
    /// The store configuration and workload of the loop (see the type's documentation).
    enum Mode: String, Sendable {
        case durable, relaxed, growth
    }

    var mode = Mode.durable

    var name: String {
        switch mode {
        case .durable: "kill-loop"
        case .relaxed: "kill-loop-relaxed"
        case .growth: "growth-and-end-kill"
        }
    }

    var iterations: Int {
        switch mode {
        case .durable: RunSettings.killIterations
        case .relaxed: max(1, RunSettings.killIterations / 5)
        case .growth: RunSettings.growthIterations
        }
    }

    private var growth: Bool { mode == .growth }

    func run(_ context: ScenarioContext) async throws {
        let directory = TemporaryDirectory(growth ? "growth" : "kill")
        defer { directory.remove() }
        let path = directory.child("store")
        var expectations = StoreExpectations()
        let rounds = context.int(1...2)
        for round in 0..<rounds {
            let tasks = context.int(2...4)
            var plan = Workload(seed: context.seed, base: round * 10_000_000, stride: tasks)
            var options = ["tasks": "\(tasks)"]
            var ender: EnderWorkload?
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
            if mode == .relaxed { options["relaxed-ms"] = "\(context.int(20...200))" }
            options.merge(plan.childOptions) { $1 }

            let child = try ChildProcess("workload", path: path, seed: context.seed, options: options)
            defer { child.terminate() }
            if context.int(0..<10) == 0 {
                // Kill early: possibly while the child creates or opens the store.
                await pause(context.milliseconds(0, 120))
                context.tally.count("early-kills")
            } else {
                guard child.waitFor("ready", timeout: .seconds(60)) != nil else {
                    context.fail("the workload child never became ready: \(child.output.suffix(5)) \(child.standardError.suffix(800))")
                    return
                }
                await pause(context.milliseconds(growth ? 20 : 0, growth ? 450 : 250))
            }
            let lines = try child.killAndCollect()
            context.tally.kills += 1

            let fatal = lines.filter { $0.hasPrefix("error") || $0.hasPrefix("fatal") }
            context.check(fatal.isEmpty, "the child reported errors before the kill: \(fatal.prefix(3)) \(child.standardError.suffix(800))")
            var run = WorkloadRun(plan: plan, tasks: 0..<tasks, killed: true)
            run.read(lines)
            expectations.workloads.append(run)
            context.tally.acknowledged += run.acknowledgedCount
            if let ender {
                var enderRun = EnderRun(plan: ender)
                enderRun.read(lines)
                expectations.enders.append(enderRun)
                context.tally.acknowledged += enderRun.filled.count + enderRun.ended.count
                context.tally.count("scopes-ended", enderRun.ended.count)
                if let last = enderRun.filled.max(), enderRun.ended[last] == nil { context.tally.count("kills-between-fill-and-end") }
            }
            if !FileManager.default.fileExists(atPath: path + "/data.mdb") {
                // Killed before LMDB created its files: nothing to check but that it opens.
                context.tally.count("kills-before-files")
            }
            let dataSize = fileSize(path + "/data.mdb")
            if growth {
                context.tally.maximum("data-mdb-bytes", dataSize)
                if dataSize > 256 << 10 { context.tally.count("rounds-past-initial-map") }
            }

            let reopen = growth ? SessionStore.Configuration(mapSize: 256 << 10) : SessionStore.Configuration()
            let (counts, updated) = try inspectStore(at: path, expectations, configuration: reopen) { store, expectations in
                if growth { context.tally.maximum("map-bytes-at-reopen", store.environment.mapSize) }
                try parentWrites(store, &expectations, round: round, seed: context.seed)
            }
            expectations = updated
            context.record(counts, after: "kill round \(round + 1) of \(rounds) (\(run.acknowledgedCount) batches acknowledged, \(tasks) tasks)")
            if !counts.clean { return }
        }
    }
}
