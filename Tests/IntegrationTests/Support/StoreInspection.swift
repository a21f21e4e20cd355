import CrashWorkload
import CBORCoding
import Foundation
@testable import SessionStore

/// What the parent expects to find in a store after its children ran (and died).
struct StoreExpectations: Sendable {
    /// Runs of the workload child; each is checked with its per-task oracle.
    var workloads: [WorkloadRun] = []
    /// Runs of the ender task (big scopes filled, then ended).
    var enders: [EnderRun] = []
    /// Records that must be present with exactly this value (the parent's own writes).
    var present: [RecordName: ExpectedValue] = [:]
    /// Records that must be absent.
    var absent: Set<RecordName> = []
    /// Groups written by one transaction: all present or all absent (or, when
    /// `mustBePresent` is set, that one).
    var atomicGroups: [AtomicGroup] = []
}

/// Records written by one transaction whose fate the parent does not know.
struct AtomicGroup: Sendable {
    var name: String
    var records: [RecordName: ExpectedValue]
    var mustBePresent: Bool?
}

/// What one inspection found.
struct InspectionCounts: Sendable {
    /// One thing found wrong.
    struct Problem: Hashable, Sendable {
        enum Kind: Sendable {
            /// Acknowledged batches (or ends) whose effect is missing.
            case lost
            /// A multi-key write found partly applied.
            case torn
            /// Anything else: a record that does not decode, a wrong value, a stray or
            /// phantom record, the cache disagreeing with the scan, a protocol error.
            case unexpected
        }
        var kind: Kind
        var weight: Int
        var message: String
    }

    /// Every problem, in the order found.
    var problems: [Problem] = []
    /// Records scanned.
    var records = 0
    /// Keys loaded twice through the API and compared with the scan.
    var cacheChecks = 0
    /// Sequence numbers of acknowledged batches missing that the run's durability allowed
    /// to lose (relaxed mode after a power loss: acknowledged after the last sync).
    var allowedLoss: [Int] = []

    var lost: Int { total(.lost) }
    var torn: Int { total(.torn) }
    var unexpected: Int { total(.unexpected) }
    var clean: Bool { problems.isEmpty }

    private func total(_ kind: Problem.Kind) -> Int {
        problems.filter { $0.kind == kind }.reduce(0) { $0 + $1.weight }
    }

    /// Adds the findings of a later inspection of the same store; a problem both found
    /// counts once.
    mutating func merge(_ later: InspectionCounts) {
        let known = Set(problems)
        problems += later.problems.filter { !known.contains($0) }
        records = later.records
        cacheChecks += later.cacheChecks
        allowedLoss = Array(Set(allowedLoss + later.allowedLoss)).sorted()
    }

    /// The first problems, one per line, for a failure message.
    var summary: String {
        problems.prefix(30).map(\.message).joined(separator: "\n  ")
            + (problems.count > 30 ? "\n  … and \(problems.count - 30) more" : "")
    }
}

/// Checks an open store against ``StoreExpectations``: a raw scan of every record through
/// LMDB, the oracles of each run, a decode of every record, and the cache.
///
/// Every record must be claimed by an expectation (no stray or phantom records), decode
/// as the type it names, and load through the public API twice with the scan's value,
/// the second time from the cache without a read transaction.
final class StoreInspection {
    let store: SessionStore
    private(set) var counts = InspectionCounts()
    private var records: [[UInt8]: [UInt8]] = [:]
    private var order: [[UInt8]] = []
    private var claimed: Set<[UInt8]> = []
    private var keyCache: [RecordName: [UInt8]] = [:]
    private let dataType = TypeName.bytes(of: Data.self)
    private let intType = TypeName.bytes(of: Int.self)

    init(_ store: SessionStore) throws {
        self.store = store
        try store.environment.read { txn in
            try txn.withCursor(store.records) { cursor in
                var entry = try cursor.first()
                while let current = entry {
                    let key = Array(current.key)
                    records[key] = Array(current.value)
                    order.append(key)
                    entry = try cursor.next()
                }
            }
        }
        counts.records = records.count
    }

    /// Runs every check of `expectations` and returns the counts.
    func check(_ expectations: StoreExpectations) -> InspectionCounts {
        for run in expectations.workloads { checkWorkload(run) }
        for run in expectations.enders { checkEnder(run) }
        for (name, expected) in expectations.present {
            switch value(name) {
            case nil: problem(.lost, "\(name) is missing; expected \(describe(expected))")
            case let found? where found != expected: problem(.unexpected, "\(name) holds \(describe(found)), expected \(describe(expected))")
            default: break
            }
        }
        for name in expectations.absent {
            if value(name) != nil { problem(.unexpected, "\(name) is present but must be absent") }
            do {
                if let loaded = try loadThroughAPI(name) {
                    problem(.unexpected, "cache: \(name) is absent from the scan but loads as \(describe(.data(loaded)))")
                }
            } catch {
                problem(.unexpected, "loading absent \(name) through the API failed: \(error)")
            }
        }
        for group in expectations.atomicGroups { checkGroup(group) }
        for key in order where !claimed.contains(key) {
            problem(.unexpected, "stray record \(printable(key)) that no write made")
        }
        checkDecodeAndCache()
        return counts
    }

