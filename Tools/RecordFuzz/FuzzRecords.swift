// libFuzzer target for whole records read back through the store. Not part of the SwiftPM
// build: Tools/RecordFuzz/run.sh compiles it together with Sources/SessionStore (one
// module, so the internal Record, KeyLayout and Environment are at hand) against a
// separately compiled CBORCoding, with -sanitize=fuzzer,address, linking -llmdb.
//
// One store stays open for the whole run (relaxed durability, so a commit does not sync,
// and no cache, so every load decodes). Each input is planted as the value of one record
// key with a raw mdb_put on the "records" database, the key built as the store builds it,
// and then loaded through SessionStore as each of several types. Errors other than
// corruptedRecord, typeMismatch and newerFormat, a crash or a sanitizer report are
// findings.
//
// With RECORDFUZZ_WRITE_SEEDS=<directory> set, the binary writes valid records of every
// type it loads into <directory> (the seed corpus) and exits.

import CBORCoding
import CLMDB
import Foundation

struct Inner: Codable, Sendable {
    var a: Int8
    var b: UInt16?
    var c: Float?
}

enum Kind: String, Codable, Sendable { case guest, member, admin }

enum Shape: Codable, Sendable {
    case none
    case point(x: Double, y: Double)
    case named(String, [UInt32])
}

struct Profile: Codable, Sendable {
    var name: String
    var age: Int?
    var tags: [String]
    var scores: [String: Double]
    var created: Date?
    var avatar: Data?
    var kind: Kind
    var inner: Inner?
    var shape: Shape?
    var id: UUID?
    var link: URL?
    var amount: Decimal?
}

/// The store, session and key every input goes through, opened once.
// nonisolated(unsafe): libFuzzer calls the target on one thread, after initialisation.
nonisolated(unsafe) var fuzzStore: SessionStore!
nonisolated(unsafe) var fuzzSession: Session!
nonisolated(unsafe) var fuzzKey: [UInt8] = []

let keyName = "record"

func sampleRecords() throws -> [(String, [UInt8])] {
    let encoder = CBOREncoder()
    let profile = Profile(name: "Ada", age: 36, tags: ["math", "engines"], scores: ["a": 1.5, "b": -0.25],
                          created: Date(timeIntervalSince1970: 1_700_000_000.5), avatar: Data([1, 2, 3]), kind: .admin,
                          inner: Inner(a: -3, b: 700, c: 0.5), shape: .named("tri", [1, 2, 3]),
                          id: UUID(uuidString: "E621E1F8-C36C-495A-93FC-0C247A3E6E5F"), link: URL(string: "https://example.com/a?b=c"),
                          amount: Decimal(string: "12.345"))
    var sparse = profile
    (sparse.age, sparse.created, sparse.avatar, sparse.inner, sparse.shape, sparse.id, sparse.link, sparse.amount) = (nil, nil, nil, nil, .point(x: 1, y: -2), nil, nil, nil)
    return [
        ("string", try Record.encode("hello, world", encoder: encoder)),
        ("int", try Record.encode(-1_234_567_890_123, encoder: encoder)),
        ("double", try Record.encode(3.141592653589793, encoder: encoder)),
        ("bool", try Record.encode(true, encoder: encoder)),
        ("data", try Record.encode(Data((0..<64).map { UInt8($0) }), encoder: encoder)),
        ("date", try Record.encode(Date(timeIntervalSince1970: 1_234_567_890), encoder: encoder)),
        ("dictionary", try Record.encode(["one": 1, "two": 2, "three": 3], encoder: encoder)),
        ("array", try Record.encode([Int64.min, -1, 0, 1, Int64.max], encoder: encoder)),
        ("strings", try Record.encode([["a", "b"], [], ["c"]], encoder: encoder)),
        ("profile", try Record.encode(profile, encoder: encoder)),
        ("profile-sparse", try Record.encode(sparse, encoder: encoder)),
        ("profiles", try Record.encode([profile, sparse], encoder: encoder)),
        ("shape", try Record.encode(Shape.point(x: 0.5, y: 2), encoder: encoder)),
        ("kinds", try Record.encode([Kind.guest: 1, .member: 2], encoder: encoder)),
        ("uuid-map", try Record.encode([UUID(): Inner(a: 1, b: nil, c: nil)], encoder: encoder)),
        ("optional", try Record.encode(Int?.none, encoder: encoder)),
    ]
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    if let directory = ProcessInfo.processInfo.environment["RECORDFUZZ_WRITE_SEEDS"] {
        do {
            for (name, bytes) in try sampleRecords() {
                try Data(bytes).write(to: URL(fileURLWithPath: directory + "/record-" + name))
            }
        } catch {
            fatalError("writing the seeds failed: \(error)")
        }
        exit(0)
    }
    let directory = NSTemporaryDirectory() + "recordfuzz-\(getpid())"
    try? FileManager.default.removeItem(atPath: directory)
    do {
        fuzzStore = try SessionStore(path: directory, configuration: .init(durability: .relaxed(syncInterval: .seconds(3600)), cacheCapacity: 0))
        fuzzSession = try fuzzStore.session("fuzz")
        fuzzKey = try KeyLayout.recordKey(fuzzSession.reference.prefix, keyName, limit: fuzzStore.maxKeySize)
    } catch {
        fatalError("opening the fuzz store at \(directory) failed: \(error)")
    }
    // The files go when the process ends; the open store keeps them usable until then.
    atexit { try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "recordfuzz-\(getpid())") }
    return 0
}

