/// A decoded value as the cache holds it: one reference, whatever the value's type.
///
/// A hit compares the box's class with `ValueBox<V>`, an exact-type test like the one a
/// load from LMDB makes (an `Int?` does not load as an `Int`), and reads the value with no
/// dynamic cast.
// @unchecked Sendable: the class has no stored state, and its one subclass, `ValueBox`,
// holds a single immutable `Sendable` value.
@usableFromInline
class CachedValue: @unchecked Sendable {
    @usableFromInline
    init() {}

    /// The value if it was cached as exactly a `V` (not an Optional of one, not a subclass).
    @inlinable
    final func value<V: Sendable>(as type: V.Type) -> V? {
        guard Swift.type(of: self) == ValueBox<V>.self else { return nil }
        return unsafeDowncast(self, to: ValueBox<V>.self).value
    }

    /// What the cache keeps for a value a caller wrote as a `V`.
    ///
    /// A box when the value's own type is `V`. An instance of a subclass of `V` gets a
    /// placeholder that matches no type, so the next load reads the record and caches the
    /// `V` it decodes: a hit then returns what a miss would, not the caller's object.
    static func written<V: Sendable>(_ value: V) -> CachedValue {
        Swift.type(of: value) == V.self ? ValueBox(value) : CachedValue()
    }
}

/// A value of type `Value` held by the cache or by a write on its way to it.
// @unchecked Sendable: `value` is an immutable `Sendable` value; the compiler asks for the
// inherited unchecked conformance to be restated.
@usableFromInline
final class ValueBox<Value: Sendable>: CachedValue, @unchecked Sendable {
    @usableFromInline
    let value: Value

    @usableFromInline
    init(_ value: Value) {
        self.value = value
    }
}