    // MARK: - Oracles

    /// The per-task oracle: the last-sequence key says how many batches K committed; the
    /// store must then hold exactly the effect of the first K batches, K must be the
    /// acknowledged count or (when killed) one more, and a batch reported as failed must
    /// be absent. When the run may lose what was acknowledged after the last sync
    /// (``WorkloadRun/lossSinceSyncAllowed``), K may be as low as the batches acknowledged
    /// before that sync; the batches lost are listed in ``InspectionCounts/allowedLoss``.
    private func checkWorkload(_ run: WorkloadRun) {
        for error in run.protocolErrors { problem(.unexpected, "protocol: \(error)") }
        let plan = run.plan
        for task in run.tasks {
            let acked = run.acknowledged[task, default: 0]
            let allowed = acked + (run.killed && run.failed[task] == nil ? 1 : 0)
            let lastName = RecordName.session(Workload.tasksSession, plan.lastKey(task: task))
            var committed = 0
            switch value(lastName) {
            case nil: committed = 0
            case .int(let last)?:
                let offset = last - plan.base - task
                if offset < 0 || offset % plan.stride != 0 {
                    problem(.unexpected, "\(lastName) holds \(last), not a sequence number of task \(task)")
                } else {
                    committed = offset / plan.stride + 1
                }
            case let other?: problem(.unexpected, "\(lastName) holds \(describe(other))")
            }
            let required = run.required(task)
            if committed < required {
                let since = run.lossSinceSyncAllowed ? " (\(required) of them before the last sync)" : ""
                problem(.lost, "task \(task): \(acked) batches acknowledged\(since) but the store holds only the first \(committed) (last-sequence key)", weight: required - committed)
            }
            if committed < acked && run.lossSinceSyncAllowed {
                counts.allowedLoss += (max(committed, required)..<acked).map { plan.seq(task: task, index: $0) }
            }
            if committed > allowed {
                if let failedIndex = run.failed[task], committed > failedIndex {
                    problem(.unexpected, "task \(task): batch \(failedIndex) (seq \(plan.seq(task: task, index: failedIndex))) was reported as failed but committed")
                } else {
                    problem(.unexpected, "task \(task): \(committed) batches committed but only \(acked) were acknowledged and \(allowed - acked) in flight")
                }
            }
            for index in 0..<max(committed, allowed) {
                let seq = plan.seq(task: task, index: index)
                var present = 0
                for part in 0..<3 {
                    let name = plan.location(seq: seq, part: part)
                    guard let found = value(name) else { continue }
                    present += 1
                    let expected = ExpectedValue.data(plan.value(seq: seq, part: part))
                    if found != expected { problem(.unexpected, "\(name) holds \(describe(found)), expected \(describe(expected))") }
                }
                let expectedPresent = index < committed && !plan.isRetired(index: index, committed: committed)
                if present > 0 && present < 3 {
                    problem(.torn, "batch \(index) of task \(task) (seq \(seq)) is torn: \(present) of its 3 values are in the store (\(committed) batches committed)")
                } else if expectedPresent && present == 0 {
                    if index < required {
                        problem(.lost, "acknowledged batch \(index) of task \(task) (seq \(seq)) is missing")
                    } else {
                        problem(.torn, "batch \(index) of task \(task) (seq \(seq)) updated the last-sequence key but its values are missing")
                    }
                } else if !expectedPresent && present == 3 {
                    if index < committed {
                        let retiring = index + 2
                        if retiring < acked {
                            problem(.lost, "batch \(index) of task \(task) (seq \(seq)) was removed by acknowledged batch \(retiring), but is still there")
                        } else {
                            problem(.torn, "batch \(index) of task \(task) (seq \(seq)) is still there though its removal (batch \(retiring)) committed")
                        }
                    } else if run.failed[task] == index {
                        problem(.unexpected, "batch \(index) of task \(task) (seq \(seq)) was reported as failed but is in the store")
                    } else if index < allowed {
                        problem(.torn, "in-flight batch \(index) of task \(task) (seq \(seq)) committed its values without its last-sequence key")
                    } else {
                        problem(.unexpected, "batch \(index) of task \(task) (seq \(seq)) was never started but is in the store")
                    }
                }
            }
        }
    }

