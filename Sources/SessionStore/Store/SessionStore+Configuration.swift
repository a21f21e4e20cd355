extension SessionStore {
    /// How a store is opened: durability, cache size, map size and lifecycle limits.
    ///
    /// ```swift
    /// let store = try SessionStore(path: path, configuration: .init(
    ///     durability: .relaxed(syncInterval: .milliseconds(100)),
    ///     cacheCapacity: 50_000,
    ///     maxMapSize: 8 << 30))
    /// ```
    public struct Configuration: Sendable {
        /// When a write counts as done.
        public enum Durability: Sendable, Equatable {
            /// Every commit is synced to disk before its callers return (the default).
            case durable
            /// Commits are not synced one by one; the store syncs every `syncInterval`
            /// (LMDB's `MDB_NOSYNC`). A crash of the process loses nothing and corrupts
            /// nothing. A crash of the operating system or a power loss may lose the last
            /// interval's writes, and, as LMDB documents for `MDB_NOSYNC`, can corrupt the
            /// store on a file system that does not keep write order.
            case relaxed(syncInterval: Duration)
        }

        /// When a write counts as done; `.durable` by default.
        public var durability: Durability
        /// How many decoded values the read-through cache keeps (0 disables it).
        public var cacheCapacity: Int
        /// How many bytes the cached values may cost together, each costing its encoded
        /// record's size plus its key's; 64 MiB by default (0 disables the cache). A value
        /// costing more than the whole budget is loaded from LMDB every time, never cached.
        /// Decoded values usually take more memory than their encoding (an `Int` of 1 byte
        /// in CBOR takes 8, a dictionary its hash table): leave room for that.
        public var cacheByteLimit: Int
        /// The initial size of LMDB's memory map in bytes; it grows by itself when full.
        public var mapSize: Int
        /// The largest the map may grow to, or nil for no limit; writes past it throw `.mapFull`.
        public var maxMapSize: Int?
        /// How long a session lives after its last use (sliding).
        public var sessionTTL: Duration
        /// How long an instance (a tab) lives after its last use (sliding).
        public var instanceTTL: Duration
        /// How many instances a session keeps; the least recently active is evicted past it.
        public var instanceLimit: Int
        /// The largest encoded value a save accepts, in bytes.
        public var maxValueSize: Int

        public init(
            durability: Durability = .durable,
            cacheCapacity: Int = 10_000,
            cacheByteLimit: Int = 64 << 20,
            mapSize: Int = 64 << 20,
            maxMapSize: Int? = nil,
            sessionTTL: Duration = .seconds(24 * 60 * 60),
            instanceTTL: Duration = .seconds(40 * 60),
            instanceLimit: Int = 12,
            maxValueSize: Int = 16 << 20
        ) {
            self.durability = durability
            self.cacheCapacity = cacheCapacity
            self.cacheByteLimit = cacheByteLimit
            self.mapSize = mapSize
            self.maxMapSize = maxMapSize
            self.sessionTTL = sessionTTL
            self.instanceTTL = instanceTTL
            self.instanceLimit = instanceLimit
            self.maxValueSize = maxValueSize
        }

        /// Throws `.invalidConfiguration` naming the first unusable setting.
        func validate() throws(SessionStoreError) {
            func fail(_ message: String) -> SessionStoreError { SessionStoreError(.invalidConfiguration, message) }
            if mapSize < 64 << 10 { throw fail("mapSize \(mapSize) is below the minimum of 65536 bytes") }
            if let maxMapSize, maxMapSize < mapSize {
                throw fail("maxMapSize \(maxMapSize) is smaller than mapSize \(mapSize)")
            }
            if cacheCapacity < 0 { throw fail("cacheCapacity must not be negative (got \(cacheCapacity))") }
            if cacheByteLimit < 0 { throw fail("cacheByteLimit must not be negative (got \(cacheByteLimit))") }
            if maxValueSize <= 0 { throw fail("maxValueSize must be positive (got \(maxValueSize))") }
            if instanceLimit <= 0 { throw fail("instanceLimit must be positive (got \(instanceLimit))") }
            if sessionTTL <= .zero || instanceTTL <= .zero { throw fail("sessionTTL and instanceTTL must be positive") }
            if case .relaxed(let interval) = durability, interval <= .zero {
                throw fail("the relaxed sync interval must be positive (got \(interval))")
            }
        }
    }
}
