import Testing

/// Every crash and fault scenario, in the order they run. Append new ones here.
enum CrashScenarios {
    static let all: [any CrashScenario] = [
        KillLoopScenario(mode: .durable),
        KillLoopScenario(mode: .relaxed),
        KillLoopScenario(mode: .growth),
        StoppedWriterScenario(variant: .waiter),
        StoppedWriterScenario(variant: .fresh),
        StoppedWriterScenario(variant: .freshWithHolder),
        KilledReaderScenario(),
        IOFaultScenario(name: "io-data-write-eio", fault: .shim(kind: "data-write", errno: "EIO", sticky: false)),
        IOFaultScenario(name: "io-data-write-enospc-group", fault: .shim(kind: "data-write", errno: "ENOSPC", sticky: false), tasks: 3),
        IOFaultScenario(name: "io-sync-eio", fault: .shim(kind: "sync", errno: "EIO", sticky: false)),
        IOFaultScenario(name: "io-sync-eio-sticky", fault: .shim(kind: "sync", errno: "EIO", sticky: true), tasks: 2),
        IOFaultScenario(name: "io-meta-write-eio", fault: .shim(kind: "meta-write", errno: "EIO", sticky: false), tasks: 2),
        IOFaultScenario(name: "io-meta-write-enospc", fault: .shim(kind: "meta-write", errno: "ENOSPC", sticky: false)),
        IOFaultScenario(name: "io-data-write-edquot", fault: .shim(kind: "data-write", errno: "EDQUOT", sticky: false), tasks: 2),
        IOFaultScenario(name: "io-relaxed-sync-eio", fault: .shim(kind: "sync", errno: "EIO", sticky: false), tasks: 2, relaxedMilliseconds: 30),
        IOFaultScenario(name: "io-rlimit-fsize", fault: .fileSizeLimit, tasks: 2),
        PowerLossScenario(mode: .creation),
        PowerLossScenario(mode: .creationRelaxed),
        PowerLossScenario(mode: .durable),
        PowerLossScenario(mode: .relaxed),
        PowerLossScenario(mode: .growth),
    ]
}

/// One scenario as a test argument, named after it.
struct ScenarioCase: Sendable, CustomTestStringConvertible {
    let scenario: any CrashScenario
    var testDescription: String { scenario.name }
}

/// Restart survival and fault tolerance (issue #5): real child processes on real LMDB
/// files, killed, stopped and starved of disk, then checked from the outside.
///
/// Serialized: the scenarios time signals and measure file growth, which parallel
/// scenarios would disturb. Each prints a `CRASH-SUMMARY` line; the last one also the
/// total. Environment: `SESSIONSTORE_KILL_ITERATIONS` (default 100),
/// `SESSIONSTORE_POWER_ITERATIONS` (default 120),
/// `SESSIONSTORE_GROWTH_ITERATIONS`, `SESSIONSTORE_SEED` + `SESSIONSTORE_SCENARIO` to
/// replay one iteration, `SESSIONSTORE_RUN_SEED`, `SESSIONSTORE_SUMMARY_FILE`.
@Suite(.serialized) struct CrashScenarioTests {
    @Test("crash scenario", arguments: CrashScenarios.all.map(ScenarioCase.init))
    func scenario(_ entry: ScenarioCase) async {
        await ScenarioRunner.run(entry.scenario)
    }
}
