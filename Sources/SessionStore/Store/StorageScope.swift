import CBORCoding
/// The storage calls shared by ``Session`` and ``Instance``: save, load, remove,
/// loadOrInit, end, and listing keys.
///
/// A missing key loads as `nil`. Loading a value stored as another type throws
/// `.typeMismatch` naming the key and both types. Writes block the calling thread until
/// their commit is durable; their `async` twins suspend instead.
public protocol StorageScope: Sendable {
    /// The store and key range of this scope.
    var reference: ScopeReference { get }
}

extension StorageScope {
    /// Stores `value` under `key` and returns the value it replaced.
    ///
    /// - Returns: the previous value, or nil when there was none or it was of another type.
    /// - Throws: `.keyTooLong`, `.valueTooLarge`, `.encodingFailed`, `.mapFull`, `.storeClosed`.
    @discardableResult
    public func save<Value>(_ value: Value, for key: Key<Value>) throws(SessionStoreError) -> Value? {
        try save(value, for: key.name)
    }

    /// Stores `value` under the untyped `key` and returns the value it replaced, if it was a `Value`.
    @discardableResult
    public func save<Value: Codable & Sendable, K: Encodable & Hashable & Sendable>(
        _ value: Value, for key: K
    ) throws(SessionStoreError) -> Value? {
        let store = reference.store
        let operation = try saveOperation(value, for: key)
        let result = try store.write([operation])
        return store.previous(Value.self, from: result[0])
    }

    /// Stores `value` under `key`, suspending until the commit is durable.
    @discardableResult
    public func save<Value>(_ value: Value, for key: Key<Value>) async throws(SessionStoreError) -> Value? {
        try await save(value, for: key.name)
    }

    /// Stores `value` under the untyped `key`, suspending until the commit is durable.
    @discardableResult
    public func save<Value: Codable & Sendable, K: Encodable & Hashable & Sendable>(
        _ value: Value, for key: K
    ) async throws(SessionStoreError) -> Value? {
        let store = reference.store
        let operation = try saveOperation(value, for: key)
        let result = try await store.write([operation])
        return store.previous(Value.self, from: result[0])
    }

    /// The value under `key`, or nil when there is none.
    ///
    /// - Throws: `.typeMismatch` when the stored value is of another type,
    ///   `.corruptedRecord` when it does not decode, `.storeClosed`.
    @inlinable
    public func load<Value>(_ key: Key<Value>) throws(SessionStoreError) -> Value? {
        try load(Value.self, for: key.name)
    }

    /// The value under the untyped `key` as a `Value`, or nil when there is none.
    // Inlinable so that a cache hit is specialised in the caller: the type check of the
    // cached value is then a pointer comparison instead of a dynamic cast.
    @inlinable
    public func load<Value: Codable & Sendable, K: Encodable & Hashable & Sendable>(
        _ type: Value.Type, for key: K
    ) throws(SessionStoreError) -> Value? {
        let reference = self.reference
        var snapshot: Int?
        if K.self == String.self,
           let hit = try reference.store.cachedValue(named: unsafeBitCast(key, to: String.self), in: reference, snapshot: &snapshot),
           let value = hit.value(as: Value.self) {
            return value
        }
        return try reference.store.load(Value.self, key: key, in: reference, snapshot: snapshot)
    }

    /// Removes the value under `key` and returns it; a missing key is not an error.
    @discardableResult
    public func remove<Value>(_ key: Key<Value>) throws(SessionStoreError) -> Value? {
        try remove(Value.self, for: key.name)
    }

    /// Removes the value under the untyped `key` and returns it if it was a `Value`.
    @discardableResult
    public func remove<Value: Codable & Sendable, K: Encodable & Hashable & Sendable>(
        _ type: Value.Type, for key: K
    ) throws(SessionStoreError) -> Value? {
        let store = reference.store
        let result = try store.write([.delete(key: try recordKey(key), returnPrevious: true)])
        return store.previous(Value.self, from: result[0])
    }

    /// Removes the value under the untyped `key`, whatever its type; returns whether there was one.
    @discardableResult
    public func remove<K: Encodable & Hashable & Sendable>(_ key: K) throws(SessionStoreError) -> Bool {
        let result = try reference.store.write([.delete(key: try recordKey(key), returnPrevious: false)])
        return result[0].count == 1
    }

    /// Removes the value under `key`, suspending until the commit is durable.
    @discardableResult
    public func remove<Value>(_ key: Key<Value>) async throws(SessionStoreError) -> Value? {
        try await remove(Value.self, for: key.name)
    }

    /// Removes the value under the untyped `key`, suspending until the commit is durable;
    /// returns it if it was a `Value`.
    @discardableResult
    public func remove<Value: Codable & Sendable, K: Encodable & Hashable & Sendable>(
        _ type: Value.Type, for key: K
    ) async throws(SessionStoreError) -> Value? {
        let store = reference.store
        let result = try await store.write([.delete(key: try recordKey(key), returnPrevious: true)])
        return store.previous(Value.self, from: result[0])
    }

