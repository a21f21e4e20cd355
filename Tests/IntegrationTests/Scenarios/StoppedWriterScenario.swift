import CrashWorkload
import Foundation
import Synchronization
import Testing
@testable import SessionStore

#if canImport(Glibc)
import Glibc
#endif

/// SIGSTOP a child inside a long write transaction, prove it holds LMDB's writer lock,
/// SIGKILL it, and check that the next process's first commit succeeds within a second.
///
/// The child applies one WriteBatch of tens of thousands of values, which takes a few
/// hundred milliseconds inside one write transaction (measured once per run by letting a
/// child finish). It prints "begin" just before `apply`; the parent stops it 10–50 % of
/// that time later. The premise is then checked rather than assumed: a probe process
/// that opens the store (opening commits, so it needs the writer lock) must still be
/// blocked 600 ms after it started. If it is not, the stop missed the transaction and
/// the attempt is repeated with a new delay.
///
/// Three variants (three entries of the scenario list) cover LMDB's two recovery paths:
/// - waiter: the blocked probe itself is the next process; the kill makes its
///   `pthread_mutex_lock` return EOWNERDEAD, and LMDB must recover the robust mutex;
/// - fresh: the probe is killed too and a new process starts after the kill, alone, so
///   it re-initialises the lock file;
/// - fresh-with-holder: as fresh, but a third process keeps the store open throughout,
///   so the lock file is not re-initialised and the new process must recover the mutex.
/// Afterwards the big batch must be all there or not there at all, and the probe's
/// value must be there.
struct StoppedWriterScenario: CrashScenario {
    /// Which process commits next, and whether the lock file is re-initialised.
    enum Variant: String, Sendable {
        case waiter, fresh, freshWithHolder = "fresh-with-holder"
    }

    let variant: Variant
    var name: String { "sigstop-in-write-txn-\(variant.rawValue)" }
    var iterations: Int { 2 }

    /// Values in the big batch (about 12 MB of records).
    static let keys = 60_000
    static let valueSize = 150
    /// The cache is off in the child, so `apply` spends its time in the transaction rather
    /// than in updating the cache after the commit.
    static let childOptions = ["keys": "\(keys)", "size": "\(valueSize)", "cache": "0"]
    private static let calibration = Mutex<Duration?>(nil)

