import CrashWorkload
import Foundation
import Testing
@testable import SessionStore

/// A disk write or sync of data.mdb fails under a child that commits multi-key batches;
/// the failure must reach its callers, later writes must be refused until a reopen, and
/// the store must hold exactly the acknowledged writes.
///
/// The child (mode `faults`) warms up, arms the fault, commits from `tasks` concurrent
/// tasks until the first error, then tries more writes, a load and a close, reopens the
/// store in the same process and writes again. The fault is either the LD_PRELOAD shim
/// (Tools/FaultShim) failing the Nth call of one class on data.mdb, or RLIMIT_FSIZE
/// stopping the file's growth (EFBIG or a short write).
///
/// Checks:
/// - a fault was injected, and the commit it hit failed with `.ioFailure` for its callers:
///   every error of the armed phase is `.ioFailure`, none is reported as success;
/// - every later write before the reopen is refused with `.ioFailure` and a message that
///   says to reopen; after a sticky sync failure `close()` reports it too;
/// - except when a write ran out of space (`ENOSPC`, `EDQUOT`, `EFBIG`): the failed commit
///   says so, nothing is refused, and the later writes succeed without a reopen (after a
///   failed meta page write the store reopens its environment itself); under RLIMIT_FSIZE,
///   which stays while those writes run, each later write succeeds or fails again;
/// - after the reopen writes succeed again;
/// - the parent's inspection: every acknowledged batch is present, every batch reported
///   as failed is absent, nothing is torn, the cache agrees with the scan.
///   "Failed means absent" holds for every fault here because LMDB writes a commit's
///   meta page only after its data pages were written and synced, and a failed meta
///   write leaves the previous meta page in place; in relaxed mode a failed periodic
///   sync fails no commit, and the acknowledged commits it covered stay readable.
struct IOFaultScenario: CrashScenario {
    /// How the disk fails.
    enum Fault: Sendable {
        /// The shim fails the Nth call of `kind` (data-write, meta-write, sync) with `errno`.
        case shim(kind: String, errno: String, sticky: Bool)
        /// RLIMIT_FSIZE set just above data.mdb's size.
        case fileSizeLimit
    }

    let name: String
    let fault: Fault
    /// Concurrent writing tasks in the child (more than one exercises group commit).
    var tasks = 1
    /// Relaxed durability with this sync interval in milliseconds (0: durable).
    var relaxedMilliseconds = 0
    var iterations: Int { 2 }

    /// Whether the fault is a write running out of space, which the store survives in-process.
    var outOfSpace: Bool {
        switch fault {
        case .shim(let kind, let errno, _): kind != "sync" && ["ENOSPC", "EDQUOT", "EFBIG"].contains(errno)
        case .fileSizeLimit: true
        }
    }

