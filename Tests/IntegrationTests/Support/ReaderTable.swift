import CLMDB
import Foundation

/// One slot of LMDB's reader table (the lock file), as `mdb_reader_list` prints it.
struct ReaderSlot: Equatable, CustomStringConvertible {
    var pid: Int32
    /// The snapshot the slot pins, or nil for a reset (idle) slot.
    var snapshot: Int?

    var description: String { "pid \(pid) snapshot \(snapshot.map(String.init) ?? "-")" }
}

/// The reader table of the store at `path`, read with a raw read-only LMDB environment.
///
/// Call it only while this process has no SessionStore open on `path`: LMDB must not
/// map the same files twice in one process (closing one environment drops the other's
/// file locks). Another process should keep the store open meanwhile; otherwise this
/// open may find itself alone, and LMDB resets the table of a lock file nobody uses.
func readerTable(_ path: String) throws -> [ReaderSlot] {
    var env: OpaquePointer?
    guard mdb_env_create(&env) == 0, let env else { throw ChildError("mdb_env_create failed") }
    defer { mdb_env_close(env) }
    _ = mdb_env_set_maxdbs(env, 8)
    let rc = mdb_env_open(env, path, UInt32(MDB_RDONLY | MDB_NOTLS), 0o600)
    guard rc == 0 else { throw ChildError("mdb_env_open(\(path)) for the reader table failed: \(String(cString: mdb_strerror(rc)))") }
    final class Collector { var text = "" }
    let collector = Collector()
    let listed = mdb_reader_list(env, { message, context in
        guard let message, let context else { return -1 }
        Unmanaged<Collector>.fromOpaque(context).takeUnretainedValue().text += String(cString: message)
        return 0
    }, Unmanaged.passUnretained(collector).toOpaque())
    guard listed >= 0 else { throw ChildError("mdb_reader_list failed: \(listed)") }
    return collector.text.split(separator: "\n").compactMap { line in
        let fields = line.split(separator: " ")
        guard fields.count == 3, let pid = Int32(fields[0]) else { return nil }
        return ReaderSlot(pid: pid, snapshot: Int(fields[2]))
    }
}
