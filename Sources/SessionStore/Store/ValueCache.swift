#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A bounded read-through cache of decoded values, keyed by record key bytes.
///
/// Bounded twice: by entries (`capacity`) and by bytes (`byteLimit`), each entry costing
/// its record's encoded size plus its key's. A value that costs more than the whole byte
/// budget is not kept.
///
/// It is consistent with one LMDB snapshot id, its `generation`:
/// - a load first learns the newest snapshot id; a newer id than the generation means a
///   commit the cache has not seen (another process's), and the cache is emptied;
/// - a value read from LMDB is inserted only if it was read at the generation's snapshot
///   (or a newer one, which first empties the cache), so a slow reader never puts back a
///   value older than a commit already applied;
/// - the writer applies each commit after it succeeds; when the commit directly follows
///   the generation it updates the written keys, otherwise it empties the cache;
/// - the writer announces its commit before making it, with the keys it writes and the
///   prefixes it deletes. A load that sees the commit's snapshot before the writer applied
///   it misses on those keys and is served from the cache for every other key, instead of
///   emptying the cache as another process's commit would.
///
/// Eviction is CLOCK (second chance), close to LRU at a lower cost per hit. The index is an
/// open-addressing table with linear probing over a seeded 64-bit hash of the key bytes,
/// so a lookup needs the bytes only as a borrowed buffer: a hit allocates nothing.
final class ValueCache: Sendable {
    private struct Entry {
        var key: [UInt8]
        var hash: UInt64
        /// Nil marks a free position.
        var value: CachedValue?
        var referenced: Bool
        /// The entry's share of the byte budget.
        var cost = 0
    }

    private struct State {
        /// Entries by position, at most `capacity` of them.
        var entries: [Entry] = []
        /// Positions in `entries` whose entry was removed.
        var free: [Int] = []
        /// The index: `position + 1` of an entry, or 0 for an empty slot. Its size is a power
        /// of two, kept at least twice the number of entries so probe runs stay short.
        var table = [Int32](repeating: 0, count: 16)
        var count = 0
        /// The summed cost of the entries.
        var bytes = 0
        var hand = 0
        var generation = 0
        /// The id of this process's commit in flight, announced by the writer.
        var ownCommit: Int?
        /// The hashes of the keys that commit writes, and the prefixes it deletes.
        var inFlightHashes: Set<UInt64> = []
        var inFlightPrefixes: [[UInt8]] = []
        var hits = 0
        var misses = 0
        /// Values taken out of the cache under the lock, released by ``withState(_:)`` after
        /// it: a value's `deinit` is user code, which may use the store.
        var released: [CachedValue] = []

        var mask: Int { table.count - 1 }
    }

    /// A change of one committed write, applied by ``apply(commit:changes:)``.
    enum Change {
        /// `cost`: the encoded record's size in bytes.
        case set([UInt8], CachedValue, cost: Int = 0)
        case remove([UInt8])
        /// The keys a prefix delete removed; `prefix` covers them when the cache is behind.
        case removeKeys([[UInt8]], prefix: [UInt8])
    }

    let capacity: Int
    /// The most bytes the entries may cost together.
    let byteLimit: Int
    /// Random per cache, so which keys collide cannot be chosen from outside.
    private let seed: UInt64
    private let state: Lock<State>

    init(capacity: Int, byteLimit: Int = .max) {
        // The table holds Int32 positions; a budget of no bytes disables the cache too.
        self.capacity = byteLimit > 0 ? min(capacity, Int(Int32.max) / 4) : 0
        self.byteLimit = byteLimit
        seed = UInt64.random(in: .min ... .max)
        state = Lock(State())
    }

    var isEnabled: Bool { capacity > 0 }

    /// Runs `body` on the state under the lock, then releases the values it took out.
    @inline(__always)
    private func withState<R>(_ body: (inout State) -> R) -> R {
        var released: [CachedValue] = []
        let result = state.withLock { state in
            let result = body(&state)
            if !state.released.isEmpty { swap(&released, &state.released) }
            return result
        }
        withExtendedLifetime(released) {}
        return result
    }

    /// Hit and miss counts since the store opened.
    var counters: (hits: Int, misses: Int) {
        state.withLock { ($0.hits, $0.misses) }
    }

    /// Entries held now.
    var count: Int { state.withLock { $0.count } }

    /// The summed cost of the entries held now, in bytes.
    var byteCount: Int { state.withLock { $0.bytes } }

