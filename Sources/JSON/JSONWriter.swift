import Support

/// Writes JSON (RFC 8259) straight into bytes, for the response bodies on the request path:
/// no reflection, no intermediate objects. Strings are UTF-8 with `"`, `\` and control
/// characters escaped; `/` and non-ASCII text are written as they are.
package struct JSONWriter {
    package private(set) var bytes: [UInt8] = []
    /// How deep in objects the writer is, and a bit per depth: whether that object has a member
    /// yet (so the next one needs a comma).
    private var depth = 0
    private var hasMembers: UInt64 = 0

    package init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    /// `value` as JSON.
    package static func bytes(of value: some JSONWritable) -> [UInt8] {
        var writer = JSONWriter()
        value.write(to: &writer)
        return writer.bytes
    }

    package mutating func raw(_ text: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    package mutating func string(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): raw(#"\""#)
            case UInt8(ascii: "\\"): raw(#"\\"#)
            case 0x0A: raw(#"\n"#)
            case 0x0D: raw(#"\r"#)
            case 0x09: raw(#"\t"#)
            case 0x08: raw(#"\b"#)
            case 0x0C: raw(#"\f"#)
            case 0..<0x20:
                raw(#"\u00"#)
                bytes.append(Hex.digit(byte >> 4))
                bytes.append(Hex.digit(byte))
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    package mutating func number(_ value: Int64) {
        bytes.append(contentsOf: String(value).utf8)
    }

    /// `{`: the members that follow, up to `endObject()`, get their commas (objects nest, up to
    /// 63 deep).
    package mutating func beginObject() {
        raw("{")
        depth += 1
        hasMembers &= ~(1 << depth)
    }

    package mutating func endObject() {
        raw("}")
        depth -= 1
    }

    /// `"name":value` in the object being written.
    package mutating func member(_ name: StaticString, _ value: some JSONWritable) {
        comma()
        bytes.append(UInt8(ascii: "\""))
        raw(name)
        raw("\":")
        value.write(to: &self)
    }

    package mutating func member(_ name: String, _ value: some JSONWritable) {
        comma()
        string(name)
        raw(":")
        value.write(to: &self)
    }

    private mutating func comma() {
        if hasMembers & (1 << depth) != 0 { bytes.append(UInt8(ascii: ",")) }
        hasMembers |= 1 << depth
    }
}

/// A value that writes itself as JSON.
package protocol JSONWritable {
    func write(to json: inout JSONWriter)
}

extension Array: JSONWritable where Element: JSONWritable {
    package func write(to json: inout JSONWriter) {
        json.raw("[")
        for (index, element) in enumerated() {
            if index > 0 { json.raw(",") }
            element.write(to: &json)
        }
        json.raw("]")
    }
}

extension String: JSONWritable {
    package func write(to json: inout JSONWriter) { json.string(self) }
}

extension Optional: JSONWritable where Wrapped: JSONWritable {
    /// `null` when absent.
    package func write(to json: inout JSONWriter) {
        if let self { self.write(to: &json) } else { json.raw("null") }
    }
}

extension Int64: JSONWritable {
    package func write(to json: inout JSONWriter) { json.number(self) }
}

extension Dictionary: JSONWritable where Key == String, Value: JSONWritable {
    /// Members in key order, so the output is the same on every run.
    package func write(to json: inout JSONWriter) {
        json.beginObject()
        for key in keys.sorted() { json.member(key, self[key]!) }
        json.endObject()
    }
}