    func run(_ context: ScenarioContext) async throws {
        let directory = TemporaryDirectory("fault")
        defer { directory.remove() }
        let path = directory.child("store")
        var plan = Workload(seed: context.seed, base: 0, stride: tasks + 3)
        var options = ["tasks": "\(tasks)", "warmup": "6", "refused": "4", "after": "4"]
        var environment: [String: String] = [:]
        var sticky = false
        var faultName: String
        switch fault {
        case .shim(let kind, let errno, let isSticky):
            sticky = isSticky
            let nth = kind == "data-write" ? context.int(1...10) : context.int(1...4)
            environment = ["LD_PRELOAD": try FaultShim.library(), "FAULTSHIM_CLASS": kind, "FAULTSHIM_NTH": "\(nth)",
                           "FAULTSHIM_ERRNO": errno, "FAULTSHIM_STICKY": isSticky ? "1" : "0"]
            if isSticky { options["close-while-broken"] = "1" }
            faultName = "\(kind) \(errno) #\(nth)\(isSticky ? " and every later one" : "")"
        case .fileSizeLimit:
            plan.minLength = 2_000
            plan.maxLength = 9_000
            let slack = context.int(4...64) << 10
            options["fsize-slack"] = "\(slack)"
            faultName = "RLIMIT_FSIZE at data.mdb's size + \(slack >> 10) KiB"
        }
        if relaxedMilliseconds > 0 {
            options["relaxed-ms"] = "\(relaxedMilliseconds)"
            options["limit"] = "200000"
        }
        options.merge(plan.childOptions) { $1 }

        let child = try ChildProcess("faults", path: path, seed: context.seed, options: options, environment: environment)
        defer { child.terminate() }
        let (status, lines) = try child.finish(timeout: .seconds(180))
        let transcript = "\n  child output (last lines): \(lines.suffix(12).joined(separator: "\n    "))\n  stderr: \(child.standardError.suffix(800))"
        guard status == 0, lines.last == "done" else {
            context.fail("the faults child did not finish normally (wait status \(status))\(transcript)")
            return
        }

        // Split the transcript by phase.
        var phase = ""
        var byPhase: [String: [String]] = [:]
        var injected: [String] = []
        for line in lines {
            if line.hasPrefix("phase ") { phase = String(line.dropFirst(6)); continue }
            if line.hasPrefix("fault ") { injected.append(line); continue }
            byPhase[phase, default: []].append(line)
        }
        let armed = byPhase["armed", default: []]
        let refused = byPhase["refused", default: []]
        let reopened = byPhase["reopened", default: []]
        let armedErrors = armed.filter { $0.hasPrefix("error ") }.map(ErrorLine.init)
        let firstError = armedErrors.first

        if case .shim = fault {
            context.check(!injected.isEmpty, "the shim injected no fault (\(faultName))\(transcript)")
        }
        context.check(!armed.contains("no-fault"), "no write failed after arming \(faultName)\(transcript)")
        context.check(firstError != nil, "no write reported the fault \(faultName)\(transcript)")
        for error in armedErrors where error.code != "ioFailure" {
            context.fail("a write failed with \(error.code), not ioFailure, after \(faultName): \(error.message)\(transcript)")
        }
        let commitFailures = armedErrors.filter { !$0.isRefusal }
        if relaxedMilliseconds == 0 {
            context.check(!commitFailures.isEmpty, "no commit failed with the fault itself (every error was a refusal)\(transcript)")
        }
        let recovers: Bool
        if outOfSpace, case .shim = fault {
            // The failed commit says it ran out of space (or, if LMDB turned a short write into
            // EIO, that the disk failed: then the refusal rules below apply as for EIO).
            recovers = commitFailures.first?.isOutOfSpace == true
            context.check(recovers, "after \(faultName), the failed commit did not say it ran out of space: \(commitFailures.first?.message ?? "none")\(transcript)")
        } else {
            recovers = outOfSpace && commitFailures.first?.isOutOfSpace == true
        }

        let refusedWrites = refused.filter { $0.hasPrefix("ack ") || $0.hasPrefix("error ") }
        for line in refusedWrites {
            let error = line.hasPrefix("error ") ? ErrorLine(line) : nil
            if recovers, case .shim = fault {
                // Out of space once: the store goes on, without a reopen.
                context.check(error == nil, "after \(faultName), a later write failed instead of succeeding without a reopen: \(line)\(transcript)")
            } else if recovers {
                // The file size limit stays: a write may run out of space again, but nothing is refused for it.
                context.check(error == nil || error!.isOutOfSpace || (error!.code == "ioFailure" && error!.message.contains("reopen")),
                              "after \(faultName), a later write failed other than by running out of space again: \(line)\(transcript)")
            } else {
                // Refused until reopened.
                context.check(error?.code == "ioFailure" && error?.message.contains("reopen") == true,
                              "after \(faultName), a write before the reopen was not refused with ioFailure and a message saying to reopen: \(line)\(transcript)")
            }
        }
        context.check(refusedWrites.count == 4, "expected 4 writes between the failure and the reopen, saw \(refusedWrites.count)\(transcript)")
        let load = refused.first { $0.hasPrefix("load ") } ?? "load (none)"
        let loadAnswered = load == "load ok" || load.hasPrefix("load error ioFailure")
        let loadMessage = "after \(faultName), loading an acknowledged value gave \"\(load)\"; expected the value or an ioFailure that says to reopen"
        context.check(loadAnswered, loadMessage + transcript)
        let closes = (refused + reopened).filter { $0.hasPrefix("close ") }
        var lostRelaxedSync = false
        if relaxedMilliseconds > 0, case .shim("sync", _, _) = fault { lostRelaxedSync = true }
        if sticky {
            context.check(closes.first?.hasPrefix("close error ioFailure") == true,
                          "close() while the disk still fails did not report ioFailure: \(closes)\(transcript)")
        } else if lostRelaxedSync {
            // Writes acknowledged before the failed periodic sync may be lost; close says so.
            context.check(closes.first?.hasPrefix("close error ioFailure") == true,
                          "close() after a failed relaxed sync did not report ioFailure: \(closes)\(transcript)")
        } else {
            context.check(closes.first == "close ok", "close() after \(faultName) (the disk works again) failed: \(closes)\(transcript)")
        }
        context.check(lines.contains("reopen ok"),
                      "reopening after \(faultName) failed\(transcript)")
        let afterAcks = reopened.filter { $0.hasPrefix("ack ") }.count
        context.check(afterAcks == 4, "after the reopen only \(afterAcks) of 4 writes were acknowledged: \(reopened)\(transcript)")

        // The store holds exactly the acknowledged writes.
        var run = WorkloadRun(plan: plan, tasks: 0..<(tasks + 3), killed: false)
        run.read(lines)
        var expectations = StoreExpectations()
        expectations.workloads = [run]
        let (counts, _) = try inspectStore(at: path, expectations) { store, expectations in
            try parentWrites(store, &expectations, round: 0, seed: context.seed)
        }
        context.record(counts, after: "\(faultName)")

        let count = injected.isEmpty ? (firstError == nil ? 0 : 1) : injected.count
        context.tally.faultsInjected += count
        context.tally.acknowledged += run.acknowledgedCount
        func short(_ line: String?) -> String { line.map { $0.components(separatedBy: " | ")[0] } ?? "none" }
        let call = injected.first.map { String($0.split(separator: " ")[2]) } ?? "write"
        let lmdbSaid = (commitFailures.first ?? firstError).flatMap { error in
            error.message.range(of: "failed: ").map { String(error.message[$0.upperBound...].dropLast().prefix(60)) }
        } ?? "?"
        var report = "\(name) [seed \(context.seed)]: \(faultName), \(count) injected into \(call)"
        report += relaxedMilliseconds > 0
            ? " → no commit failed (relaxed mode); the periodic sync failed, so the next writes got ioFailure"
            : " → the failing commit's \(commitFailures.count) caller(s) got ioFailure (\(lmdbSaid))"
        if recovers {
            let later = refusedWrites.filter { $0.hasPrefix("ack ") }.count
            report += "; out of space, so nothing refused: \(later)/\(refusedWrites.count) later writes acknowledged without a reopen"
        } else {
            report += "; \(armedErrors.count - commitFailures.count) concurrent + \(refusedWrites.count) later writes refused with ioFailure until reopen"
        }
        report += "; \(short(load)); \(short(closes.first)); reopen ok, \(afterAcks)/4 writes acknowledged after it"
        report += "; lost \(counts.lost), torn \(counts.torn), other problems \(counts.unexpected)"
        context.tally.faultReports.append(report)
    }
}

/// An "error <seq> <code> | <message>" line of the child.
struct ErrorLine {
    var code: String
    var message: String

    init(_ line: String) {
        let fields = line.split(separator: " ", maxSplits: 3)
        code = fields.count > 2 ? String(fields[2]) : "?"
        message = line.components(separatedBy: " | ").dropFirst().joined(separator: " | ")
    }

    /// Whether this is the writer refusing a write after an earlier failure (as opposed to
    /// the failing commit itself).
    var isRefusal: Bool { message.contains("earlier write failed") }

    /// Whether the error says a write ran out of space (the store goes on).
    var isOutOfSpace: Bool { code == "ioFailure" && message.contains("out of space") && !isRefusal }
}
