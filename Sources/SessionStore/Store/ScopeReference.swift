/// Where a scope's records live: its store and its key prefix.
///
/// Obtained from a ``Session`` or ``Instance``; it cannot be built by hand, so every
/// prefix has passed id validation.
public struct ScopeReference: Sendable, CustomStringConvertible {
    let store: SessionStore
    /// `session/<sid>/` or `instance/<sid>/<iid>/`.
    let prefix: [UInt8]
    /// The key ranges `end()` drops: the scope's own, and for a session its instances'.
    let endPrefixes: [[UInt8]]
    /// For messages: `session "k3J9"` or `instance "t7Q" of session "k3J9"`.
    public let description: String
}