/// Loads the planted record as `V`; only the three record errors are allowed.
@inline(never)
func fuzzLoad<V: Codable & Sendable>(_ type: V.Type) {
    do {
        _ = try fuzzSession.load(V.self, for: keyName)
    } catch where [.corruptedRecord, .typeMismatch, .newerFormat].contains(error.code) {
        // Expected for most inputs (load throws only SessionStoreError).
    } catch {
        fatalError("loading a planted record as \(V.self) threw an error other than corruptedRecord, typeMismatch or newerFormat: \(error)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRecord(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    // Plant the input with a raw mdb_put on the records database.
    do {
        try fuzzStore.environment.write { txn in
            let rc = fuzzKey.withUnsafeBytes { key in
                var keyValue = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
                var value = MDB_val(mv_size: size, mv_data: UnsafeMutableRawPointer(mutating: data))
                return mdb_put(txn.handle, fuzzStore.records, &keyValue, &value, 0)
            }
            try LMDBError.check(rc, "mdb_put")
        }
    } catch {
        fatalError("planting the record failed: \(error)")
    }
    // Load as the type the record names (so its value is decoded), and as one other type
    // picked by the input's size (the type check and the header's errors); loading every
    // type each time would spend the run building type-mismatch messages.
    let named = Record.storedTypeName(UnsafeRawBufferPointer(start: data, count: size)).flatMap { name in
        loaders.firstIndex { $0.name == name }
    }
    if let named { loaders[named].load() }
    let other = size % loaders.count
    if other != named { loaders[other].load() }
    return 0
}

/// A type to load, with its stored name.
struct Loader {
    var name: [UInt8]
    var load: () -> Void

    static func of<V: Codable & Sendable>(_ type: V.Type) -> Loader {
        Loader(name: TypeName.bytes(of: V.self), load: { fuzzLoad(V.self) })
    }
}

let loaders: [Loader] = [
    .of(String.self), .of(Int.self), .of(Double.self), .of(Bool.self), .of(Data.self), .of(Date.self),
    .of([String: Int].self), .of([Int64].self), .of([[String]].self), .of(Profile.self), .of([Profile].self),
    .of(Shape.self), .of([Kind: Int].self), .of([UUID: Inner].self), .of(Int?.self),
]

extension Record {
    /// The stored type name of a record, or nil when its header does not parse.
    static func storedTypeName(_ bytes: UnsafeRawBufferPointer) -> [UInt8]? {
        (try? parse(bytes, key: "")).map { Array($0.typeName) }
    }
}
