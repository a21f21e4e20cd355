import CBORCoding
import Foundation

// Compares CBOREncoder/CBORDecoder with Foundation's JSON and binary property-list
// coders on three workloads, side by side in one run. Each figure is the median of
// 31 timed batches of about 1 ms; the batches of all coders are interleaved, so a
// busy moment on a shared machine slows every coder alike.

// MARK: Workloads

struct Small: Codable, Equatable {
    var name: String
    var email: String
    var age: Int
    var roles: [String]
}

struct Address: Codable, Equatable {
    var street: String
    var city: String
    var postalCode: String
    var country: String
}

struct LineItem: Codable, Equatable {
    var sku: String
    var title: String
    var quantity: Int
    var unitPrice: Double
    var tags: [String]
}

struct Document: Codable, Equatable {
    var id: Int
    var customer: Small
    var shipping: Address
    var billing: Address?
    var items: [LineItem]
    var notes: String
    var flags: [String: Bool]
    var createdAt: Double
    var version: Int
}

let small = Small(name: "Ada Lovelace", email: "ada@example.com", age: 36, roles: ["admin", "editor"])

let document = Document(
    id: 90_210,
    customer: Small(name: "Grace Hopper", email: "grace@example.org", age: 85, roles: ["owner", "billing", "support"]),
    shipping: Address(street: "1 Infinite Loop", city: "Cupertino", postalCode: "95014", country: "US"),
    billing: Address(street: "350 Fifth Avenue", city: "New York", postalCode: "10118", country: "US"),
    items: (0 ..< 6).map { i in
        LineItem(sku: "SKU-\(1000 + i)", title: "Item number \(i) with a longer title", quantity: i + 1,
                 unitPrice: 9.99 + Double(i), tags: ["tag\(i)", "sale", "new"])
    },
    notes: "Leave the parcel at the front desk. Ring twice; the bell is broken on weekends.",
    flags: ["gift": false, "express": true, "fragile": false],
    createdAt: 1_700_000_000.25,
    version: 3
)

let ints: [Int] = (0 ..< 1000).map { ($0 &* 2_654_435_761) % 1_000_000 - 500_000 }

/// One level of a deep, wide record: a name, absent optional fields, a payload, the next level.
final class Level: Codable, Equatable {
    var name: String
    var note: String?
    var count: Int?
    var ratio: Double?
    var tags: [String]?
    var flag: Bool?
    var payload: [Int]
    var next: Level?

    init(depth: Int, width: Int) {
        name = "level \(depth)"
        payload = (0 ..< width).map { $0 &* 7919 % 100_000 }
        next = depth > 1 ? Level(depth: depth - 1, width: width) : nil
    }

    static func == (a: Level, b: Level) -> Bool {
        var x: Level? = a, y: Level? = b
        while let l = x, let r = y {
            guard l.name == r.name, l.note == r.note, l.count == r.count, l.ratio == r.ratio,
                  l.tags == r.tags, l.flag == r.flag, l.payload == r.payload else { return false }
            x = l.next
            y = r.next
        }
        return x == nil && y == nil
    }
}

/// 64 levels of 32 integers each, about 8 KB in CBOR: absent keys at every level (the
/// decoder's quadratic case before it recorded container ends).
let deepWide = Level(depth: 64, width: 32)

// MARK: Timing

@inline(never)
func blackHole<T>(_ value: T) {
    withExtendedLifetime(value) {}
}

/// Iterations of `body` that take about `target` nanoseconds.
func calibrate(_ target: UInt64 = 1_000_000, _ body: () throws -> Void) rethrows -> Int {
    var iterations = 1
    while true {
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0 ..< iterations { try body() }
        let elapsed = DispatchTime.now().uptimeNanoseconds - start
        if elapsed > target || iterations >= 1 << 20 { return iterations }
        iterations *= 2
    }
}

/// Nanoseconds per call of one batch of `iterations` calls.
func timeBatch(_ iterations: Int, _ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    for _ in 0 ..< iterations { try body() }
    return Double(DispatchTime.now().uptimeNanoseconds - start) / Double(iterations)
}

func median(_ samples: [Double]) -> Double {
    let sorted = samples.sorted()
    return sorted[sorted.count / 2]
}

struct Row {
    var workload: String
    var coder: String
    var encode: Double
    var decode: Double
    var roundTrip: Double
    var bytes: Int
}

protocol Coder {
    var name: String { get }
    func encode<T: Encodable>(_ value: T) throws -> Data
    func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T
}

struct CBORCoder: Coder {
    let name = "CBOR"
    let encoder = CBOREncoder()
    let decoder = CBORDecoder()
    func encode<T: Encodable>(_ value: T) throws -> Data { try encoder.encode(value) }
    func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T { try decoder.decode(type, from: data) }
}

struct JSONCoder: Coder {
    let name = "JSON"
    let encoder = JSONEncoder()
    let decoder = JSONDecoder()
    func encode<T: Encodable>(_ value: T) throws -> Data { try encoder.encode(value) }
    func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T { try decoder.decode(type, from: data) }
}

