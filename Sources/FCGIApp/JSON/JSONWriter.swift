/// Writes JSON (RFC 8259) straight into bytes, for the response bodies on the request path:
/// no reflection, no intermediate objects. Strings are UTF-8 with `"`, `\` and control
/// characters escaped; `/` and non-ASCII text are written as they are.
struct JSONWriter {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    /// `value` as JSON.
    static func bytes(of value: some JSONWritable) -> [UInt8] {
        var writer = JSONWriter()
        value.write(to: &writer)
        return writer.bytes
    }

    mutating func raw(_ text: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    mutating func string(_ text: String) {
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
                bytes.append(Self.hex[Int(byte >> 4)])
                bytes.append(Self.hex[Int(byte & 0xF)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func number(_ value: Int64) {
        bytes.append(contentsOf: String(value).utf8)
    }

    /// `"key":` inside an object; `first` says whether a comma is needed before it.
    mutating func key(_ name: StaticString, first: Bool = false) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        bytes.append(UInt8(ascii: "\""))
        raw(name)
        raw("\":")
    }

    mutating func value(_ value: some JSONWritable) { value.write(to: &self) }

    private static let hex = Array("0123456789abcdef".utf8)
}

/// A value that writes itself as JSON.
protocol JSONWritable {
    func write(to json: inout JSONWriter)
}

extension Array: JSONWritable where Element: JSONWritable {
    func write(to json: inout JSONWriter) {
        json.raw("[")
        for (index, element) in enumerated() {
            if index > 0 { json.raw(",") }
            element.write(to: &json)
        }
        json.raw("]")
    }
}

extension String: JSONWritable {
    func write(to json: inout JSONWriter) { json.string(self) }
}

extension Dictionary: JSONWritable where Key == String, Value: JSONWritable {
    /// Members in key order, so the output is the same on every run.
    func write(to json: inout JSONWriter) {
        json.raw("{")
        for (index, key) in keys.sorted().enumerated() {
            if index > 0 { json.raw(",") }
            json.string(key)
            json.raw(":")
            self[key]!.write(to: &json)
        }
        json.raw("}")
    }
}
