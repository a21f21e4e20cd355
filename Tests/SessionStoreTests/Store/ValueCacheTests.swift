import Foundation
import Testing
@testable import SessionStore

/// The cache's own hash table: lookups, replacement, removal (backward-shift deletion),
/// growth and CLOCK eviction, checked against a plain `Dictionary` model.
@Suite struct ValueCacheTests {
    /// Keys shaped like record keys, many sharing long prefixes, some only a byte apart.
    static func key(_ n: Int) -> [UInt8] {
        Array("session/s\(n % 37)/".utf8) + [0x60 | UInt8(n % 20)] + Array(String(n).utf8)
    }

    static func read(_ cache: ValueCache, _ key: [UInt8], at snapshot: Int) -> Int? {
        key.withUnsafeBytes { cache.value(for: $0, snapshot: snapshot) }?.value(as: Int.self)
    }

    @Test func withRoomForEveryKeyItAgreesWithADictionaryThroughSetsAndRemoves() {
        var random = SplitMix.fromEnvironment()
        let seed = random.state
        let cache = ValueCache(capacity: 5_000)
        var model: [[UInt8]: Int] = [:]
        var commit = 0
        for step in 0..<40_000 {
            let key = Self.key(Int.random(in: 0..<3_000, using: &random))
            commit += 1
            if Bool.random(using: &random) || model.isEmpty {
                let replaced = cache.apply(commit: commit, changes: [.set(key, ValueBox(step))])
                #expect(replaced[0]?.value(as: Int.self) == model[key], "seed \(seed), step \(step)")
                model[key] = step
            } else {
                cache.apply(commit: commit, changes: [.remove(key)])
                model[key] = nil
            }
            if step % 97 == 0 {
                for probe in 0..<3_000 {
                    let key = Self.key(probe)
                    #expect(Self.read(cache, key, at: commit) == model[key], "seed \(seed), step \(step), key \(probe)")
                }
            }
        }
        #expect(cache.count == model.count)
    }

    @Test func whenFullItEvictsButNeverServesAStaleValue() {
        var random = SplitMix.fromEnvironment()
        let seed = random.state
        let cache = ValueCache(capacity: 64)
        var model: [[UInt8]: Int] = [:]
        var commit = 0
        for step in 0..<20_000 {
            let key = Self.key(Int.random(in: 0..<500, using: &random))
            commit += 1
            switch Int.random(in: 0..<10, using: &random) {
            case 0..<6:
                cache.apply(commit: commit, changes: [.set(key, ValueBox(step))])
                model[key] = step
                // A value just written is always there, even when its insertion evicted another.
                #expect(Self.read(cache, key, at: commit) == step, "seed \(seed), step \(step)")
            case 6..<8:
                cache.apply(commit: commit, changes: [.remove(key)])
                model[key] = nil
            default:
                if let cached = Self.read(cache, key, at: commit) {
                    #expect(cached == model[key], "seed \(seed), step \(step)")
                }
            }
            #expect(cache.count <= 64)
        }
    }

    @Test func aPrefixRemovalDropsExactlyThatScope() {
        let cache = ValueCache(capacity: 1_000)
        let keys = (0..<600).map(Self.key)
        cache.apply(commit: 2, changes: keys.enumerated().map { .set($1, ValueBox($0)) })
        let prefix = Array("session/s3/".utf8)
        let doomed = keys.filter { $0.starts(with: prefix) }
        #expect(doomed.count > 10)
        // A commit older than the cache's generation: its deleted keys are unknown, so the
        // cache drops the whole prefix.
        cache.apply(commit: 1, changes: [.removeKeys([], prefix: prefix)])
        for (index, key) in keys.enumerated() {
            let expected = key.starts(with: prefix) ? nil : index
            #expect(Self.read(cache, key, at: 2) == expected)
        }
        #expect(cache.count == keys.count - doomed.count)
    }

