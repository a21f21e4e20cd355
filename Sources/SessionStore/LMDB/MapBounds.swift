#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CLMDB
import Synchronization

/// Where the file-backed part of an environment's memory map lies, to check every buffer
/// LMDB returns before the package reads it.
///
/// LMDB returns a value as the pointer and size stored in its leaf node, unchecked: a
/// damaged size runs past the end of `data.mdb`, where reading the map is a SIGBUS, or
/// past the map into other memory. ``checked(_:readOnly:_:)`` compares the buffer with the
/// map's base address and the file's size as last seen (two compares, no system call);
/// only a buffer beyond that size costs an `fstat` of LMDB's own descriptor, since the
/// file grows as this and other processes commit. A buffer that still ends past the file
/// is `MDB_CORRUPTED`.
///
/// Write transactions also return buffers in their dirty pages, which LMDB allocated
/// outside the map; those pass unchecked. Read transactions only ever point into the map.
// @unchecked Sendable: every field is an atomic; `base` and `mapSize` change only in
// ``refresh(_:)``, which the environment calls with its gate held exclusively, so never
// while a transaction (and so a check) runs.
final class MapBounds: @unchecked Sendable {
    private let base = Atomic<UInt>(0)
    private let mapSize = Atomic<UInt>(0)
    private let fileSize = Atomic<UInt>(0)
    /// LMDB's read-write descriptor of the data file (its size, and its inode to find the
    /// map); a new one after the environment reopened.
    private let descriptorValue = Atomic<Int32>(-1)
    private var descriptor: Int32 { descriptorValue.load(ordering: .relaxed) }

    /// Reads the map and file of the open environment `env`.
    init(_ env: OpaquePointer) {
        refresh(env)
    }

    /// Finds the data file's descriptor, the map's address and size again, after
    /// `mdb_env_set_mapsize` moved the map or the environment reopened.
    ///
    /// LMDB does not tell where it mapped the file (`mdb_env_info`'s `me_mapaddr` is the
    /// address stored for `MDB_FIXEDMAP`, null otherwise), so on Linux the mapping of the
    /// data file's inode is looked up in `/proc/self/maps`. Where that fails (or on other
    /// systems) every buffer passes: the check is then off, not wrong.
    func refresh(_ env: OpaquePointer) {
        var fd: mdb_filehandle_t = -1
        descriptorValue.store(mdb_env_get_fd(env, &fd) == 0 ? fd : -1, ordering: .relaxed)
        var info = MDB_envinfo()
        guard mdb_env_info(env, &info) == 0, let start = Self.mappingStart(of: descriptor) else {
            base.store(0, ordering: .relaxed)
            mapSize.store(UInt.max, ordering: .relaxed)
            fileSize.store(UInt.max, ordering: .relaxed)
            return
        }
        base.store(start, ordering: .relaxed)
        mapSize.store(UInt(info.me_mapsize), ordering: .relaxed)
        _ = readFileSize()
    }

    /// The start of this process's mapping of the file open as `fd`, from offset 0.
    private static func mappingStart(of fd: Int32) -> UInt? {
        #if os(Linux)
        var info = stat()
        guard fd >= 0, fstat(fd, &info) == 0, let maps = fopen("/proc/self/maps", "r") else { return nil }
        defer { fclose(maps) }
        // Lines read "start-end perms offset major:minor inode path".
        var line = [CChar](repeating: 0, count: 4096 + 256)
        while fgets(&line, Int32(line.count), maps) != nil {
            let fields = String(cString: line).split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 5, UInt64(fields[2], radix: 16) == 0, UInt64(fields[4]) == UInt64(info.st_ino),
                  let range = fields[0].split(separator: "-").first, let start = UInt(range, radix: 16) else { continue }
            // glibc's major() and minor() of the file's device, which are macros.
            let dev = UInt64(info.st_dev)
            let major = (dev >> 8) & 0xFFF | (dev >> 32) & ~0xFFF, minor = dev & 0xFF | (dev >> 12) & ~0xFF
            let device = fields[3].split(separator: ":").compactMap { UInt64($0, radix: 16) }
            guard device == [major, minor] else { continue }
            return start
        }
        return nil
        #else
        return nil
        #endif
    }

    /// `value` as a buffer, after checking that it lies in the file-backed part of the map.
    ///
    /// - Throws: `MDB_CORRUPTED` naming `function` when it runs past the end of the file or
    ///   (in a read transaction) lies outside the map.
    @inline(__always)
    func checked(_ value: MDB_val, readOnly: Bool, _ function: @autoclosure () -> String) throws(LMDBError) -> UnsafeRawBufferPointer {
        let offset = UInt(bitPattern: value.mv_data) &- base.load(ordering: .relaxed)
        let limit = min(fileSize.load(ordering: .relaxed), mapSize.load(ordering: .relaxed))
        if offset < limit && UInt(value.mv_size) <= limit &- offset || value.mv_size == 0 {
            return UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size)
        }
        return try checkedSlowly(value, readOnly: readOnly, function())
    }

    @inline(never)
    private func checkedSlowly(_ value: MDB_val, readOnly: Bool, _ function: String) throws(LMDBError) -> UnsafeRawBufferPointer {
        let buffer = UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size)
        let offset = UInt(bitPattern: value.mv_data) &- base.load(ordering: .relaxed)
        let mapped = mapSize.load(ordering: .relaxed)
        if offset >= mapped {
            if !readOnly { return buffer }
            throw LMDBError(code: LMDBError.corrupted, function: function,
                            detail: "a value of \(value.mv_size) bytes lies outside the data file's memory map")
        }
        // The file may have grown since it was last measured (or the check is off).
        if mapped == UInt.max { return buffer }
        let limit = min(readFileSize(), mapped)
        if offset < limit && UInt(value.mv_size) <= limit - offset { return buffer }
        throw LMDBError(code: LMDBError.corrupted, function: function,
                        detail: "a value of \(value.mv_size) bytes at offset \(offset) runs past the end of the data file (\(limit) bytes): the file is damaged")
    }

    /// Measures the file again and returns its size.
    private func readFileSize() -> UInt {
        var info = stat()
        guard descriptor >= 0, fstat(descriptor, &info) == 0 else { return fileSize.load(ordering: .relaxed) }
        let size = UInt(max(0, info.st_size))
        fileSize.store(size, ordering: .relaxed)
        return size
    }
}
