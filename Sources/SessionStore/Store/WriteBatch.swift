/// Changes to several keys and scopes that commit together: all of them or none.
///
/// ```swift
/// var batch = WriteBatch()
/// try batch.save(cart, for: .cart, in: session)
/// try batch.remove(.draft, in: tab)
/// try store.apply(batch)
/// ```
public struct WriteBatch: Sendable {
    var operations: [WriteOperation] = []
    var stores: [SessionStore] = []

    public init() {}

    /// The number of changes in the batch.
    public var count: Int { operations.count }

    /// Adds a save of `value` under `key` in `scope`.
    public mutating func save<Value>(_ value: Value, for key: Key<Value>, in scope: some StorageScope) throws(SessionStoreError) {
        try save(value, for: key.name, in: scope)
    }

    /// Adds a save of `value` under the untyped `key` in `scope`.
    public mutating func save<Value: Codable & Sendable, K: Encodable & Hashable & Sendable>(
        _ value: Value, for key: K, in scope: some StorageScope
    ) throws(SessionStoreError) {
        operations.append(try scope.saveOperation(value, for: key))
        note(scope)
    }

    /// Adds a removal of `key` in `scope`.
    public mutating func remove<Value>(_ key: Key<Value>, in scope: some StorageScope) throws(SessionStoreError) {
        try remove(key.name, in: scope)
    }

    /// Adds a removal of the untyped `key` in `scope`.
    public mutating func remove<K: Encodable & Hashable & Sendable>(_ key: K, in scope: some StorageScope) throws(SessionStoreError) {
        operations.append(.delete(key: try scope.recordKey(key), returnPrevious: false))
        note(scope)
    }

    /// Adds the end of `scope` (for a session, with its instances).
    public mutating func end(_ scope: some StorageScope) {
        operations.append(contentsOf: scope.reference.endPrefixes.map { .deletePrefix($0) })
        note(scope)
    }

    private mutating func note(_ scope: some StorageScope) {
        if !stores.contains(where: { $0 === scope.reference.store }) { stores.append(scope.reference.store) }
    }
}