    /// The ender oracle: every scope is fully there or fully gone; an acknowledged end
    /// left nothing; a scope whose end is not acknowledged may be either.
    private func checkEnder(_ run: EnderRun) {
        for error in run.protocolErrors { problem(.unexpected, "protocol: \(error)") }
        let plan = run.plan
        let last = run.filled.max() ?? -1
        for number in 0...(last + 1) {
            var present = 0
            for item in 0..<plan.fill {
                let name = plan.location(number, item)
                guard let found = value(name) else { continue }
                present += 1
                let expected = ExpectedValue.data(plan.value(number, item))
                if found != expected { problem(.unexpected, "\(name) holds \(describe(found)), expected \(describe(expected))") }
            }
            if present > 0 && present < plan.fill {
                problem(.torn, "scope \(plan.sessionID(number)) is torn: \(present) of \(plan.fill) values remain")
            }
            if let count = run.ended[number] {
                if present > 0 { problem(.lost, "scope \(plan.sessionID(number)) was ended (acknowledged) but \(present) values remain") }
                if count != plan.fill { problem(.unexpected, "end() of \(plan.sessionID(number)) removed \(count) records, expected \(plan.fill)") }
            } else if number < last {
                problem(.unexpected, "scope \(plan.sessionID(number)) was never ended, yet scope \(last) was filled")
            }
        }
    }

    private func checkGroup(_ group: AtomicGroup) {
        var present = 0
        for (name, expected) in group.records {
            guard let found = value(name) else { continue }
            present += 1
            if found != expected { problem(.unexpected, "\(name) of \(group.name) holds \(describe(found)), expected \(describe(expected))") }
        }
        if present > 0 && present < group.records.count {
            problem(.torn, "\(group.name) is torn: \(present) of \(group.records.count) records present")
        } else if let must = group.mustBePresent, must != (present == group.records.count) {
            problem(must ? .lost : .unexpected, "\(group.name) must be \(must ? "present" : "absent") but \(present) of \(group.records.count) records are there")
        }
    }

    // MARK: - Decoding and cache

    /// Decodes every record, then loads each through the API twice and compares.
    private func checkDecodeAndCache() {
        for key in order {
            let bytes = records[key]!
            let decoded: ExpectedValue
            do {
                decoded = try decode(bytes, key: printable(key))
            } catch {
                problem(.unexpected, "record \(printable(key)) does not decode: \(error)")
                continue
            }
            guard let name = recordName(key) else {
                problem(.unexpected, "record key \(printable(key)) is not session/<sid>/<key> or instance/<sid>/<iid>/<key>")
                continue
            }
            do {
                let readsBefore = store.recordReads
                let first = try load(name, like: decoded)
                let readsBetween = store.recordReads
                let hitsBefore = store.cacheStatistics.hits
                let second = try load(name, like: decoded)
                let hitsAfter = store.cacheStatistics.hits
                let readsAfter = store.recordReads
                counts.cacheChecks += 1
                if first != decoded { problem(.unexpected, "cache: the first load of \(name) gave \(first.map(describe) ?? "nil"), the scan \(describe(decoded))") }
                if second != decoded { problem(.unexpected, "cache: the second load of \(name) gave \(second.map(describe) ?? "nil"), the scan \(describe(decoded))") }
                if hitsAfter != hitsBefore + 1 || readsAfter != readsBetween {
                    problem(.unexpected, "cache: the second load of \(name) was not served from the cache (hits \(hitsBefore)→\(hitsAfter), record reads \(readsBefore)→\(readsBetween)→\(readsAfter))")
                }
            } catch {
                problem(.unexpected, "loading \(name) through the API failed: \(error)")
            }
        }
    }

    private func load(_ name: RecordName, like sample: ExpectedValue) throws -> ExpectedValue? {
        switch (name, sample) {
        case (.session(let sid, let key), .data):
            return try store.session(sid).load(Data.self, for: key).map(ExpectedValue.data)
        case (.session(let sid, let key), .int):
            return try store.session(sid).load(Int.self, for: key).map(ExpectedValue.int)
        case (.instance(let sid, let iid, let key), .data):
            return try store.session(sid).instance(iid).load(Data.self, for: key).map(ExpectedValue.data)
        case (.instance(let sid, let iid, let key), .int):
            return try store.session(sid).instance(iid).load(Int.self, for: key).map(ExpectedValue.int)
        }
    }

    /// Loads `name` through the API (for absent records the scan cannot show).
    func loadThroughAPI(_ name: RecordName) throws -> Data? {
        switch name {
        case .session(let sid, let key): try store.session(sid).load(Data.self, for: key)
        case .instance(let sid, let iid, let key): try store.session(sid).instance(iid).load(Data.self, for: key)
        }
    }