    func run(_ context: ScenarioContext) async throws {
        let applyTime = try await Self.calibrate(seed: context.seed)
        let variant = self.variant.rawValue
        for _ in 0..<6 {
            let directory = TemporaryDirectory("stop")
            defer { directory.remove() }
            let path = directory.child("store")
            // Create the store first, so the probe's open needs only the writer lock.
            try SessionStore(path: path).close()

            let holder = variant == "fresh-with-holder" ? try ChildProcess("hold", path: path, seed: context.seed) : nil
            defer { holder?.terminate() }
            if let holder, holder.waitFor("ready", timeout: .seconds(30)) == nil {
                context.fail("the holder never became ready: \(holder.standardError.suffix(800))")
                return
            }

            let writer = try ChildProcess("big-batch", path: path, seed: context.seed, options: Self.childOptions)
            defer { writer.terminate() }
            guard writer.waitFor("begin", timeout: .seconds(120)) != nil else {
                context.fail("the big-batch child never began: \(writer.output.suffix(5)) \(writer.standardError.suffix(800))")
                return
            }
            let fraction = Double(context.int(10...50)) / 100
            await pause(.milliseconds(Int(Double(applyTime.milliseconds) * fraction)))
            writer.send(SIGSTOP)
            if writer.output.contains(where: { $0.hasPrefix("ack big") }) {
                context.tally.count("stops-after-commit")
                continue
            }

            // Premise: the stopped child holds the writer lock, so a probe cannot open.
            let probe = try ChildProcess("probe", path: path, seed: context.seed)
            defer { probe.terminate() }
            guard probe.waitFor("started", timeout: .seconds(30)) != nil else {
                context.fail("the probe never started: \(probe.standardError.suffix(800))")
                return
            }
            if probe.waitForLine(timeout: .milliseconds(600), { $0 == "opened" || $0.hasPrefix("error") || $0.hasPrefix("fatal") }) != nil {
                context.tally.count("stops-outside-txn (retried)")
                continue
            }
            context.tally.count("stops-inside-txn")

            let next: ChildProcess
            let killedAt: ContinuousClock.Instant
            if variant == "waiter" {
                killedAt = .now
                try writer.killAndCollect()
                next = probe
            } else {
                try probe.killAndCollect()
                killedAt = .now
                try writer.killAndCollect()
                next = try ChildProcess("probe", path: path, seed: context.seed)
            }
            context.tally.kills += 1
            defer { next.terminate() }
            let committed = next.waitForLine(timeout: .seconds(30)) { $0 == "committed" || $0.hasPrefix("error") || $0.hasPrefix("fatal") }
            let elapsed = ContinuousClock.now - killedAt
            context.check(committed?.line == "committed",
                          "the next process (\(variant)) did not commit after the writer was killed: \(next.output) \(next.standardError.suffix(800))")
            context.check(elapsed < .seconds(1),
                          "the next process (\(variant)) needed \(elapsed.milliseconds) ms after the kill to commit; the limit is 1000 ms")
            context.tally.maximum("ms-kill-to-next-commit", elapsed.milliseconds)
            if committed?.line == "committed" { context.tally.acknowledged += 1 }
            _ = try next.finish(timeout: .seconds(30))
            holder?.terminate()

            var expectations = StoreExpectations()
            expectations.present[.session("probe", "p\(context.seed)")] = .int(Int(truncatingIfNeeded: context.seed))
            var group: [RecordName: ExpectedValue] = [:]
            for index in 0..<Self.keys {
                group[.session("big", "k\(index)")] = .data(Workload.payload(seq: index, part: 6, length: Self.valueSize))
            }
            expectations.atomicGroups.append(AtomicGroup(name: "the big batch", records: group, mustBePresent: nil))
            let (counts, _) = try inspectStore(at: path, expectations) { store, expectations in
                let probeValue = try store.session("probe").load(Int.self, for: "p\(context.seed)")
                context.check(probeValue == Int(truncatingIfNeeded: context.seed),
                              "the probe's committed value is missing after the reopen (found \(String(describing: probeValue)))")
                let big = try store.session("big").load(Data.self, for: "k0")
                context.tally.count(big == nil ? "big-batch-absent" : "big-batch-present")
                try parentWrites(store, &expectations, round: 0, seed: context.seed)
            }
            context.record(counts, after: "the writer stopped in its transaction was killed (\(variant))")
            return
        }
        context.fail("no attempt stopped the writer inside its write transaction")
    }

    /// How long applying the big batch takes on this machine, measured once per run.
    static func calibrate(seed: UInt64) async throws -> Duration {
        if let known = calibration.withLock({ $0 }) { return known }
        let directory = TemporaryDirectory("calibrate")
        defer { directory.remove() }
        let path = directory.child("store")
        try SessionStore(path: path).close()
        let child = try ChildProcess("big-batch", path: path, seed: seed, options: childOptions)
        defer { child.terminate() }
        guard let line = child.waitForLine(timeout: .seconds(180), { $0.hasPrefix("ack big") || $0.hasPrefix("error") || $0.hasPrefix("fatal") })?.line,
              let milliseconds = Int(line.split(separator: " ").last ?? "") else {
            throw ChildError("calibration: the big batch did not commit: \(child.output.suffix(3)) \(child.standardError.suffix(800))")
        }
        let measured = Duration.milliseconds(max(milliseconds, 20))
        calibration.withLock { $0 = measured }
        print("sigstop-in-write-txn: applying \(keys) values takes \(milliseconds) ms here")
        return measured
    }
}