    /// The cached value for `key` as of snapshot `snapshot`, or nil on a miss.
    func value(for key: UnsafeRawBufferPointer, snapshot: Int) -> CachedValue? {
        let hash = Self.hash(key, seed: seed)
        // The hit path takes the lock directly: values that a newer snapshot clears here
        // wait in `released` for the next mutation, which releases them after its lock.
        return state.withLock { state in
            if snapshot > state.generation, !Self.mayServe(key, hash: hash, atNewer: snapshot, &state) {
                state.misses += 1
                return nil
            }
            guard let slot = Self.find(key, hash: hash, in: state) else {
                state.misses += 1
                return nil
            }
            let position = Int(state.table[slot]) - 1
            state.entries[position].referenced = true
            state.hits += 1
            return state.entries[position].value
        }
    }

    /// Whether `key` may be served to a load that saw `snapshot`, newer than the generation.
    ///
    /// Only for this process's announced commit, and a key it does not change; another
    /// process's commit empties the cache. Kept out of line: it is off the hit path.
    @inline(never)
    private static func mayServe(_ key: UnsafeRawBufferPointer, hash: UInt64, atNewer snapshot: Int, _ state: inout State) -> Bool {
        guard isOwnCommitInFlight(snapshot, state) else {
            clear(&state)
            state.generation = snapshot
            return false
        }
        return !state.inFlightHashes.contains(hash) && !state.inFlightPrefixes.contains(where: { key.starts(with: $0) })
    }

    /// Inserts a value read from LMDB at snapshot `snapshot`; `cost` is its record's size.
    func insert(_ value: CachedValue, for key: [UInt8], readAt snapshot: Int, cost: Int = 0) {
        guard capacity > 0 else { return }
        let hash = key.withUnsafeBytes { Self.hash($0, seed: seed) }
        withState { state in
            // Not older than the generation, and not moving it past a commit of this
            // process that is not applied yet.
            if snapshot < state.generation || Self.isOwnCommitInFlight(snapshot, state) { return }
            if snapshot > state.generation {
                Self.clear(&state)
                state.generation = snapshot
            }
            store(value, for: key, hash: hash, cost: cost, in: &state)
        }
    }

    /// Announces that this process is about to commit transaction `commit`, writing `keys`
    /// and deleting everything under `prefixes`; call before the commit, then
    /// ``apply(commit:changes:)`` or ``withdrawCommit()``.
    func announce(commit: Int, keys: [[UInt8]], prefixes: [[UInt8]]) {
        guard capacity > 0 else { return }
        let hashed = keys.map { key in key.withUnsafeBytes { Self.hash($0, seed: seed) } }
        state.withLock { state in
            state.ownCommit = commit
            state.inFlightHashes = Set(hashed)
            state.inFlightPrefixes = prefixes
        }
    }

    /// Withdraws the announced commit: it failed, or it changed nothing (LMDB then takes
    /// no snapshot, and another process's next commit gets its id).
    func withdrawCommit() {
        guard capacity > 0 else { return }
        state.withLock { Self.endCommit(&$0) }
    }

    private static func endCommit(_ state: inout State) {
        state.ownCommit = nil
        state.inFlightHashes.removeAll(keepingCapacity: true)
        state.inFlightPrefixes.removeAll()
    }

    /// Whether `snapshot` is this process's announced commit, directly after the generation.
    private static func isOwnCommitInFlight(_ snapshot: Int, _ state: State) -> Bool {
        snapshot == state.generation + 1 && snapshot == state.ownCommit
    }

    /// Applies the changes of the commit with transaction id `commit`.
    ///
    /// - Returns: for each `.set` (by its index in `changes`) whose key the cache held as of
    ///   the commit before this one, the value it replaced: the write's previous value.
    @discardableResult
    func apply(commit: Int, changes: [Change]) -> [Int: CachedValue] {
        guard capacity > 0 else { return [:] }
        let hashed = changes.map { change -> (Change, UInt64) in
            switch change {
            case .set(let key, _, _), .remove(let key): (change, key.withUnsafeBytes { Self.hash($0, seed: seed) })
            case .removeKeys: (change, 0)
            }
        }
        return withState { state in
            if state.ownCommit == commit { Self.endCommit(&state) }
            var replaced: [Int: CachedValue] = [:]
            if commit == state.generation + 1 {
                // The cache reflects exactly the snapshot this commit started from.
                for (index, (change, hash)) in hashed.enumerated() {
                    if let old = apply(change, hash: hash, to: &state) { replaced[index] = old }
                }
                state.generation = commit
            } else if commit == state.generation {
                // A reader already moved the cache to this commit's snapshot.
                for (change, hash) in hashed { apply(change, hash: hash, to: &state) }
            } else if commit > state.generation + 1 {
                // Commits between the generation and this one were not applied: start over.
                Self.clear(&state)
                state.generation = commit
                for (change, hash) in hashed { apply(change, hash: hash, to: &state) }
            } else {
                // The cache already moved past this commit; its values may be stale.
                for (change, hash) in hashed {
                    switch change {
                    case .set(let key, _, _), .remove(let key): remove(key, hash: hash, from: &state)
                    case .removeKeys(_, let prefix): removeAll(withPrefix: prefix, from: &state)
                    }
                }
            }
            return replaced
        }
    }

