import Foundation

// The twin of the formulas in Tools/CrashChild/main.swift: the child writes what these
// compute and the parent recomputes each value to compare it byte for byte. Change both.

/// The keys and values of the crash child's writing tasks, computed from sequence numbers.
///
/// Task `t` commits batch `k` with sequence number `base + t + k * stride`: three values
/// (`w<seq>-a`, `w<seq>-b` in session `s<seq % sessions>`, `w<seq>-c` in its instance
/// `i<seq % instances>`) and the task's last-sequence key `last-<base>-t<t>` in session
/// `tasks`; with `retire`, every fifth batch also removes the task's batch from two steps
/// before. A task commits its batches one after another, so the store holds exactly the
/// effect of its first K batches for some K, and the last-sequence key tells which K.
struct Workload: Sendable {
    var seed: UInt64
    var base: Int
    var stride: Int
    var minLength: Int = 16
    var maxLength: Int = 1500
    var sessions: Int = 5
    var instances: Int = 3
    var retire: Bool = true

    static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    static func length(seed: UInt64, seq: Int, part: Int, min: Int, max: Int) -> Int {
        min + Int(mix(seed ^ mix(UInt64(seq) &* 8 &+ UInt64(part))) % UInt64(max - min + 1))
    }

    static func payload(seq: Int, part: Int, length: Int) -> Data {
        var data = Data(count: length)
        data.withUnsafeMutableBytes { (buffer: UnsafeMutableRawBufferPointer) -> Void in
            var state = mix(UInt64(seq) &* 8 &+ UInt64(part))
            var offset = 0
            while offset < length {
                state = mix(state)
                withUnsafeBytes(of: state.littleEndian) { word in
                    for byte in word where offset < length {
                        buffer[offset] = byte
                        offset += 1
                    }
                }
            }
            withUnsafeBytes(of: UInt64(seq).littleEndian) { word in
                for index in 0..<min(8, length) { buffer[index] = word[index] }
            }
            if length > 8 { buffer[8] = UInt8(truncatingIfNeeded: part) }
        }
        return data
    }

    func seq(task: Int, index: Int) -> Int { base + task + index * stride }
    func sessionID(_ seq: Int) -> String { "s\(seq % sessions)" }
    func instanceID(_ seq: Int) -> String { "i\(seq % instances)" }
    func lastKey(task: Int) -> String { "last-\(base)-t\(task)" }
    static let tasksSession = "tasks"
    static let parts = ["a", "b", "c"]

    func value(seq: Int, part: Int) -> Data {
        Self.payload(seq: seq, part: part, length: Self.length(seed: seed, seq: seq, part: part, min: minLength, max: maxLength))
    }

    /// The record of part `part` (0, 1: session; 2: instance) of sequence number `seq`.
    func location(seq: Int, part: Int) -> RecordName {
        let name = "w\(seq)-\(Self.parts[part])"
        return part == 2 ? .instance(sessionID(seq), instanceID(seq), name) : .session(sessionID(seq), name)
    }

    /// Whether batch `index` is removed again by batch `index + 2`.
    func isRetired(index: Int, committed: Int) -> Bool {
        retire && (index + 2) % 5 == 4 && index + 2 < committed
    }

    /// The options that make the child compute the same workload.
    var childOptions: [String: String] {
        ["base": "\(base)", "stride": "\(stride)", "min": "\(minLength)", "max": "\(maxLength)",
         "sessions": "\(sessions)", "instances": "\(instances)", "retire": retire ? "1" : "0"]
    }
}

/// The big scopes the child's ender task fills (one batch) and ends (one `end()`).
struct EnderWorkload: Sendable {
    var seed: UInt64
    var base: Int
    var fill: Int = 240
    var minLength: Int = 500
    var maxLength: Int = 1500

    func sessionID(_ number: Int) -> String { "e\(base)-\(number)" }
    func location(_ number: Int, _ item: Int) -> RecordName {
        item % 3 == 0 ? .session(sessionID(number), "f\(item)") : .instance(sessionID(number), "x\(item % 3)", "f\(item)")
    }
    func seq(_ number: Int, _ item: Int) -> Int { base + number * 10_000 + item }
    func value(_ number: Int, _ item: Int) -> Data {
        let seq = seq(number, item)
        return Workload.payload(seq: seq, part: 5, length: Workload.length(seed: seed, seq: seq, part: 5, min: minLength, max: maxLength))
    }

    var childOptions: [String: String] {
        ["ender": "1", "fill": "\(fill)", "fill-min": "\(minLength)", "fill-max": "\(maxLength)"]
    }
}

/// Where a record lives, by the public API's names.
enum RecordName: Hashable, Sendable, CustomStringConvertible {
    case session(String, String)
    case instance(String, String, String)

    var description: String {
        switch self {
        case .session(let sid, let key): "session/\(sid)/\(key)"
        case .instance(let sid, let iid, let key): "instance/\(sid)/\(iid)/\(key)"
        }
    }
}

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

    init(plan: Workload, tasks: Range<Int>, killed: Bool) {
        self.plan = plan
        self.tasks = tasks
        self.killed = killed
    }

    var acknowledgedCount: Int { acknowledged.values.reduce(0, +) }

    /// Reads "ack <seq>" and "error <seq> <code> | <message>" lines.
    mutating func read(_ lines: [String]) {
        for line in lines {
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
