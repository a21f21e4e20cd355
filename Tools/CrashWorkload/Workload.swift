// The crash scenarios' workload formulas, shared by the child that writes the records
// (Tools/CrashChild) and the tests that recompute every expected record byte for byte.
import Foundation

/// The keys and values of the crash child's writing tasks, computed from sequence numbers.
///
/// Task `t` commits batch `k` with sequence number `base + t + k * stride`: three values
/// (`w<seq>-a`, `w<seq>-b` in session `s<seq % sessions>`, `w<seq>-c` in its instance
/// `i<seq % instances>`) and the task's last-sequence key `last-<base>-t<t>` in session
/// `tasks`; with `retire`, every fifth batch also removes the task's batch from two steps
/// before. A task commits its batches one after another, so the store holds exactly the
/// effect of its first K batches for some K, and the last-sequence key tells which K.
public struct Workload: Sendable {
    public var seed: UInt64
    public var base: Int
    public var stride: Int
    public var minLength: Int = 16
    public var maxLength: Int = 1500
    public var sessions: Int = 5
    public var instances: Int = 3
    public var retire: Bool = true

    public init(seed: UInt64, base: Int, stride: Int, minLength: Int = 16, maxLength: Int = 1500,
                sessions: Int = 5, instances: Int = 3, retire: Bool = true) {
        self.seed = seed
        self.base = base
        self.stride = stride
        self.minLength = minLength
        self.maxLength = maxLength
        self.sessions = sessions
        self.instances = instances
        self.retire = retire
    }

    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public static func length(seed: UInt64, seq: Int, part: Int, min: Int, max: Int) -> Int {
        min + Int(mix(seed ^ mix(UInt64(seq) &* 8 &+ UInt64(part))) % UInt64(max - min + 1))
    }

    public static func payload(seq: Int, part: Int, length: Int) -> Data {
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

    public func seq(task: Int, index: Int) -> Int { base + task + index * stride }
    public func sessionID(_ seq: Int) -> String { "s\(seq % sessions)" }
    public func instanceID(_ seq: Int) -> String { "i\(seq % instances)" }
    public func lastKey(task: Int) -> String { "last-\(base)-t\(task)" }
    public static let tasksSession = "tasks"
    public static let parts = ["a", "b", "c"]

    public func value(seq: Int, part: Int) -> Data {
        Self.payload(seq: seq, part: part, length: Self.length(seed: seed, seq: seq, part: part, min: minLength, max: maxLength))
    }

    /// The record of part `part` (0, 1: session; 2: instance) of sequence number `seq`.
    public func location(seq: Int, part: Int) -> RecordName {
        let name = "w\(seq)-\(Self.parts[part])"
        return part == 2 ? .instance(sessionID(seq), instanceID(seq), name) : .session(sessionID(seq), name)
    }

    /// Whether batch `index` is removed again by batch `index + 2`.
    public func isRetired(index: Int, committed: Int) -> Bool {
        retire && (index + 2) % 5 == 4 && index + 2 < committed
    }

    /// The options that make the child compute the same workload.
    public var childOptions: [String: String] {
        ["base": "\(base)", "stride": "\(stride)", "min": "\(minLength)", "max": "\(maxLength)",
         "sessions": "\(sessions)", "instances": "\(instances)", "retire": retire ? "1" : "0"]
    }
}

/// The big scopes the child's ender task fills (one batch) and ends (one `end()`).
public struct EnderWorkload: Sendable {
    public var seed: UInt64
    public var base: Int
    public var fill: Int = 240
    public var minLength: Int = 500
    public var maxLength: Int = 1500

    public init(seed: UInt64, base: Int, fill: Int = 240, minLength: Int = 500, maxLength: Int = 1500) {
        self.seed = seed
        self.base = base
        self.fill = fill
        self.minLength = minLength
        self.maxLength = maxLength
    }

    /// Record `item` of scope `number` lives in the session (item % 3 == 0) or instance x1 / x2.
    public func instanceID(_ item: Int) -> String? { item % 3 == 0 ? nil : "x\(item % 3)" }
    public func sessionID(_ number: Int) -> String { "e\(base)-\(number)" }
    public func location(_ number: Int, _ item: Int) -> RecordName {
        instanceID(item).map { .instance(sessionID(number), $0, "f\(item)") } ?? .session(sessionID(number), "f\(item)")
    }
    public func seq(_ number: Int, _ item: Int) -> Int { base + number * 10_000 + item }
    public func value(_ number: Int, _ item: Int) -> Data {
        let seq = seq(number, item)
        return Workload.payload(seq: seq, part: 5, length: Workload.length(seed: seed, seq: seq, part: 5, min: minLength, max: maxLength))
    }

    public var childOptions: [String: String] {
        ["ender": "1", "fill": "\(fill)", "fill-min": "\(minLength)", "fill-max": "\(maxLength)"]
    }
}

/// Where a record lives, by the public API's names.
public enum RecordName: Hashable, Sendable, CustomStringConvertible {
    case session(String, String)
    case instance(String, String, String)

    public var description: String {
        switch self {
        case .session(let sid, let key): "session/\(sid)/\(key)"
        case .instance(let sid, let iid, let key): "instance/\(sid)/\(iid)/\(key)"
        }
    }
}