    /// Empties the cache.
    func removeAll() {
        withState { Self.clear(&$0) }
    }

    // MARK: - Table operations (call with the lock held)

    /// Applies one change; for `.set`, returns the value it replaced.
    @discardableResult
    private func apply(_ change: Change, hash: UInt64, to state: inout State) -> CachedValue? {
        switch change {
        case .set(let key, let value, let cost): return store(value, for: key, hash: hash, cost: cost, in: &state)
        case .remove(let key): remove(key, hash: hash, from: &state)
        case .removeKeys(let keys, _):
            for key in keys { remove(key, hash: key.withUnsafeBytes { Self.hash($0, seed: seed) }, from: &state) }
        }
        return nil
    }

    /// Stores `value` under `key`, then evicts until the budget holds; returns the value it replaced.
    @discardableResult
    private func store(_ value: CachedValue, for key: [UInt8], hash: UInt64, cost recordCost: Int, in state: inout State) -> CachedValue? {
        let cost = recordCost &+ key.count
        if let slot = key.withUnsafeBytes({ Self.find($0, hash: hash, in: state) }) {
            let position = Int(state.table[slot]) - 1
            let old = state.entries[position].value
            guard cost <= byteLimit else {
                // Too large to keep: the old value is stale now, so it goes (returned, so
                // released by the caller after the lock).
                state.entries[position].value = nil
                unlink(position, from: &state)
                state.free.append(position)
                return old
            }
            state.entries[position].value = value
            state.entries[position].referenced = true
            state.bytes += cost - state.entries[position].cost
            state.entries[position].cost = cost
            evictOverBudget(keeping: position, &state)
            return old
        }
        guard cost <= byteLimit else { return nil }
        let position: Int
        if let reused = state.free.popLast() {
            position = reused
        } else if state.entries.count < capacity {
            position = state.entries.count
            state.entries.append(Entry(key: [], hash: 0, value: nil, referenced: false))
        } else {
            evictOne(keeping: nil, &state)
            position = state.free.popLast()!
        }
        if (state.count + 1) * 2 > state.table.count { Self.grow(&state) }
        state.entries[position] = Entry(key: key, hash: hash, value: value, referenced: false, cost: cost)
        state.count += 1
        state.bytes += cost
        Self.link(position, hash: hash, in: &state)
        evictOverBudget(keeping: position, &state)
        return nil
    }

    /// Evicts entries other than `kept` while the entries cost more than the byte budget.
    private func evictOverBudget(keeping kept: Int, _ state: inout State) {
        while state.bytes > byteLimit && state.count > 1 { evictOne(keeping: kept, &state) }
    }

    /// Frees one entry other than `kept` by the CLOCK rule, putting its position on the free list.
    private func evictOne(keeping kept: Int?, _ state: inout State) {
        while true {
            let position = state.hand
            state.hand = (state.hand + 1) % state.entries.count
            guard position != kept, state.entries[position].value != nil else { continue }
            if state.entries[position].referenced {
                state.entries[position].referenced = false
            } else {
                unlink(position, from: &state)
                state.free.append(position)
                return
            }
        }
    }

    private func remove(_ key: [UInt8], hash: UInt64, from state: inout State) {
        guard let slot = key.withUnsafeBytes({ Self.find($0, hash: hash, in: state) }) else { return }
        let position = Int(state.table[slot]) - 1
        unlink(position, from: &state)
        state.free.append(position)
    }

    private func removeAll(withPrefix prefix: [UInt8], from state: inout State) {
        let doomed = state.entries.indices.filter {
            state.entries[$0].value != nil && state.entries[$0].key.starts(with: prefix)
        }
        for position in doomed {
            unlink(position, from: &state)
            state.free.append(position)
        }
    }