    @Test func underAByteBudgetItNeverHoldsMoreBytesThanTheBudgetAndNeverServesAStaleValue() {
        var random = SplitMix.fromEnvironment()
        let seed = random.state
        let limit = 50_000
        let cache = ValueCache(capacity: 1_000, byteLimit: limit)
        var model: [[UInt8]: Int] = [:]
        for commit in 1...5_000 {
            let key = Self.key(Int(random.next() % 300))
            // Costs from tiny to more than the whole budget.
            let cost = Int(random.next() % 8 == 0 ? random.next() % 80_000 : random.next() % 3_000)
            cache.apply(commit: commit, changes: [.set(key, ValueBox(commit), cost: cost)])
            model[key] = commit
            #expect(cache.byteCount <= limit, "seed \(seed)")
            if let cached = Self.read(cache, key, at: commit) {
                #expect(cached == model[key], "seed \(seed)")
            } else {
                #expect(cost + key.count > limit, "a value within the budget was not kept, seed \(seed)")
            }
            let probe = Self.key(Int(random.next() % 300))
            if let cached = Self.read(cache, probe, at: commit) { #expect(cached == model[probe], "seed \(seed)") }
        }
    }

    @Test func aNewerSnapshotEmptiesItAndAnOlderReadIsNotInserted() {
        let cache = ValueCache(capacity: 10)
        let key = Self.key(1)
        cache.insert(ValueBox(1), for: key, readAt: 5)
        #expect(Self.read(cache, key, at: 5) == 1)
        #expect(Self.read(cache, key, at: 6) == nil)   // another process committed
        #expect(cache.count == 0)
        cache.insert(ValueBox(2), for: key, readAt: 4)  // read before the commit the cache has seen
        #expect(Self.read(cache, key, at: 6) == nil)
    }

    @Test func aLoadThatSeesThisProcesssCommitBeforeItIsAppliedDoesNotEmptyTheCache() {
        let cache = ValueCache(capacity: 100)
        let (a, b) = (Self.key(1), Self.key(2))
        let scoped = Array("instance/s1/t/".utf8) + [0x61]
        cache.apply(commit: 5, changes: [.set(a, ValueBox(1)), .set(b, ValueBox(2)), .set(scoped, ValueBox(3))])
        cache.announce(commit: 6, keys: [a], prefixes: [Array("instance/s1/".utf8)])
        #expect(Self.read(cache, a, at: 5) == 1)          // readers still on snapshot 5
        // Commit 6 (ours) is visible to readers but not applied yet: the keys it changes
        // miss, every other key is served.
        #expect(Self.read(cache, a, at: 6) == nil)
        #expect(Self.read(cache, scoped, at: 6) == nil)
        #expect(Self.read(cache, b, at: 6) == 2)
        cache.insert(ValueBox(10), for: a, readAt: 6)     // not kept: 6 is not applied
        cache.apply(commit: 6, changes: [.set(a, ValueBox(11)), .removeKeys([scoped], prefix: Array("instance/s1/".utf8))])
        #expect(Self.read(cache, a, at: 6) == 11)
        #expect(Self.read(cache, b, at: 6) == 2)          // survived
        #expect(Self.read(cache, scoped, at: 6) == nil)
        // A commit this process did not announce is another process's: start over.
        #expect(Self.read(cache, b, at: 7) == nil)
        #expect(cache.count == 0)
    }

    @Test func aWithdrawnCommitsIdIsTreatedAsAnotherProcesssCommit() {
        let cache = ValueCache(capacity: 100)
        let a = Self.key(1)
        cache.apply(commit: 5, changes: [.set(a, ValueBox(1))])
        cache.announce(commit: 6, keys: [Self.key(2)], prefixes: [])
        cache.withdrawCommit()      // it failed or changed nothing; another process may take id 6
        #expect(Self.read(cache, a, at: 6) == nil)
        #expect(cache.count == 0)
    }

    @Test func aCachedValueOnlyLoadsAsItsExactType() {
        let box: CachedValue = ValueBox<Int?>(3)
        #expect(box.value(as: Int.self) == nil)
        #expect(box.value(as: Int?.self) == .some(3))
        #expect(ValueBox("x").value(as: String.self) == "x")
    }

    @Test func keysPreparedAgainstTheHashsConstantsDoNotCollideUnderARandomSeed() {
        // A block equal to a public constant of the hash once zeroed its state, so such
        // keys hashed alike whatever the seed.
        let constants: [UInt64] = [0xe703_7ed1_a0b4_28db, 0xa076_1d64_78bd_642f]
        var random = SplitMix.fromEnvironment()
        let seed = random.next()
        for constant in constants {
            var hashes = Set<UInt64>()
            for n in 0..<1_000 {
                var key = Array("session/s\(n)/".utf8) + [0x58, 0x20] + (0..<16).map { _ in UInt8.random(in: 0...255, using: &random) }
                withUnsafeBytes(of: constant.littleEndian) { key += $0 }
                key += withUnsafeBytes(of: random.next()) { Array($0) }
                hashes.insert(key.withUnsafeBytes { ValueCache.hash($0, seed: seed) })
            }
            #expect(hashes.count == 1_000, "seed \(seed)")
        }
    }

    @Test func theHashDependsOnTheSeedAndSpreadsTheLowBits() {
        let key = Array("session/abc/".utf8) + Array(repeating: 0x61, count: 40)
        let hashes = (0..<1_024).map { seed in key.withUnsafeBytes { ValueCache.hash($0, seed: UInt64(seed)) } }
        #expect(Set(hashes).count == 1_024)
        // The table uses the low bits: 1,024 seeds should fill most of 256 buckets.
        #expect(Set(hashes.map { $0 & 0xFF }).count > 200)
    }

    @Test func theHashSpreadsKeysThatDifferInOneByte() {
        var seen = Set<UInt64>()
        let base = Array("session/abc/".utf8) + Array(repeating: 0x61, count: 40)
        for length in 0...base.count {
            for byte in 0..<256 {
                var key = Array(base[..<length])
                if length > 0 { key[length - 1] = UInt8(byte) } else if byte > 0 { continue }
                seen.insert(key.withUnsafeBytes { ValueCache.hash($0, seed: 42) })
            }
        }
        // Every distinct key got a distinct hash.
        #expect(seen.count == 1 + base.count * 256)
    }
}
