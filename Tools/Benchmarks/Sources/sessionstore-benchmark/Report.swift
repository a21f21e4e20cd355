import Foundation

/// One measured row: a system on a workload, over its interleaved rounds.
struct Row {
    var workload: String
    var system: String
    var note: String
    var rounds: [Round]
    /// The group's subject (SessionStore) ops/s divided by this row's ops/s.
    var ratio: Double = .nan

    /// The median round's operations per second (rounds are interleaved with the peers').
    var opsPerSecond: Double {
        let values = rounds.map(\.opsPerSecond).sorted()
        guard !values.isEmpty else { return .nan }
        return values.count % 2 == 1 ? values[values.count / 2]
            : (values[values.count / 2 - 1] + values[values.count / 2]) / 2
    }

    var operations: Int { rounds.reduce(0) { $0 + $1.operations } }
    var seconds: Double { rounds.reduce(0) { $0 + $1.seconds } }
    var spread: Double {
        let values = rounds.map(\.opsPerSecond)
        guard let low = values.min(), let high = values.max(), low > 0 else { return .nan }
        return high / low - 1
    }

    lazy var latency: (p50: Double, p99: Double) = {
        let all = rounds.flatMap(\.latencies)
        let p = percentiles(all, [0.5, 0.99])
        return (p[0] / 1000, p[1] / 1000)
    }()
}

struct Goal {
    var name: String
    var target: String
    var measured: String
    var met: Bool
}

struct Header {
    var cores: Int
    var lmdb: String
    var swift: String
    var date: String
    var mode: String
    var notes: [String]
}

enum Format {
    static func ops(_ value: Double) -> String {
        guard value.isFinite else { return "—" }
        if value >= 1_000_000 { return String(format: "%.2f M", value / 1_000_000) }
        if value >= 10_000 { return String(format: "%.0f k", value / 1_000) }
        if value >= 1_000 { return String(format: "%.1f k", value / 1_000) }
        return String(format: "%.0f", value)
    }

    static func micros(_ value: Double) -> String {
        guard value.isFinite else { return "—" }
        if value < 10 { return String(format: "%.2f µs", value) }
        if value < 1000 { return String(format: "%.1f µs", value) }
        return String(format: "%.2f ms", value / 1000)
    }

    static func ratio(_ value: Double) -> String {
        guard value.isFinite else { return "—" }
        return value >= 10 ? String(format: "%.1f×", value) : String(format: "%.2f×", value)
    }
}

func markdown(header: Header, rows: inout [Row], goals: [Goal]) -> String {
    var out = "## SessionStore benchmark\n\n"
    out += "cores: \(header.cores) · LMDB \(header.lmdb) · Swift \(header.swift) · \(header.date) · \(header.mode)\n\n"
    out += "| workload | system | ops/s | p50 | p99 | SessionStore ÷ row | ± rounds | notes |\n"
    out += "|---|---|--:|--:|--:|--:|--:|---|\n"
    var lastWorkload = ""
    for index in rows.indices {
        let latency = rows[index].latency
        let row = rows[index]
        let workload = row.workload == lastWorkload ? "" : row.workload
        lastWorkload = row.workload
        out += "| \(workload) | \(row.system) | \(Format.ops(row.opsPerSecond)) | \(Format.micros(latency.p50)) | \(Format.micros(latency.p99)) | \(Format.ratio(row.ratio)) | \(row.spread.isFinite ? String(format: "±%.0f%%", row.spread * 50) : "—") | \(row.note) |\n"
    }
    out += "\n### Goals\n\n| goal | target | measured | |\n|---|---|---|---|\n"
    for goal in goals {
        out += "| \(goal.name) | \(goal.target) | \(goal.measured) | \(goal.met ? "met" : "**missed**") |\n"
    }
    out += "\nGoals are judged on ops/s (median round); the p50 figures in brackets make the same comparison on median latencies.\n"
    out += "\n- SessionStore ÷ row: the group's SessionStore ops/s over this row's; above 1 means SessionStore is faster.\n"
    out += "- ± rounds: half the gap between the fastest and the slowest round. Disk rows share the machine's disk with whatever else runs; a large value there means other I/O during the run, and the median round is the figure to read.\n"
    if !header.notes.isEmpty {
        out += header.notes.map { "- " + $0 }.joined(separator: "\n") + "\n"
    }
    return out
}

func json(header: Header, rows: inout [Row], goals: [Goal]) throws -> Data {
    func number(_ value: Double) -> Any { value.isFinite ? value : NSNull() }
    var rowObjects: [[String: Any]] = []
    for index in rows.indices {
        let latency = rows[index].latency
        let row = rows[index]
        rowObjects.append([
            "workload": row.workload, "system": row.system, "note": row.note,
            "opsPerSecond": number(row.opsPerSecond),
            "p50Microseconds": number(latency.p50), "p99Microseconds": number(latency.p99),
            "sessionStoreRatio": number(row.ratio),
            "roundsOpsPerSecond": row.rounds.map { number($0.opsPerSecond) },
            "operations": row.operations, "seconds": row.seconds,
        ])
    }
    let object: [String: Any] = [
        "header": ["cores": header.cores, "lmdbVersion": header.lmdb, "swiftVersion": header.swift,
                   "date": header.date, "mode": header.mode, "notes": header.notes],
        "rows": rowObjects,
        "goals": goals.map { ["goal": $0.name, "target": $0.target, "measured": $0.measured, "met": $0.met] },
    ]
    return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
}
