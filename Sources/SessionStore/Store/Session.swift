/// A user's session: values shared by every instance (tab) of it.
///
/// A cheap value; get one from ``SessionStore/session(_:)``.
public struct Session: StorageScope, Hashable {
    /// The session id.
    public let id: String
    public let reference: ScopeReference
    let idBytes: [UInt8]

    init(store: SessionStore, id: String) throws(SessionStoreError) {
        idBytes = try KeyLayout.validatedID(id, kind: "session")
        self.id = id
        let prefix = KeyLayout.sessionPrefix(idBytes)
        reference = ScopeReference(
            store: store,
            prefix: prefix,
            endPrefixes: [prefix, KeyLayout.instancesPrefix(idBytes)],
            description: "session \(id.debugDescription)")
    }

    /// The instance (tab) `id` of this session, whose values no other instance sees.
    ///
    /// - Throws: `.invalidID`, under the same rules as session ids.
    public func instance(_ id: String) throws(SessionStoreError) -> Instance {
        try Instance(session: self, id: id)
    }

    /// The ids of this session's instances that hold at least one value.
    public func instanceIDs() throws(SessionStoreError) -> [String] {
        let store = reference.store
        let suffixes = try store.keySuffixes(withPrefix: KeyLayout.instancesPrefix(idBytes), name: reference.description)
        var ids: [String] = []
        for suffix in suffixes {
            guard let slash = suffix.firstIndex(of: UInt8(ascii: "/")) else { continue }
            let id = String(decoding: suffix[..<slash], as: UTF8.self)
            if ids.last != id { ids.append(id) }
        }
        return ids
    }

    public static func == (lhs: Session, rhs: Session) -> Bool {
        lhs.reference.store === rhs.reference.store && lhs.id == rhs.id
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(id) }
}
