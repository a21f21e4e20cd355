import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Monotonic nanoseconds (vDSO `clock_gettime`, about 20 ns here).
@inline(__always)
func now() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
}

/// The cost of one `now()` call, subtracted from sampled latencies.
let clockOverhead: UInt64 = {
    var best = UInt64.max
    for _ in 0..<50 {
        let start = now()
        for _ in 0..<1000 { _ = now() }
        best = min(best, (now() - start) / 1000)
    }
    return best
}()

/// What one round of one row measured.
struct Round {
    var operations: Int
    var seconds: Double
    /// Latencies of the timed operations, nanoseconds.
    var latencies: [UInt64]

    var opsPerSecond: Double { Double(operations) / seconds }
}

/// Runs `body(i)` on the calling thread until `seconds` pass; times one call in `sampleEvery`.
///
/// The stop check reads the clock every 64 untimed calls, so fast loops pay almost
/// nothing for it; every timed call pays two clock reads, minus the measured overhead.
@inline(__always)
func runLoop(seconds: Double, sampleEvery: Int, _ body: (Int) throws -> Void) rethrows -> Round {
    let budget = UInt64(seconds * 1e9)
    var latencies: [UInt64] = []
    latencies.reserveCapacity(sampleEvery == 1 ? 1 << 16 : 1 << 20)
    let start = now()
    let deadline = start + budget
    var i = 0
    var end = start
    if sampleEvery == 1 {
        var last = start
        while last < deadline {
            try body(i)
            let t = now()
            latencies.append(t - last)
            last = t
            i += 1
        }
        end = last
    } else {
        outer: while true {
            for _ in 0..<64 {
                if i % sampleEvery == 0 {
                    let t0 = now()
                    try body(i)
                    let t1 = now()
                    let elapsed = t1 - t0
                    latencies.append(elapsed > clockOverhead ? elapsed - clockOverhead : 0)
                } else {
                    try body(i)
                }
                i += 1
            }
            end = now()
            if end >= deadline { break outer }
        }
    }
    return Round(operations: i, seconds: Double(end - start) / 1e9, latencies: latencies)
}

/// Runs `threads` OS threads, each calling `body(thread, i)` until `seconds` pass, timing every call.
func runThreads(_ threads: Int, seconds: Double, _ body: @escaping @Sendable (Int, Int) throws -> Void) throws -> Round {
    final class Box: @unchecked Sendable {
        var latencies: [[UInt64]]
        var counts: [Int]
        var errors: [Error?]
        init(_ n: Int) {
            latencies = Array(repeating: [], count: n)
            counts = Array(repeating: 0, count: n)
            errors = Array(repeating: nil, count: n)
        }
    }
    let box = Box(threads)
    let ready = Atomic<Int>(0)
    let go = Atomic<Bool>(false)
    let finished = DispatchGroup()
    let deadline = Atomic<UInt64>(0)
    for t in 0..<threads {
        finished.enter()
        let thread = Thread {
            var latencies: [UInt64] = []
            latencies.reserveCapacity(1 << 14)
            var count = 0
            ready.add(1, ordering: .relaxed)
            while !go.load(ordering: .acquiring) { usleep(50) }
            let stop = deadline.load(ordering: .relaxed)
            var last = now()
            do {
                while last < stop {
                    try body(t, count)
                    let t1 = now()
                    latencies.append(t1 - last)
                    last = t1
                    count += 1
                }
            } catch {
                box.errors[t] = error
            }
            box.latencies[t] = latencies
            box.counts[t] = count
            finished.leave()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
    while ready.load(ordering: .relaxed) < threads { usleep(100) }
    let start = now()
    deadline.store(start + UInt64(seconds * 1e9), ordering: .relaxed)
    go.store(true, ordering: .releasing)
    finished.wait()
    let end = now()
    if let error = box.errors.compactMap({ $0 }).first { throw error }
    return Round(operations: box.counts.reduce(0, +), seconds: Double(end - start) / 1e9,
                 latencies: box.latencies.flatMap { $0 })
}

/// Runs `tasks` child tasks, each awaiting `body(task, i)` until `seconds` pass, timing every call.
func runTasks(_ tasks: Int, seconds: Double, _ body: @escaping @Sendable (Int, Int) async throws -> Void) async throws -> Round {
    let start = now()
    let deadline = start + UInt64(seconds * 1e9)
    let results = try await withThrowingTaskGroup(of: (Int, [UInt64]).self) { group in
        for t in 0..<tasks {
            group.addTask {
                var latencies: [UInt64] = []
                latencies.reserveCapacity(1 << 14)
                var count = 0
                var last = now()
                while last < deadline {
                    try await body(t, count)
                    let t1 = now()
                    latencies.append(t1 - last)
                    last = t1
                    count += 1
                }
                return (count, latencies)
            }
        }
        var all: [(Int, [UInt64])] = []
        for try await result in group { all.append(result) }
        return all
    }
    let end = now()
    return Round(operations: results.reduce(0) { $0 + $1.0 }, seconds: Double(end - start) / 1e9,
                 latencies: results.flatMap { $0.1 })
}

/// Percentile `p` (0...1) of `values` in nanoseconds; sorts a copy.
func percentiles(_ values: [UInt64], _ ps: [Double]) -> [Double] {
    guard !values.isEmpty else { return ps.map { _ in .nan } }
    let sorted = values.sorted()
    return ps.map { p in
        let index = min(sorted.count - 1, max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))
        return Double(sorted[index])
    }
}

/// A seeded generator (SplitMix64), so every run uses the same keys and orders.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
