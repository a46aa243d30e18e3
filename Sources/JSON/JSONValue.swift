/// A JSON value, as `StrictJSON` parses it.
package enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    package subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    package var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    package var number: Double? {
        if case .number(let value) = self { return value }
        return nil
    }

    package var object: [String: JSONValue]? {
        if case .object(let members) = self { return members }
        return nil
    }
}

extension JSONValue {
    /// The Python type name Django REST framework reports for a value.
    package var typeName: String {
        switch self {
        case .null: "NoneType"
        case .bool: "bool"
        case .number(let n): n == n.rounded() ? "int" : "float"
        case .string: "str"
        case .array: "list"
        case .object: "dict"
        }
    }
}
