extension CBOR: CustomStringConvertible, CustomDebugStringConvertible {
    /// The item in RFC 8949 diagnostic notation (§8), on one line.
    ///
    /// Examples: `1(1363896240)`, `h'0102'`, `[1, [2, 3]]`, `{"a": 1, "b": [2, 3]}`,
    /// `-18446744073709551616`, `1.5`, `1.0e+300`, `NaN`, `-Infinity`, `simple(16)`,
    /// `undefined`. Floats print the shortest decimal that reads back as the same
    /// double, always with a `.` (and an exponent without leading zeros).
    public var description: String {
        var out = ""
        writeDiagnostic(to: &out)
        return out
    }

    public var debugDescription: String { "CBOR(\(description))" }

    func writeDiagnostic(to out: inout String) {
        switch self {
        case .unsigned(let n): out += String(n)
        case .negative(let n): out += CBOR.negativeString(n)
        case .bytes(let b):
            out += "h'"
            for byte in b { out += hexByte(byte) }
            out += "'"
        case .text(let s): CBOR.writeQuoted(s, to: &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += ", " }
                item.writeDiagnostic(to: &out)
            }
            out += "]"
        case .map(let entries):
            out += "{"
            for (i, entry) in entries.enumerated() {
                if i > 0 { out += ", " }
                entry.key.writeDiagnostic(to: &out)
                out += ": "
                entry.value.writeDiagnostic(to: &out)
            }
            out += "}"
        case .tagged(let tag, let item):
            out += String(tag)
            out += "("
            item.writeDiagnostic(to: &out)
            out += ")"
        case .simple(let n): out += "simple(\(n))"
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        case .undefined: out += "undefined"
        case .float(let d): out += CBOR.diagnosticFloat(d)
        }
    }

    /// `-1 - n` in decimal, including -2^64.
    static func negativeString(_ n: UInt64) -> String {
        "-" + String(UInt128(n) + 1)
    }

    /// A float in diagnostic notation: `NaN`, `Infinity`, `-Infinity`, or a decimal with `.` and a plain exponent.
    static func diagnosticFloat(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
        let text = d.description
        guard let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) else {
            return text.contains(".") ? text : text + ".0"
        }
        var mantissa = String(text[..<e])
        if !mantissa.contains(".") { mantissa += ".0" }
        var exponent = text[text.index(after: e)...]
        var sign = "+"
        if let first = exponent.first, first == "+" || first == "-" {
            sign = String(first)
            exponent = exponent.dropFirst()
        }
        let digits = exponent.drop(while: { $0 == "0" })
        return mantissa + "e" + sign + (digits.isEmpty ? "0" : String(digits))
    }

    /// Writes `s` as a double-quoted string with JSON escapes.
    static func writeQuoted(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += "\\u00" + hexByte(UInt8(scalar.value))
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}

extension CBOR {
    /// The item as JSON text, following RFC 8949 §6.1 where JSON has no equivalent.
    ///
    /// - Integers become JSON numbers with every digit (also beyond 2^53).
    /// - Finite floats become numbers; NaN and the infinities become `null`.
    /// - Byte strings become base64url strings without padding (§6.1).
    /// - Tags are unwrapped: the content is rendered without the tag number, except
    ///   that a bignum (tag 2 or 3) of at most 16 bytes becomes a JSON number and a
    ///   UUID (tag 37 over 16 bytes) becomes its canonical text form.
    /// - `undefined` and other simple values become `null`.
    /// - Map keys that are text stay as they are; other keys become a string of
    ///   their diagnostic notation (`1` → `"1"`, `h'01'` → `"h'01'"`). Entries keep
    ///   their order, so duplicate keys appear twice.
    public func jsonString(prettyPrinted: Bool = false) -> String {
        var out = ""
        writeJSON(to: &out, indent: prettyPrinted ? 0 : nil)
        return out
    }

    func writeJSON(to out: inout String, indent: Int?) {
        func newline(_ level: Int) {
            out += "\n"
            out += String(repeating: "  ", count: level)
        }
        switch self {
        case .unsigned(let n): out += String(n)
        case .negative(let n): out += CBOR.negativeString(n)
        case .bytes(let b): CBOR.writeQuoted(CBOR.base64url(b), to: &out)
        case .text(let s): CBOR.writeQuoted(s, to: &out)
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                if let indent { newline(indent + 1) }
                item.writeJSON(to: &out, indent: indent.map { $0 + 1 })
            }
            if let indent { newline(indent) }
            out += "]"
        case .map(let entries):
            if entries.isEmpty { out += "{}"; return }
            out += "{"
            for (i, entry) in entries.enumerated() {
                if i > 0 { out += "," }
                if let indent { newline(indent + 1) }
                if case .text(let key) = entry.key {
                    CBOR.writeQuoted(key, to: &out)
                } else {
                    CBOR.writeQuoted(entry.key.description, to: &out)
                }
                out += indent == nil ? ":" : ": "
                entry.value.writeJSON(to: &out, indent: indent.map { $0 + 1 })
            }
            if let indent { newline(indent) }
            out += "}"
        case .tagged(let tag, let item):
            if (tag == 2 || tag == 3), case .bytes(let b) = item, b.drop(while: { $0 == 0 }).count <= 16 {
                var magnitude: UInt128 = 0
                for byte in b { magnitude = magnitude << 8 | UInt128(byte) }
                out += tag == 2 ? String(magnitude) : "-" + String(MagnitudeText.plusOne(magnitude))
            } else if tag == 37, case .bytes(let b) = item, b.count == 16 {
                var text = ""
                for (i, byte) in b.enumerated() {
                    if i == 4 || i == 6 || i == 8 || i == 10 { text += "-" }
                    text += hexByte(byte)
                }
                CBOR.writeQuoted(text, to: &out)
            } else {
                item.writeJSON(to: &out, indent: indent)
            }
        case .simple, .undefined, .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .float(let d):
            if d.isFinite { out += d.description } else { out += "null" }
        }
    }

    /// Base64url (RFC 4648 §5) without padding.
    static func base64url(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)])
            out.append(alphabet[Int(n & 63)])
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = UInt32(bytes[i]) << 16
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
        } else if rest == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Decimal text of a 128-bit magnitude plus one (for negative bignums, `-1 - n`), without overflow.
enum MagnitudeText {
    static func plusOne(_ n: UInt128) -> String {
        if n < UInt128.max { return String(n + 1) }
        return "340282366920938463463374607431768211456"
    }
}