struct PlistCoder: Coder {
    let name = "plist (binary)"
    let encoder: PropertyListEncoder = {
        let e = PropertyListEncoder()
        e.outputFormat = .binary
        return e
    }()
    let decoder = PropertyListDecoder()
    func encode<T: Encodable>(_ value: T) throws -> Data { try encoder.encode(value) }
    func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T { try decoder.decode(type, from: data) }
}

/// One timed operation: its body, batch size and the batch timings so far.
struct Op {
    var iterations: Int
    var body: () throws -> Void
    var samples: [Double] = []
}

/// Times encode, decode and round trip of `value` with every coder, interleaved: each
/// round runs one batch of every operation of every coder, so a busy moment on a
/// shared machine slows all coders alike; each figure is the median over the rounds.
func run<T: Codable & Equatable>(_ workload: String, _ value: T, _ coders: [any Coder], rounds: Int = 31) throws -> [Row] {
    var ops: [[Op]] = []
    var sizes: [Int] = []
    for coder in coders {
        let data = try coder.encode(value)
        guard try coder.decode(T.self, from: data) == value else {
            fatalError("\(coder.name) did not round-trip \(workload)")
        }
        sizes.append(data.count)
        let encode: () throws -> Void = { blackHole(try coder.encode(value)) }
        let decode: () throws -> Void = { blackHole(try coder.decode(T.self, from: data)) }
        let roundTrip: () throws -> Void = { blackHole(try coder.decode(T.self, from: try coder.encode(value))) }
        var coderOps: [Op] = []
        for body in [encode, decode, roundTrip] {
            coderOps.append(Op(iterations: try calibrate(1_000_000, body), body: body))
        }
        ops.append(coderOps)
    }
    for _ in 0 ..< rounds {
        for c in ops.indices {
            for o in ops[c].indices {
                ops[c][o].samples.append(try timeBatch(ops[c][o].iterations, ops[c][o].body))
            }
        }
    }
    return coders.indices.map { c in
        Row(workload: workload, coder: coders[c].name, encode: median(ops[c][0].samples) / 1000,
            decode: median(ops[c][1].samples) / 1000, roundTrip: median(ops[c][2].samples) / 1000, bytes: sizes[c])
    }
}

func format(_ x: Double) -> String {
    x >= 100 ? String(format: "%.0f", x) : x >= 10 ? String(format: "%.1f", x) : String(format: "%.2f", x)
}

// CODEC_PROFILE=<small|document|ints|deep>-<encode|decode|roundtrip> loops one operation for a
// profiler (valgrind --tool=callgrind counts instructions repeatably on a busy machine);
// CODEC_PROFILE_CODER=json|plist picks another coder, CODEC_PROFILE_COUNT the iterations.
if let profile = ProcessInfo.processInfo.environment["CODEC_PROFILE"] {
    let environment = ProcessInfo.processInfo.environment
    let coder: any Coder
    switch environment["CODEC_PROFILE_CODER"] {
    case "json": coder = JSONCoder()
    case "plist": coder = PlistCoder()
    default: coder = CBORCoder()
    }
    let count = Int(environment["CODEC_PROFILE_COUNT"] ?? "") ?? 200_000
    let parts = profile.split(separator: "-")
    let operation = parts.last.map(String.init) ?? "roundtrip"
    func loop<T: Codable>(_ value: T) throws {
        let data = try coder.encode(value)
        for _ in 0 ..< count {
            switch operation {
            case "encode": blackHole(try coder.encode(value))
            case "decode": blackHole(try coder.decode(T.self, from: data))
            default: blackHole(try coder.decode(T.self, from: try coder.encode(value)))
            }
        }
    }
    switch parts.first {
    case "small": try loop(small)
    case "document": try loop(document)
    case "deep": try loop(deepWide)
    default: try loop(ints)
    }
    exit(0)
}

let coders: [any Coder] = [CBORCoder(), JSONCoder(), PlistCoder()]
var rows: [Row] = []
rows += try run("small struct", small, coders)
rows += try run("nested ~1 KB document", document, coders)
rows += try run("1,000 Ints", ints, coders)
rows += try run("deep, wide record (64 levels)", deepWide, coders)

print("| workload | coder | encode µs | decode µs | round trip µs | bytes | round trip vs CBOR |")
print("|---|---|---:|---:|---:|---:|---:|")
var goalsMet = true
for row in rows {
    let cbor = rows.first { $0.workload == row.workload && $0.coder == "CBOR" }!
    let ratio = row.roundTrip / cbor.roundTrip
    print("| \(row.workload) | \(row.coder) | \(format(row.encode)) | \(format(row.decode)) | \(format(row.roundTrip)) | \(row.bytes) | \(String(format: "%.1f×", ratio)) |")
    if row.coder == "JSON" && (ratio < 5 || cbor.bytes > row.bytes) { goalsMet = false }
    if row.coder.hasPrefix("plist") && ratio < 10 { goalsMet = false }
}
print("")
print("Goals (round trip ≥5× faster than JSON and ≥10× faster than binary plist, bytes ≤ JSON): \(goalsMet ? "met" : "NOT met")")
