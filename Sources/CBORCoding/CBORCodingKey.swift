/// A coding key made from a string or an integer: map keys the types do not name, and `"super"`.
struct _CBORKey: CodingKey {
    let stringValue: String
    let intValue: Int?

    init(stringValue: String) {
        self.stringValue = stringValue
        self.intValue = nil
    }

    init(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }

    /// The key `superEncoder()` and `superDecoder()` use, like `JSONEncoder`.
    static let `super` = _CBORKey(stringValue: "super")
}

/// The coding key of an array element: one word, so a coding path entry needs no allocation.
struct _CBORIndexKey: CodingKey {
    let index: Int

    init(_ index: Int) { self.index = index }
    init?(stringValue: String) { return nil }
    init?(intValue: Int) { self.index = intValue }

    var stringValue: String { "Index \(index)" }
    var intValue: Int? { index }
}

/// Generic collection metatypes the coders handle without Codable, looked up once.
///
/// Writing `[Int].self` in a hot path asks the runtime for the metadata every time;
/// these are resolved on first use.
enum _CBORKnownTypes {
    static let intArray: Any.Type = [Int].self
    static let stringArray: Any.Type = [String].self
    static let doubleArray: Any.Type = [Double].self
    static let boolArray: Any.Type = [Bool].self
    static let uint8Array: Any.Type = [UInt8].self
    static let int64Array: Any.Type = [Int64].self
    static let uint64Array: Any.Type = [UInt64].self
    static let floatArray: Any.Type = [Float].self
    static let stringToString: Any.Type = [String: String].self
    static let stringToInt: Any.Type = [String: Int].self
    static let stringToBool: Any.Type = [String: Bool].self
    static let stringToDouble: Any.Type = [String: Double].self
}
