import CBORCoding
import CLMDB

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A store's directory and its two files, checked (and created when missing) before LMDB
/// opens them, and the store's databases and format record checked once it has.
///
/// The rules, for the directory and for each of `data.mdb` and `lock.mdb`:
/// - it is not a symbolic link (the directory's last path component, or a file planted as
///   a link): a link could send LMDB's writes anywhere;
/// - it belongs to the process's effective user, unless that user is root (uid 0), which
///   may open, and so inspect, a store of any user;
/// - its group and others may not write to it (refused even for root);
/// - a missing directory is made 0700, missing files 0600, whatever the umask; existing
///   files that others may read are narrowed to 0600 once the store is known to be a
///   store, but only by their owner (root leaves another user's store as it found it).
///
/// Since the directory is the user's own and no one else may write to it, no other user
/// can swap its files between these checks and LMDB's open; the data file LMDB opened is
/// compared with the one checked all the same. The directories above the store must not
/// be writable by other users either (as usual for any file a program trusts).
///
/// Use it in three steps: ``init(path:effectiveUID:)`` (the directory), then, with the
/// path registered as open in this process, ``prepareFiles()``, then, with the
/// environment open, ``openDatabases(in:)``.
final class StoreDirectory {
    /// The directory's path as given, without trailing slashes and `.` components.
    let path: String
    /// The directory's path with every link above it resolved: the key of the open-path registry.
    let canonicalPath: String
    /// The open directory, for the `*at` calls.
    private let descriptor: Int32
    private let effectiveUID: uid_t
    /// The device and inode of `data.mdb`, once ``prepareFiles()`` checked it.
    private var dataFile: (device: UInt64, inode: UInt64)?
    /// Existing files others may read, to narrow to 0600 once the environment is known to be a store.
    private var filesToNarrow: [String] = []

    static let fileNames = ["data.mdb", "lock.mdb"]

    /// Opens the directory at `path`, creating it (0700) when missing, and checks it.
    ///
    /// - Parameter effectiveUID: the user the checks are made for; tests pass another.
    /// - Throws: `.invalidPath` (a file, or a missing parent), `.permissionDenied` (a link,
    ///   another owner, writable by others, or not writable by this process), `.ioFailure`.
    init(path given: String, effectiveUID: uid_t = geteuid()) throws(SessionStoreError) {
        let path = Self.trimmed(given)
        self.path = path
        self.effectiveUID = effectiveUID
        var created = false
        var info = stat()
        if lstat(path, &info) != 0 {
            let code = errno
            guard code == ENOENT else { throw Self.failure(code, "cannot inspect \(path)") }
            if mkdir(path, 0o700) == 0 {
                created = true
            } else if errno != EEXIST {  // EEXIST: another process made it just now; check it as found
                let code = errno
                switch code {
                case ENOENT: throw SessionStoreError(.invalidPath, "cannot create \(path): its parent directory does not exist")
                case ENOTDIR: throw SessionStoreError(.invalidPath, "cannot create \(path): a parent is not a directory")
                default: throw Self.failure(code, "cannot create \(path)")
                }
            }
        }
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard descriptor >= 0 else {
            let code = errno
            if lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFLNK {
                throw SessionStoreError(.permissionDenied, "\(path) is a symbolic link; open the store's directory by its real path, since whoever can change a link can redirect the store")
            }
            if code == ENOTDIR {
                throw SessionStoreError(.invalidPath, "\(path) is a file, not a directory; a store needs a directory of its own")
            }
            throw Self.failure(code, "cannot open the directory \(path)")
        }
        self.descriptor = descriptor
        do throws(SessionStoreError) {
            guard fstat(descriptor, &info) == 0 else { throw Self.failure(errno, "cannot inspect \(path)") }
            try Self.checkOwnerAndMode(info, path, effectiveUID: effectiveUID)
            if access(path, W_OK | X_OK) != 0 {
                throw SessionStoreError(.permissionDenied, "the directory \(path) is not writable by this process")
            }
            if created {
                // mkdir's mode is filtered by the umask; set it exactly, then make the new
                // directory's name durable.
                _ = fchmod(descriptor, 0o700)
                try Self.syncParent(of: path)
            }
            guard let resolved = realpath(path, nil) else {
                throw SessionStoreError(.invalidPath, "cannot resolve \(path): \(String(cString: strerror(errno)))")
            }
            canonicalPath = String(cString: resolved)
            free(resolved)
        } catch {
            close(descriptor)
            throw error
        }
    }

    deinit {
        close(descriptor)
    }