    private func decode(_ bytes: [UInt8], key: String) throws -> ExpectedValue {
        try bytes.withUnsafeBytes { buffer in
            let parts = try Record.parse(buffer, key: key)
            if parts.typeName.elementsEqual(dataType) {
                return .data(try Record.decode(Data.self, from: buffer, key: key, decoder: store.decoder))
            }
            if parts.typeName.elementsEqual(intType) {
                return .int(try Record.decode(Int.self, from: buffer, key: key, decoder: store.decoder))
            }
            throw ChildError("record of unexpected type \(parts.typeNameString)")
        }
    }

    // MARK: - Helpers

    /// The value of record `name` (decoded), marking it as claimed; nil when absent.
    private func value(_ name: RecordName) -> ExpectedValue? {
        guard let key = try? recordKey(name) else {
            problem(.unexpected, "cannot build the record key of \(name)")
            return nil
        }
        guard let bytes = records[key] else { return nil }
        claimed.insert(key)
        do {
            return try decode(bytes, key: name.description)
        } catch {
            problem(.unexpected, "\(name) does not decode: \(error)")
            return nil
        }
    }

    private func recordKey(_ name: RecordName) throws -> [UInt8] {
        if let key = keyCache[name] { return key }
        let key: [UInt8]
        switch name {
        case .session(let sid, let name): key = try store.session(sid).recordKey(name)
        case .instance(let sid, let iid, let name): key = try store.session(sid).instance(iid).recordKey(name)
        }
        keyCache[name] = key
        return key
    }

    /// Splits a raw record key into the API's names.
    private func recordName(_ key: [UInt8]) -> RecordName? {
        func split(_ bytes: ArraySlice<UInt8>) -> (String, ArraySlice<UInt8>)? {
            guard let slash = bytes.firstIndex(of: UInt8(ascii: "/")) else { return nil }
            return (String(decoding: bytes[..<slash], as: UTF8.self), bytes[(slash + 1)...])
        }
        func text(_ bytes: ArraySlice<UInt8>) -> String? { try? store.decoder.decode(String.self, from: Array(bytes)) }
        if key.starts(with: KeyLayout.sessionRoot) {
            guard let (sid, rest) = split(key[KeyLayout.sessionRoot.count...]), let name = text(rest) else { return nil }
            return .session(sid, name)
        }
        if key.starts(with: KeyLayout.instanceRoot) {
            guard let (sid, rest) = split(key[KeyLayout.instanceRoot.count...]), let (iid, tail) = split(rest),
                  let name = text(tail) else { return nil }
            return .instance(sid, iid, name)
        }
        return nil
    }

    private func problem(_ kind: InspectionCounts.Problem.Kind, _ message: String, weight: Int = 1) {
        counts.problems.append(.init(kind: kind, weight: weight, message: message))
    }

    private func printable(_ key: [UInt8]) -> String {
        String(decoding: key.map { $0 >= 0x20 && $0 < 0x7F ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
    }

    private func describe(_ value: ExpectedValue) -> String {
        switch value {
        case .int(let int):
            return "Int \(int)"
        case .data(let data):
            let seq = data.count >= 8 ? data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) } : -1
            return "\(data.count) bytes (seq \(seq), part \(data.count > 8 ? Int(data[data.startIndex + 8]) : -1))"
        }
    }
}

/// Opens the store at `path`, inspects it against `expectations`, optionally lets
/// `mutate` write through the API and inspects again (so the cache is checked after
/// writes of the reopened store too), and closes it.
///
/// - Returns: the counts of both inspections, and the expectations as `mutate` left them.
func inspectStore(
    at path: String,
    _ expectations: StoreExpectations,
    configuration: SessionStore.Configuration = .init(),
    mutate: ((SessionStore, inout StoreExpectations) throws -> Void)? = nil
) throws -> (counts: InspectionCounts, expectations: StoreExpectations) {
    let store = try SessionStore(path: path, configuration: configuration)
    defer { try? store.close() }
    var expectations = expectations
    var counts = try StoreInspection(store).check(expectations)
    if let mutate {
        try mutate(store, &expectations)
        counts.merge(try StoreInspection(store).check(expectations))
    }
    try store.close()
    return (counts, expectations)
}

/// The parent's own writes after a reopen: overwrites and a removal in session `parent`,
/// through the public API, recorded in the expectations.
func parentWrites(_ store: SessionStore, _ expectations: inout StoreExpectations, round: Int, seed: UInt64) throws {
    let session = try store.session("parent")
    for index in 0..<4 {
        let name = RecordName.session("parent", "p\(index)")
        let value = Workload.payload(seq: round * 100 + index, part: 9, length: 24 + index * 100 + Int(seed % 64))
        try session.save(value, for: "p\(index)")
        expectations.present[name] = .data(value)
        expectations.absent.remove(name)
    }
    let removed = RecordName.session("parent", "p\(round % 4)")
    try session.remove("p\(round % 4)")
    expectations.present[removed] = nil
    expectations.absent.insert(removed)
}
