/// Where a scope's records live: its store and its key prefix.
///
/// Obtained from a ``Session`` or ``Instance``; it cannot be built by hand, so every
/// prefix has passed id validation. A class, so that handing it to a storage call copies
/// one reference.
public final class ScopeReference: Sendable, CustomStringConvertible {
    @usableFromInline
    let store: SessionStore
    /// `session/<sid>/` or `instance/<sid>/<iid>/`.
    let prefix: [UInt8]
    /// A copy of `prefix` in memory this reference owns, for the cache-hit path: reading
    /// it needs no retain of an array buffer.
    // nonisolated(unsafe): the bytes are written once in `init`, only read afterwards from
    // any thread, and freed in `deinit`, when no thread can hold the reference any more.
    nonisolated(unsafe) let prefixBytes: UnsafeRawBufferPointer
    /// The key ranges `end()` drops: the scope's own, and for a session its instances'.
    let endPrefixes: [[UInt8]]
    /// For messages: `session "k3J9"` or `instance "t7Q" of session "k3J9"`.
    public let description: String

    init(store: SessionStore, prefix: [UInt8], endPrefixes: [[UInt8]], description: String) {
        self.store = store
        self.prefix = prefix
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: prefix.count, alignment: 1)
        copy.copyBytes(from: prefix)
        prefixBytes = UnsafeRawBufferPointer(copy)
        self.endPrefixes = endPrefixes
        self.description = description
    }

    deinit {
        prefixBytes.deallocate()
    }

    /// `key` as messages show it: `"prefs" of session "k3J9"`.
    func describe<K>(_ key: K) -> String {
        "\(String(describing: key).debugDescription) of \(description)"
    }
}