    /// Creates `data.mdb` and `lock.mdb` (0600) when missing and checks them when present.
    ///
    /// Call it only while no environment of this process has the files open (after the
    /// path is registered): LMDB holds a POSIX lock on `lock.mdb`, and closing any
    /// descriptor of that file in the process drops it.
    func prepareFiles() throws(SessionStoreError) {
        var created = false
        for name in Self.fileNames {
            let file = path + "/" + name
            var fd = openat(descriptor, name, O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if fd >= 0 {
                created = true
                _ = fchmod(fd, 0o600)  // the umask filtered the mode
            } else if errno == EEXIST {
                // O_NONBLOCK: a planted FIFO must not block the open.
                fd = openat(descriptor, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
            }
            guard fd >= 0 else {
                let code = errno
                var info = stat()
                if fstatat(descriptor, name, &info, AT_SYMLINK_NOFOLLOW) == 0 && (info.st_mode & S_IFMT) == S_IFLNK {
                    throw SessionStoreError(.permissionDenied, "\(file) is a symbolic link; a store's files must be regular files in its directory, since a planted link redirects LMDB's writes. Remove the link")
                }
                throw Self.failure(code, "cannot open \(file)")
            }
            defer { close(fd) }
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw Self.failure(errno, "cannot inspect \(file)") }
            guard (info.st_mode & S_IFMT) == S_IFREG else {
                throw SessionStoreError(.invalidPath, "\(file) is not a regular file; a store's files must be regular files")
            }
            try Self.checkOwnerAndMode(info, file, effectiveUID: effectiveUID)
            if info.st_mode & 0o777 != 0o600 && info.st_uid == effectiveUID { filesToNarrow.append(name) }
            if name == "data.mdb" { dataFile = (UInt64(truncatingIfNeeded: info.st_dev), UInt64(truncatingIfNeeded: info.st_ino)) }
        }
        if created { try Self.sync(descriptor, path) }
    }

    /// Opens the store's databases in `environment`: in a new environment it creates them
    /// and the format record in one transaction, in an existing one it checks the format.
    ///
    /// An environment is taken as a store when `meta` holds a format record, or when it
    /// holds nothing but an empty `records` and an empty `meta` database (what an earlier
    /// version's crash between its creation transactions could leave), and as new when its
    /// main database is empty. Any other LMDB environment belongs to another program and
    /// is refused with `.invalidPath`, unchanged.
    ///
    /// Then narrows the modes of existing files that others may read (see the type).
    func openDatabases(in environment: Environment) throws(SessionStoreError) -> (records: MDB_dbi, metadata: MDB_dbi) {
        var info = stat()
        guard fstat(environment.dataFileDescriptor, &info) == 0,
              let dataFile, dataFile.device == UInt64(truncatingIfNeeded: info.st_dev), dataFile.inode == UInt64(truncatingIfNeeded: info.st_ino) else {
            throw SessionStoreError(.permissionDenied, "\(path)/data.mdb was replaced while the store was opening: the file LMDB opened is not the file that was checked")
        }
        let databases: (records: MDB_dbi, metadata: MDB_dbi)
        do {
            databases = try environment.write { txn in try Self.openDatabases(txn, path: path) }
        } catch let error as SessionStoreError {
            throw error
        } catch let error as LMDBError {
            throw SessionStoreError(error, while: "opening the databases of the store at \(path)")
        } catch {
            throw SessionStoreError(.storageFailure, "opening the databases of the store at \(path): \(error)")
        }
        for name in filesToNarrow {
            // Not open-and-fchmod: closing that descriptor of lock.mdb would drop LMDB's lock.
            if name == "data.mdb" {
                _ = fchmod(environment.dataFileDescriptor, 0o600)
            } else {
                _ = fchmodat(descriptor, name, 0o600, AT_SYMLINK_NOFOLLOW)
            }
        }
        return databases
    }

    private static let formatKey = Array("format".utf8)

    /// The body of ``openDatabases(in:)``, in its write transaction.
    private static func openDatabases(_ txn: Transaction, path: String) throws -> (records: MDB_dbi, metadata: MDB_dbi) {
        // The main database's keys are the names of the named databases (and, in another
        // program's environment, maybe plain keys). A few are enough to judge.
        let main = try txn.openDatabase(nil, create: false)!
        var names: [String] = []
        let more = try txn.withCursor(main) { cursor in
            var entry = try cursor.first()
            while let current = entry, names.count < 8 {
                names.append(describe(current.key))
                entry = try cursor.next()
            }
            return entry != nil
        }
        if names.contains("meta"), let metadata = try existingDatabase(txn, "meta"),
           let stored = try txn.get(metadata, key: formatKey) {
            let version = (try? CBORDecoder().decode(Int.self, from: stored)) ?? Int.max
            if version > Record.formatVersion {
                throw SessionStoreError(.newerFormat, "the store at \(path) has format version \(version == Int.max ? "unknown" : String(version)); this SessionStore reads up to \(Record.formatVersion). Upgrade SessionStore")
            }
            return (try txn.openDatabase("records", create: true)!, metadata)
        }
        let leftover = !more && names.allSatisfy { ["records", "meta"].contains($0) }
        guard try leftover && names.allSatisfy({ try isEmptyDatabase(txn, $0) }) else {
            let content = names.map { "\"\($0)\"" }.joined(separator: ", ") + (more ? ", …" : "")
            throw SessionStoreError(.invalidPath, "the directory \(path) holds an LMDB environment that is not a SessionStore store: it has no SessionStore format record, and its main database holds \(content). It was left unchanged; give the store a directory of its own")
        }
        let records = try txn.openDatabase("records", create: true)!
        let metadata = try txn.openDatabase("meta", create: true)!
        try txn.put(metadata, key: formatKey, value: CBOREncoder().encodeBytes(Record.formatVersion))
        return (records, metadata)
    }

    /// The named database `name`, or nil when it is missing or a plain key of the main database.
    private static func existingDatabase(_ txn: Transaction, _ name: String) throws(LMDBError) -> MDB_dbi? {
        do {
            return try txn.openDatabase(name, create: false)
        } catch where error.code == LMDBError.incompatible {
            return nil
        }
    }

    private static func isEmptyDatabase(_ txn: Transaction, _ name: String) throws -> Bool {
        guard let dbi = try existingDatabase(txn, name) else { return false }
        return try txn.withCursor(dbi) { cursor in try cursor.first() == nil }
    }

    /// A key of a foreign main database, readable in a message.
    private static func describe(_ key: UnsafeRawBufferPointer) -> String {
        let text = String(decoding: key.prefix(40), as: UTF8.self)
        return String(text.unicodeScalars.map { $0.properties.isWhitespace || $0.value < 0x20 || $0 == "\u{FFFD}" ? "?" : Character($0) })
            + (key.count > 40 ? "…" : "")
    }

    /// Refuses a directory or file of another owner (unless the user is root), or one its
    /// group or others may write to.
    private static func checkOwnerAndMode(_ info: stat, _ name: String, effectiveUID: uid_t) throws(SessionStoreError) {
        if info.st_uid != effectiveUID && effectiveUID != 0 {
            throw SessionStoreError(.permissionDenied, "\(name) is owned by uid \(info.st_uid), not by this process's user (uid \(effectiveUID)); a store may be opened only by its owner or by root")
        }
        if info.st_mode & 0o022 != 0 {
            let mode = String(info.st_mode & 0o7777, radix: 8)
            throw SessionStoreError(.permissionDenied, "\(name) is writable by its group or by others (mode \(mode)); a store must be writable by its owner only: chmod go-w it")
        }
    }

    /// Fsyncs the directory that holds `path`, which this open created.
    private static func syncParent(of path: String) throws(SessionStoreError) {
        let parent: String
        if let slash = path.lastIndex(of: "/") {
            parent = slash == path.startIndex ? "/" : String(path[..<slash])
        } else {
            parent = "."
        }
        let fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }  // an unreadable parent cannot be synced; nothing more to do
        defer { close(fd) }
        try sync(fd, parent)
    }

