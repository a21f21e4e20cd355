/// An error thrown by SessionStore, with a stable code to switch on and a message that
/// says what was wrong and what to do.
///
/// ```swift
/// do { try session.save(value, for: .prefs) }
/// catch let error as SessionStoreError where error.code == .mapFull { ... }
/// ```
public struct SessionStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A stable, switchable error code.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// A session or instance id is empty, too long, or has characters outside `[A-Za-z0-9._~-]`.
        public static let invalidID = Code(rawValue: "invalidID")
        /// The encoded key plus its scope prefix is longer than LMDB's key limit (511 bytes).
        public static let keyTooLong = Code(rawValue: "keyTooLong")
        /// The encoded value is larger than `Configuration.maxValueSize`.
        public static let valueTooLarge = Code(rawValue: "valueTooLarge")
        /// The key or value could not be encoded to CBOR.
        public static let encodingFailed = Code(rawValue: "encodingFailed")
        /// The stored value is of another type than the one asked for.
        public static let typeMismatch = Code(rawValue: "typeMismatch")
        /// A stored record is not a well-formed SessionStore record, or its value does not decode.
        public static let corruptedRecord = Code(rawValue: "corruptedRecord")
        /// The store was written by a newer SessionStore format than this version reads.
        public static let newerFormat = Code(rawValue: "newerFormat")
        /// The write would grow the store beyond `Configuration.maxMapSize`.
        public static let mapFull = Code(rawValue: "mapFull")
        /// The store was closed; open it again to go on.
        public static let storeClosed = Code(rawValue: "storeClosed")
        /// The path is already open as a store in this process; share that instance.
        public static let alreadyOpen = Code(rawValue: "alreadyOpen")
        /// The path cannot hold a store (it is a file, a parent is missing, or it holds an
        /// LMDB environment that is not a SessionStore store).
        public static let invalidPath = Code(rawValue: "invalidPath")
        /// The process may not read or write the store's directory or files, or they fail
        /// the ownership and link checks (see `SessionStore.init(path:configuration:)`).
        public static let permissionDenied = Code(rawValue: "permissionDenied")
        /// A disk write or sync failed. ``SessionStoreError/errorNumber`` tells why.
        ///
        /// Out of space (``SessionStoreError/isOutOfSpace``: `ENOSPC`, `EDQUOT`, `EFBIG`):
        /// the failed write stored nothing and the store goes on; writes succeed again once
        /// space is freed. Any other cause (`EIO`, a failed sync): an unsynced commit may be
        /// lost, so writes are refused until the store is reopened.
        public static let ioFailure = Code(rawValue: "ioFailure")
        /// The configuration is not usable (for example a map size below the minimum).
        public static let invalidConfiguration = Code(rawValue: "invalidConfiguration")
        /// A `loadOrInit` would wait for itself: called again for the same key from inside its
        /// own `make` closure, or waiting for a build that waits, through other builds, for it.
        public static let initCycle = Code(rawValue: "initCycle")
        /// The calling task was cancelled before its write was queued; nothing was written.
        public static let cancelled = Code(rawValue: "cancelled")
        /// LMDB reported a condition without a more specific code; the message has LMDB's text.
        public static let storageFailure = Code(rawValue: "storageFailure")
    }

    /// What went wrong, to switch on.
    public let code: Code
    /// A readable explanation naming the key, id or path concerned.
    public let message: String
    /// The operating system's error number behind the error (`ENOSPC`, `EIO`, `EACCES`, ...),
    /// or nil when the cause was not a system call's failure.
    public let errorNumber: Int32?

    public init(_ code: Code, _ message: String, errorNumber: Int32? = nil) {
        self.code = code
        self.message = message
        self.errorNumber = errorNumber
    }

    /// Whether the cause was a full disk, quota or file size limit (`ENOSPC`, `EDQUOT`, `EFBIG`).
    ///
    /// When a commit hit it, nothing of the write was stored and the store goes on. A
    /// relaxed-mode periodic sync that fails this way still refuses later writes until a
    /// reopen, as every failed sync does; the refusal's message says so.
    public var isOutOfSpace: Bool {
        errorNumber.map { $0 == ENOSPC || $0 == EDQUOT || $0 == EFBIG } ?? false
    }

    public var description: String { "SessionStoreError.\(code): \(message)" }
}

extension SessionStoreError {
    /// Maps an LMDB result to the store's error, naming what was being done.
    init(_ error: LMDBError, while action: String) {
        // LMDB's own codes are negative; positive codes are errno values.
        let number = error.code > 0 ? error.code : nil
        switch error.code {
        case LMDBError.mapFull:
            self.init(.mapFull, "\(action): the store reached its maximum map size; raise Configuration.maxMapSize or remove data (\(error))")
        case LMDBError.panic:
            self.init(.ioFailure, "\(action): an earlier disk write failed and LMDB stopped using this environment; the files are intact: close and reopen the store (\(error))")
        case _ where error.isCorruption:
            self.init(.corruptedRecord, "\(action): the store's files are damaged or not LMDB files (\(error))")
        case EACCES, EPERM:
            self.init(.permissionDenied, "\(action): permission denied (\(error))", errorNumber: number)
        case _ where error.isOutOfSpace:
            self.init(.ioFailure, "\(action): out of space, the disk, a quota or the file size limit is full (\(error))", errorNumber: number)
        case _ where error.isIOFailure:
            self.init(.ioFailure, "\(action): a disk write or sync failed (\(error))", errorNumber: number)
        default:
            self.init(.storageFailure, "\(action): \(error)", errorNumber: number)
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