    /// Removes the value under the untyped `key`, suspending until the commit is durable.
    @discardableResult
    public func remove<K: Encodable & Hashable & Sendable>(_ key: K) async throws(SessionStoreError) -> Bool {
        let result = try await reference.store.write([.delete(key: try recordKey(key), returnPrevious: false)])
        return result[0].count == 1
    }

    /// The value under `key`, or the value `make` builds, stored once (the origin's `Init`).
    ///
    /// Concurrent callers in this process wait for one build and all get its value. If
    /// another process stored a value first, that value is returned and `make`'s is dropped.
    ///
    /// - Throws: `.initCycle` when `make` (or a build it waits for) calls `loadOrInit` for
    ///   this same key, a wait that would never end; whatever `make` throws; store errors.
    public func loadOrInit<Value>(_ key: Key<Value>, _ make: () throws -> Value) throws -> Value {
        let store = reference.store
        if let value = try load(key) { return value }
        let recordKey = try self.recordKey(key.name)
        try store.builds.begin(recordKey, describing: describe(key.name))
        defer { store.builds.end(recordKey) }
        if let value = try load(key) { return value }
        let value = try make()
        let record = try store.record(value, name: describe(key.name))
        let result = try store.write([.insert(key: recordKey, record: record, value: CachedValue.written(value))])
        if result[0].count == 1 { return value }
        guard let existing = result[0].previous else { return value }
        return try existing.withUnsafeBytes { bytes throws(SessionStoreError) in
            try Record.decode(Value.self, from: bytes, key: describe(key.name), decoder: store.decoder)
        }
    }

    /// Drops every value of this scope; for a session, also every instance of it.
    ///
    /// Other scopes are untouched, including sessions whose ids start with this one's.
    /// Returns how many records were removed.
    @discardableResult
    public func end() throws(SessionStoreError) -> Int {
        let result = try reference.store.write(reference.endPrefixes.map { .deletePrefix($0) })
        return result.reduce(0) { $0 + $1.count }
    }

    /// Drops every value of this scope, suspending until the commit is durable.
    @discardableResult
    public func end() async throws(SessionStoreError) -> Int {
        let result = try await reference.store.write(reference.endPrefixes.map { .deletePrefix($0) })
        return result.reduce(0) { $0 + $1.count }
    }

    /// The names of this scope's keys that are strings, in stored order.
    ///
    /// Keys of other types (saved with an untyped key such as an `Int` or a struct) are
    /// skipped; ``nonStringKeys()`` lists them.
    public func keys() throws(SessionStoreError) -> [String] {
        let decoder = reference.store.decoder
        return try decodedKeys(where: Self.isText, problem: "is a damaged string") { try decoder.decode(String.self, from: $0) }
    }

    /// This scope's keys that are not strings, as CBOR values, in stored order.
    public func nonStringKeys() throws(SessionStoreError) -> [CBOR] {
        try decodedKeys(where: { !Self.isText($0) }, problem: "is not well-formed CBOR") { try CBOR(decoding: $0) }
    }

    /// Whether an encoded key is a CBOR text string (major type 3).
    private static func isText(_ key: [UInt8]) -> Bool {
        key.first.map { $0 >> 5 == 3 } ?? false
    }

    /// This scope's keys decoded as `K`, in stored order (bytewise order of their CBOR form).
    ///
    /// - Throws: `.corruptedRecord` when a key does not decode as `K`.
    public func keys<K: Decodable>(as type: K.Type) throws(SessionStoreError) -> [K] {
        let decoder = reference.store.decoder
        return try decodedKeys(where: { _ in true }, problem: "does not decode as \(K.self)") { try decoder.decode(K.self, from: $0) }
    }

    /// The encoded keys of this scope that `include` accepts, decoded by `decode`, in stored
    /// order; a key that does not decode is `.corruptedRecord`, saying it `problem`.
    private func decodedKeys<K>(where include: ([UInt8]) -> Bool, problem: @autoclosure () -> String, _ decode: ([UInt8]) throws -> K) throws(SessionStoreError) -> [K] {
        let suffixes = try reference.store.keySuffixes(withPrefix: reference.prefix, name: reference.description)
        var keys: [K] = []
        keys.reserveCapacity(suffixes.count)
        for suffix in suffixes where include(suffix) {
            do {
                keys.append(try decode(suffix))
            } catch {
                throw SessionStoreError(.corruptedRecord, "a key of \(reference.description) \(problem()): \(error)")
            }
        }
        return keys
    }

    // MARK: - Helpers

    func recordKey<K: Encodable>(_ key: K) throws(SessionStoreError) -> [UInt8] {
        try KeyLayout.recordKey(reference.prefix, key, limit: reference.store.maxKeySize)
    }

    func describe<K>(_ key: K) -> String {
        reference.describe(key)
    }

    func saveOperation<Value: Codable & Sendable, K: Encodable>(_ value: Value, for key: K) throws(SessionStoreError) -> WriteOperation {
        let recordKey = try self.recordKey(key)
        let record = try reference.store.record(value, name: describe(key))
        return .put(key: recordKey, record: record, value: CachedValue.written(value), returnPrevious: true)
    }
}
