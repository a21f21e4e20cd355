/// One instance (tab) of a session: values isolated from the session's other instances.
///
/// A cheap value; get one from ``Session/instance(_:)``.
public struct Instance: StorageScope, Hashable {
    /// The session this instance (tab) belongs to, whose values every instance shares.
    public let session: Session
    /// The id of the session this instance belongs to.
    public var sessionID: String { session.id }
    /// The instance id.
    public let id: String
    public let reference: ScopeReference

    init(session: Session, id: String) throws(SessionStoreError) {
        let idBytes = try KeyLayout.validatedID(id, kind: "instance")
        self.session = session
        self.id = id
        let prefix = KeyLayout.instancePrefix(session.idBytes, idBytes)
        reference = ScopeReference(
            store: session.reference.store, prefix: prefix, endPrefixes: [prefix],
            description: "instance \(id.debugDescription) of session \(session.id.debugDescription)")
    }

    public static func == (lhs: Instance, rhs: Instance) -> Bool {
        lhs.reference.store === rhs.reference.store && lhs.sessionID == rhs.sessionID && lhs.id == rhs.id
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(sessionID)
        hasher.combine(id)
    }
}
