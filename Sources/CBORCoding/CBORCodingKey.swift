import Foundation

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

/// The types ``CBORDecoder`` reads without `init(from:)`: the integer and float types without
/// a fast path of their own, `Data`, `Date`, `URL`, `UUID`, `Decimal`, `CBOR`, and arrays and
/// string-keyed dictionaries of scalars.
enum _CBORKnownType: UInt8 {
    case int64, uint64, float, int32, uint32, int16, uint16, int8, uint8, uint
    case data, date, url, uuid, decimal, cbor
    case intArray, stringArray, doubleArray, boolArray, uint8Array, int64Array, uint64Array, floatArray
    case stringToString, stringToInt, stringToBool, stringToDouble

    /// The kind of `T`, or nil for a type that decodes itself.
    ///
    /// Folds to a constant where `T` is known at compile time. A concrete optional rather
    /// than an `Optional<T>` from the reader: in unspecialized code that costs a generic
    /// metadata lookup per call.
    @inline(__always)
    static func of<T>(_ type: T.Type) -> _CBORKnownType? {
        let t: Any.Type = T.self
        if t == Int64.self { return .int64 }
        if t == UInt64.self { return .uint64 }
        if t == Float.self { return .float }
        if t == Int32.self { return .int32 }
        if t == UInt32.self { return .uint32 }
        if t == Int16.self { return .int16 }
        if t == UInt16.self { return .uint16 }
        if t == Int8.self { return .int8 }
        if t == UInt8.self { return .uint8 }
        if t == UInt.self { return .uint }
        if t == Data.self { return .data }
        if t == Date.self { return .date }
        if t == URL.self { return .url }
        if t == UUID.self { return .uuid }
        if t == Decimal.self { return .decimal }
        if t == CBOR.self { return .cbor }
        // Collections (one pointer wide) of scalars, read without a container per element.
        guard MemoryLayout<T>.size == MemoryLayout<[Int]>.size else { return nil }
        if t == _CBORKnownTypes.intArray { return .intArray }
        if t == _CBORKnownTypes.stringArray { return .stringArray }
        if t == _CBORKnownTypes.doubleArray { return .doubleArray }
        if t == _CBORKnownTypes.boolArray { return .boolArray }
        if t == _CBORKnownTypes.uint8Array { return .uint8Array }
        if t == _CBORKnownTypes.int64Array { return .int64Array }
        if t == _CBORKnownTypes.uint64Array { return .uint64Array }
        if t == _CBORKnownTypes.floatArray { return .floatArray }
        if t == _CBORKnownTypes.stringToString { return .stringToString }
        if t == _CBORKnownTypes.stringToInt { return .stringToInt }
        if t == _CBORKnownTypes.stringToBool { return .stringToBool }
        if t == _CBORKnownTypes.stringToDouble { return .stringToDouble }
        return nil
    }
}
