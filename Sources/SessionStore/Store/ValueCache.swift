/// A bounded read-through cache of decoded values, keyed by record key bytes.
///
/// It is consistent with one LMDB snapshot id, its `generation`:
/// - a load first learns the newest snapshot id; a newer id than the generation means a
///   commit the cache has not seen (another process's), and the cache is emptied;
/// - a value read from LMDB is inserted only if it was read at the generation's snapshot
///   (or a newer one, which first empties the cache), so a slow reader never puts back a
///   value older than a commit already applied;
/// - the writer applies each commit after it succeeds; when the commit directly follows
///   the generation it updates the written keys, otherwise it empties the cache.
/// Eviction is CLOCK (second chance), close to LRU at a lower cost per hit.
final class ValueCache: Sendable {
    private struct Slot {
        var key: CacheKey
        var value: any Sendable
        var referenced: Bool
    }

    private struct State {
        var index: [CacheKey: Int] = [:]
        var slots: [Slot?] = []
        var free: [Int] = []
        var hand = 0
        var generation = 0
        var hits = 0
        var misses = 0
    }

    /// A change of one committed write, applied by ``apply(commit:changes:)``.
    enum Change {
        case set([UInt8], any Sendable)
        case remove([UInt8])
        /// The keys a prefix delete removed; `prefix` covers them when the cache is behind.
        case removeKeys([[UInt8]], prefix: [UInt8])
    }

    let capacity: Int
    private let state: Lock<State>

    init(capacity: Int) {
        self.capacity = capacity
        state = Lock(State())
    }

    var isEnabled: Bool { capacity > 0 }

    /// Hit and miss counts since the store opened.
    var counters: (hits: Int, misses: Int) {
        state.withLock { ($0.hits, $0.misses) }
    }

    /// Entries held now.
    var count: Int { state.withLock { $0.index.count } }

    /// The cached value for `key` as of snapshot `snapshot`, or nil on a miss.
    func value(for key: [UInt8], snapshot: Int) -> (any Sendable)? {
        let key = CacheKey(key)
        return state.withLock { state in
            if snapshot > state.generation {
                Self.clear(&state)
                state.generation = snapshot
                state.misses += 1
                return nil
            }
            guard let position = state.index[key] else {
                state.misses += 1
                return nil
            }
            state.slots[position]!.referenced = true
            state.hits += 1
            return state.slots[position]!.value
        }
    }

    /// Inserts a value read from LMDB at snapshot `snapshot`.
    func insert(_ value: any Sendable, for key: [UInt8], readAt snapshot: Int) {
        guard capacity > 0 else { return }
        let key = CacheKey(key)
        state.withLock { state in
            if snapshot < state.generation { return }
            if snapshot > state.generation {
                Self.clear(&state)
                state.generation = snapshot
            }
            Self.store(value, for: key, in: &state, capacity: capacity)
        }
    }

    /// Applies the changes of the commit with transaction id `commit`.
    ///
    /// - Returns: for each `.set` (by its index in `changes`) whose key the cache held as of
    ///   the commit before this one, the value it replaced: the write's previous value.
    @discardableResult
    func apply(commit: Int, changes: [Change]) -> [Int: any Sendable] {
        guard capacity > 0 else { return [:] }
        return state.withLock { state in
            var replaced: [Int: any Sendable] = [:]
            if commit == state.generation + 1 {
                // The cache reflects exactly the snapshot this commit started from.
                for (index, change) in changes.enumerated() {
                    if let old = Self.apply(change, to: &state, capacity: capacity) { replaced[index] = old }
                }
                state.generation = commit
            } else if commit == state.generation {
                // A reader already moved the cache to this commit's snapshot.
                for change in changes { Self.apply(change, to: &state, capacity: capacity) }
            } else if commit > state.generation + 1 {
                // Commits between the generation and this one were not applied: start over.
                Self.clear(&state)
                state.generation = commit
                for change in changes { Self.apply(change, to: &state, capacity: capacity) }
            } else {
                // The cache already moved past this commit; its values may be stale.
                for change in changes {
                    switch change {
                    case .set(let key, _), .remove(let key): Self.remove(CacheKey(key), from: &state)
                    case .removeKeys(_, let prefix): Self.removeAll(withPrefix: prefix, from: &state)
                    }
                }
            }
            return replaced
        }
    }

    /// Empties the cache.
    func removeAll() {
        state.withLock { Self.clear(&$0) }
    }

    /// Applies one change; for `.set`, returns the value it replaced.
    @discardableResult
    private static func apply(_ change: Change, to state: inout State, capacity: Int) -> (any Sendable)? {
        switch change {
        case .set(let key, let value): return store(value, for: CacheKey(key), in: &state, capacity: capacity)
        case .remove(let key): remove(CacheKey(key), from: &state)
        case .removeKeys(let keys, _): for key in keys { remove(CacheKey(key), from: &state) }
        }
        return nil
    }

    @discardableResult
    private static func store(_ value: any Sendable, for key: CacheKey, in state: inout State, capacity: Int) -> (any Sendable)? {
        if let position = state.index[key] {
            let old = state.slots[position]!.value
            state.slots[position]!.value = value
            state.slots[position]!.referenced = true
            return old
        }
        let position: Int
        if let reused = state.free.popLast() {
            position = reused
        } else if state.slots.count < capacity {
            position = state.slots.count
            state.slots.append(nil)
        } else {
            position = evict(&state)
        }
        state.slots[position] = Slot(key: key, value: value, referenced: false)
        state.index[key] = position
        return nil
    }

    /// Frees one slot by the CLOCK rule and returns it.
    private static func evict(_ state: inout State) -> Int {
        while true {
            let position = state.hand
            state.hand = (state.hand + 1) % state.slots.count
            if state.slots[position]!.referenced {
                state.slots[position]!.referenced = false
            } else {
                state.index.removeValue(forKey: state.slots[position]!.key)
                state.slots[position] = nil
                return position
            }
        }
    }

    private static func remove(_ key: CacheKey, from state: inout State) {
        guard let position = state.index.removeValue(forKey: key) else { return }
        state.slots[position] = nil
        state.free.append(position)
    }

    private static func removeAll(withPrefix prefix: [UInt8], from state: inout State) {
        let doomed = state.index.keys.filter { $0.bytes.starts(with: prefix) }
        for key in doomed { remove(key, from: &state) }
    }

    private static func clear(_ state: inout State) {
        state.index.removeAll(keepingCapacity: true)
        state.slots.removeAll(keepingCapacity: true)
        state.free.removeAll(keepingCapacity: true)
        state.hand = 0
    }
}

/// Record key bytes as a dictionary key that hashes and compares whole buffers at once.
///
/// `[UInt8]`'s own `Hashable` feeds the hasher one byte at a time, which dominated the
/// cost of a cache hit.
struct CacheKey: Hashable {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    static func == (lhs: CacheKey, rhs: CacheKey) -> Bool {
        lhs.bytes.count == rhs.bytes.count && lhs.bytes.withUnsafeBytes { left in
            rhs.bytes.withUnsafeBytes { right in
                left.count == 0 || memcmp(left.baseAddress!, right.baseAddress!, left.count) == 0
            }
        }
    }

    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
