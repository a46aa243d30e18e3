/// A Swift value that can be sent as a statement parameter, in PostgreSQL's text format.
///
/// `nil` (an absent optional) is sent as SQL NULL.
public protocol PGEncodable {
    /// The text form PostgreSQL's input function for the column type accepts, or `nil` for NULL.
    var pgText: String? { get }
}

extension String: PGEncodable {
    public var pgText: String? { self }
}

extension Substring: PGEncodable {
    public var pgText: String? { String(self) }
}

extension Int: PGEncodable {
    public var pgText: String? { String(self) }
}

extension Int64: PGEncodable {
    public var pgText: String? { String(self) }
}

extension Int32: PGEncodable {
    public var pgText: String? { String(self) }
}

extension Bool: PGEncodable {
    public var pgText: String? { self ? "t" : "f" }
}

extension Double: PGEncodable {
    public var pgText: String? {
        if isNaN { return "NaN" }
        if isInfinite { return self < 0 ? "-Infinity" : "Infinity" }
        return String(self)
    }
}

extension Optional: PGEncodable where Wrapped: PGEncodable {
    public var pgText: String? { self?.pgText }
}

extension Array: PGEncodable where Element: PGEncodable {
    /// A one-dimensional array literal, as `text[]` or `int8[]` input accepts: every element
    /// double-quoted, with `"` and `\` escaped, and `NULL` for nil.
    public var pgText: String? {
        var text = "{"
        for (index, element) in enumerated() {
            if index > 0 { text += "," }
            guard let value = element.pgText else {
                text += "NULL"
                continue
            }
            text += "\""
            for scalar in value.unicodeScalars {
                if scalar == "\"" || scalar == "\\" { text += "\\" }
                text.unicodeScalars.append(scalar)
            }
            text += "\""
        }
        return text + "}"
    }
}
