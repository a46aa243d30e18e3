import HTTP
import JSON
import PG

/// An article as the API shows it.
package struct Article: Codable, Equatable, Sendable {
    package let id: Int64
    package let name: String
    /// The owner's username.
    package let owner: String
    /// RFC 3339 in UTC, with microseconds, as Django REST framework writes times.
    package let createdAt: String
    package let updatedAt: String

    package enum CodingKeys: String, CodingKey {
        case id, name, owner
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }
}

extension Article: JSONWritable {
    package func write(to json: inout JSONWriter) {
        json.beginObject()
        json.member("id", id)
        json.member("name", name)
        json.member("owner", owner)
        json.member("created_at", createdAt)
        json.member("updated_at", updatedAt)
        json.endObject()
    }
}

/// A `timestamp` column holding UTC time, as RFC 3339 with microseconds: PostgreSQL's
/// `2026-11-27 12:13:48.93` becomes `2026-11-27T12:13:48.930000Z`. A value outside years
/// 0001-9999 AD (or `infinity`) is passed on as PostgreSQL wrote it.
package struct UTCTimestamp: PGDecodable {
    package let rfc3339: String

    private static let shape = Array("dddd-dd-dd dd:dd:dd".utf8)

    package static func accepts(_ type: PGType) -> Bool { type == .timestamp }

    package static func decode(pgText text: UnsafeBufferPointer<UInt8>) -> UTCTimestamp? {
        UTCTimestamp(rfc3339: convert(text) ?? String(decoding: text, as: UTF8.self))
    }

    /// `YYYY-MM-DD HH:MM:SS[.f{1,6}]` to `YYYY-MM-DDTHH:MM:SS.ffffffZ`, or nil for other text.
    package static func convert(_ text: UnsafeBufferPointer<UInt8>) -> String? {
        let digit = UInt8(ascii: "0")...UInt8(ascii: "9")
        guard text.count >= shape.count, text.count != shape.count + 1, text.count <= shape.count + 7 else { return nil }
        for (index, expected) in shape.enumerated() {
            guard expected == UInt8(ascii: "d") ? digit.contains(text[index]) : text[index] == expected else { return nil }
        }
        if text.count > shape.count {
            guard text[shape.count] == UInt8(ascii: "."), text[(shape.count + 1)...].allSatisfy(digit.contains) else { return nil }
        }
        return String(unsafeUninitializedCapacity: shape.count + 8) { output in
            _ = output.initialize(from: text.prefix(shape.count))
            output[10] = UInt8(ascii: "T")
            output[shape.count] = UInt8(ascii: ".")
            for index in 0..<6 {
                let source = shape.count + 1 + index
                output[shape.count + 1 + index] = source < text.count ? text[source] : UInt8(ascii: "0")
            }
            output[shape.count + 7] = UInt8(ascii: "Z")
            return shape.count + 8
        }
    }
}

/// A name sent in a body, checked as Django REST framework's `CharField(max_length=50)` checks
/// it: leading and trailing whitespace trimmed (as Python's `str.strip`), not blank, at most 50
/// characters counted as code points (as PostgreSQL's `char_length` counts them).
package enum ArticleName {
    package static let maxLength = 50
    package static let tooLong = HTTPError.fields(["name": ["Ensure this field has no more than \(maxLength) characters."]])

    /// The validated name from the body's `name` member (`nil` when the body has none).
    package static func validate(_ value: JSONValue?) throws(HTTPError) -> String {
        func invalid(_ message: String) -> HTTPError { .fields(["name": [message]]) }
        guard let value else { throw invalid("This field is required.") }
        if value == .null { throw invalid("This field may not be null.") }
        guard case .string(let raw) = value else { throw invalid("Not a valid string.") }
        if raw.unicodeScalars.contains("\u{0}") { throw invalid("Null characters are not allowed.") }
        let scalars = raw.unicodeScalars
        let name = String(String.UnicodeScalarView(scalars.drop(while: isSpace).reversed().drop(while: isSpace).reversed()))
        if name.isEmpty { throw invalid("This field may not be blank.") }
        if name.unicodeScalars.count > maxLength { throw tooLong }
        return name
    }

    /// Python's `str.isspace`: Unicode White_Space, plus the separators U+001C to U+001F.
    private static func isSpace(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.isWhitespace || (0x1C...0x1F).contains(scalar.value)
    }
}
