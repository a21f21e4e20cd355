import Foundation

import CrashWorkload

/// A value the parent expects, of one of the types the children store.
enum ExpectedValue: Equatable, Sendable {
    case data(Data)
    case int(Int)
}

/// What one run of the workload child reported: its acknowledged batches per task, and
/// the batches it reported as failed.
struct WorkloadRun: Sendable {
    let plan: Workload
    let tasks: Range<Int>
    /// Task → number of acknowledged batches (acknowledgements arrive in order per task).
    var acknowledged: [Int: Int] = [:]
    /// Task → the batch index the child reported as failed (it must not be in the store).
    var failed: [Int: Int] = [:]
    /// Whether the child was killed, so the batch after each task's last acknowledgement
    /// may or may not have committed.
    var killed: Bool
    /// Lines that broke the protocol (an acknowledgement out of order, an unknown task).
    var protocolErrors: [String] = []
    /// Relaxed durability under a power loss: acknowledged batches after the last sync of
    /// data.mdb may be lost, those before it may not (see ``durableAcknowledged``).
    var lossSinceSyncAllowed = false
    /// Task → acknowledged batches at the child's last "power-sync data.mdb" line (printed
    /// by the power-loss shim after a sync returned, so every batch acknowledged before it
    /// committed before the sync began and is durable).
    var durableAcknowledged: [Int: Int] = [:]
    /// CLOCK_MONOTONIC nanoseconds of the last "power-sync data.mdb" line, if any.
    var lastSyncNanoseconds: UInt64?
    /// Sequence number → CLOCK_MONOTONIC nanoseconds of its "ack" line (with `--stamp 1`).
    var ackNanoseconds: [Int: UInt64] = [:]

    init(plan: Workload, tasks: Range<Int>, killed: Bool) {
        self.plan = plan
        self.tasks = tasks
        self.killed = killed
    }

    var acknowledgedCount: Int { acknowledged.values.reduce(0, +) }

    /// The batches of `task` that must be in the store: all acknowledged ones, or with
    /// ``lossSinceSyncAllowed`` those acknowledged before the last sync.
    func required(_ task: Int) -> Int {
        lossSinceSyncAllowed ? durableAcknowledged[task, default: 0] : acknowledged[task, default: 0]
    }

    /// Reads "ack <seq> [<ns>]", "error <seq> <code> | <message>" and
    /// "power-sync data.mdb <ns>" lines.
    mutating func read(_ lines: [String]) {
        for line in lines {
            if line.hasPrefix("power-sync data.mdb ") {
                durableAcknowledged = acknowledged
                lastSyncNanoseconds = UInt64(line.split(separator: " ").last ?? "")
                continue
            }
            let fields = line.split(separator: " ", maxSplits: 2)
            guard fields.count >= 2, fields[0] == "ack" || fields[0] == "error", let seq = Int(fields[1]) else { continue }
            let offset = seq - plan.base
            guard offset >= 0 else { protocolErrors.append("sequence \(seq) below the run's base: \(line)"); continue }
            let task = offset % plan.stride, index = offset / plan.stride
            guard tasks.contains(task) else { protocolErrors.append("sequence \(seq) of unknown task \(task): \(line)"); continue }
            if fields[0] == "ack" {
                let expected = acknowledged[task, default: 0]
                if index != expected || failed[task] != nil {
                    protocolErrors.append("task \(task) acknowledged batch \(index) after \(expected) acknowledged batches\(failed[task] != nil ? " and a failure" : ""): \(line)")
                }
                acknowledged[task] = max(expected, index + 1)
                if fields.count == 3, let time = UInt64(fields[2]) { ackNanoseconds[seq] = time }
            } else if failed[task] == nil {
                if index != acknowledged[task, default: 0] {
                    protocolErrors.append("task \(task) reported batch \(index) as failed after \(acknowledged[task, default: 0]) acknowledged batches: \(line)")
                }
                failed[task] = index
            }
        }
    }
}

/// What one run of the ender task reported: scopes filled and ended, in order.
struct EnderRun: Sendable {
    let plan: EnderWorkload
    var filled: Set<Int> = []
    var ended: [Int: Int] = [:]
    var protocolErrors: [String] = []

    mutating func read(_ lines: [String]) {
        for line in lines {
            let fields = line.split(separator: " ")
            if fields.count == 2, fields[0] == "filled", let number = Int(fields[1]) {
                if number != filled.count { protocolErrors.append("scope \(number) filled out of order: \(line)") }
                filled.insert(number)
            } else if fields.count == 3, fields[0] == "ended", let number = Int(fields[1]), let count = Int(fields[2]) {
                if !filled.contains(number) { protocolErrors.append("scope \(number) ended before it was filled: \(line)") }
                ended[number] = count
            }
        }
    }
}

/// A small deterministic random generator (SplitMix64), so a seed replays an iteration.
struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Workload.mix(state)
    }
}
