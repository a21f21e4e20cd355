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
        /// The path cannot hold a store (it is a file, or a parent is missing).
        public static let invalidPath = Code(rawValue: "invalidPath")
        /// The process may not read or write the store's directory or files.
        public static let permissionDenied = Code(rawValue: "permissionDenied")
        /// A disk write or sync failed; since an unsynced commit may be lost, writes are
        /// refused until the store is reopened.
        public static let ioFailure = Code(rawValue: "ioFailure")
        /// The configuration is not usable (for example a map size below the minimum).
        public static let invalidConfiguration = Code(rawValue: "invalidConfiguration")
        /// LMDB reported a condition without a more specific code; the message has LMDB's text.
        public static let storageFailure = Code(rawValue: "storageFailure")
    }

    /// What went wrong, to switch on.
    public let code: Code
    /// A readable explanation naming the key, id or path concerned.
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "SessionStoreError.\(code): \(message)" }
}

extension SessionStoreError {
    /// Maps an LMDB result to the store's error, naming what was being done.
    init(_ error: LMDBError, while action: String) {
        switch error.code {
        case LMDBError.mapFull:
            self.init(.mapFull, "\(action): the store reached its maximum map size; raise Configuration.maxMapSize or remove data (\(error))")
        case LMDBError.panic:
            self.init(.ioFailure, "\(action): an earlier disk write failed and LMDB stopped using this environment; the files are intact: close and reopen the store (\(error))")
        case _ where error.isCorruption:
            self.init(.corruptedRecord, "\(action): the store's files are damaged or not LMDB files (\(error))")
        case EACCES, EPERM:
            self.init(.permissionDenied, "\(action): permission denied (\(error))")
        case _ where error.isIOFailure:
            self.init(.ioFailure, "\(action): a disk write or sync failed (\(error))")
        default:
            self.init(.storageFailure, "\(action): \(error)")
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