    /// Takes the entry at `position` out of the index and empties it.
    private func unlink(_ position: Int, from state: inout State) {
        let mask = state.mask
        var slot = Int(truncatingIfNeeded: state.entries[position].hash) & mask
        while Int(state.table[slot]) - 1 != position { slot = (slot + 1) & mask }
        // Backward-shift deletion: move later entries of the probe run into the hole when
        // their home slot allows it, so lookups never need tombstones.
        var hole = slot
        var next = slot
        while true {
            next = (next + 1) & mask
            let occupant = state.table[next]
            if occupant == 0 { break }
            let home = Int(truncatingIfNeeded: state.entries[Int(occupant) - 1].hash) & mask
            // The occupant may move to `hole` unless its home lies cyclically in (hole, next].
            let distanceToHome = (next - home) & mask
            let distanceToHole = (next - hole) & mask
            if distanceToHome >= distanceToHole {
                state.table[hole] = occupant
                hole = next
            }
        }
        state.table[hole] = 0
        if let value = state.entries[position].value { state.released.append(value) }
        state.bytes -= state.entries[position].cost
        state.entries[position].cost = 0
        state.entries[position].value = nil
        state.entries[position].key = []
        state.count -= 1
    }

    /// The table slot holding `key`, or nil.
    @inline(__always)
    private static func find(_ key: UnsafeRawBufferPointer, hash: UInt64, in state: State) -> Int? {
        let mask = state.mask
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let occupant = state.table[slot]
            if occupant == 0 { return nil }
            let position = Int(occupant) - 1
            if state.entries[position].hash == hash, equal(state.entries[position].key, key) { return slot }
            slot = (slot + 1) & mask
        }
    }

    private static func equal(_ stored: [UInt8], _ key: UnsafeRawBufferPointer) -> Bool {
        stored.count == key.count && stored.withUnsafeBytes { bytes in
            key.count == 0 || memcmp(bytes.baseAddress!, key.baseAddress!, key.count) == 0
        }
    }

    /// Puts entry `position` into the first empty slot of its probe run.
    private static func link(_ position: Int, hash: UInt64, in state: inout State) {
        let mask = state.mask
        var slot = Int(truncatingIfNeeded: hash) & mask
        while state.table[slot] != 0 { slot = (slot + 1) & mask }
        state.table[slot] = Int32(position + 1)
    }

    /// Doubles the table and re-links every entry.
    private static func grow(_ state: inout State) {
        state.table = [Int32](repeating: 0, count: state.table.count * 2)
        for position in state.entries.indices where state.entries[position].value != nil {
            link(position, hash: state.entries[position].hash, in: &state)
        }
    }

    private static func clear(_ state: inout State) {
        for entry in state.entries { if let value = entry.value { state.released.append(value) } }
        state.entries.removeAll(keepingCapacity: true)
        state.free.removeAll(keepingCapacity: true)
        for slot in state.table.indices { state.table[slot] = 0 }
        state.count = 0
        state.bytes = 0
        state.hand = 0
    }

    /// A seeded 64-bit hash of `bytes`: sixteen bytes at a time, folded in with a 64×64→128-bit
    /// multiply whose halves are xored (the "mum" step of wyhash-style hashes).
    ///
    /// About a fifth of the instructions of `Hasher` (SipHash-1-3) on 60-byte keys. The
    /// seed is random per cache, so colliding keys cannot be prepared in advance.
    @inline(__always)
    static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        @inline(__always) func mum(_ a: UInt64, _ b: UInt64) -> UInt64 {
            let product = a.multipliedFullWidth(by: b)
            return product.high ^ product.low
        }
        @inline(__always) func word(_ offset: Int) -> UInt64 {
            bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
        }
        let k0: UInt64 = 0xa076_1d64_78bd_642f
        let k1: UInt64 = 0xe703_7ed1_a0b4_28db
        // `mum` is zero when either input is: every block's first input is xored with a
        // seeded secret, not a public constant, so no chosen block can zero the state.
        let secret = seed ^ k1
        let count = bytes.count
        var h = mum(seed ^ k0, UInt64(truncatingIfNeeded: count) ^ k1)
        var offset = 0
        while count - offset > 16 {
            h = mum(word(offset) ^ secret, word(offset + 8) ^ h)
            offset += 16
        }
        // The last 1...16 bytes; words may overlap bytes already hashed, which is harmless.
        let a: UInt64
        let b: UInt64
        if count >= 16 {
            a = word(count - 16)
            b = word(count - 8)
        } else if count >= 8 {
            a = word(0)
            b = word(count - 8)
        } else {
            var tail: UInt64 = 0
            for index in 0..<count { tail |= UInt64(bytes[index]) << (8 * UInt64(index)) }
            a = tail
            b = 0
        }
        h = mum(a ^ secret, b ^ h)
        return mum(h ^ k0, h ^ k1)
    }
}
