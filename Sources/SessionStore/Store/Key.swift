/// A key that carries the type of its value, so loads need no type annotation.
///
/// `Key<Value>("prefs")` addresses the same record as the untyped key `"prefs"`.
///
/// ```swift
/// extension Key where Value == Preferences { static let prefs = Key("prefs") }
/// let prefs = try session.load(.prefs)   // Preferences?
/// ```
public struct Key<Value: Codable & Sendable>: Hashable, Sendable, CustomStringConvertible {
    /// The key's name, as stored.
    public let name: String

    /// Creates a key named `name`.
    public init(_ name: String) { self.name = name }

    public var description: String { name }
}

extension Key: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self.init(value) }
}