    /// Fsyncs the directory `fd`, so the names created in it survive a power loss.
    private static func sync(_ fd: Int32, _ name: String) throws(SessionStoreError) {
        guard fsync(fd) != 0 else { return }
        let code = errno
        // Some file systems do not sync directories (EINVAL); that is no I/O failure.
        guard code != EINVAL && code != ENOTSUP else { return }
        throw SessionStoreError(.ioFailure, "syncing the directory \(name) failed: \(String(cString: strerror(code)))")
    }

    /// `path` without trailing slashes and trailing `.` components, so that its last
    /// component is the one checked for a link.
    static func trimmed(_ path: String) -> String {
        var path = Substring(path)
        while true {
            if path.count > 1 && path.hasSuffix("/") {
                path.removeLast()
            } else if path.count > 2 && path.hasSuffix("/.") {
                path.removeLast(2)
            } else {
                return String(path)
            }
        }
    }

    /// The error for a failed system call on the store's directory or files.
    private static func failure(_ code: Int32, _ action: String) -> SessionStoreError {
        let text = "\(action): \(String(cString: strerror(code)))"
        switch code {
        case EACCES, EPERM, EROFS: return SessionStoreError(.permissionDenied, text)
        case EIO: return SessionStoreError(.ioFailure, text)
        default: return SessionStoreError(.invalidPath, text)
        }
    }
}
