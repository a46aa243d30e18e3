/// A Swift type that a result value can be decoded as.
///
/// Values arrive in PostgreSQL's text format. Each type names the column types it accepts, so
/// decoding a `text` column as `Int` fails with a clear error instead of guessing.
public protocol PGDecodable {
    /// Whether a column of this type can be decoded as `Self`.
    static func accepts(_ type: PGType) -> Bool
    /// Decodes the text form of a non-NULL value; `nil` when it is not a valid `Self`.
    static func decode(pgText: UnsafeBufferPointer<UInt8>) -> Self?
}

extension String: PGDecodable {
    public static func accepts(_ type: PGType) -> Bool { true }
    public static func decode(pgText: UnsafeBufferPointer<UInt8>) -> String? {
        String(decoding: pgText, as: UTF8.self)
    }
}

extension Int64: PGDecodable {
    public static func accepts(_ type: PGType) -> Bool { type.isInteger }
    public static func decode(pgText: UnsafeBufferPointer<UInt8>) -> Int64? {
        DecimalInteger.parse(pgText)
    }
}

extension Int: PGDecodable {
    public static func accepts(_ type: PGType) -> Bool { type.isInteger }
    public static func decode(pgText: UnsafeBufferPointer<UInt8>) -> Int? {
        DecimalInteger.parse(pgText).map(Int.init)
    }
}

extension Int32: PGDecodable {
    public static func accepts(_ type: PGType) -> Bool { type == .int2 || type == .int4 }
    public static func decode(pgText: UnsafeBufferPointer<UInt8>) -> Int32? {
        DecimalInteger.parse(pgText).flatMap(Int32.init(exactly:))
    }
}

extension Bool: PGDecodable {
    public static func accepts(_ type: PGType) -> Bool { type == .bool }
    public static func decode(pgText: UnsafeBufferPointer<UInt8>) -> Bool? {
        guard pgText.count == 1 else { return nil }
        switch pgText[0] {
        case UInt8(ascii: "t"): return true
        case UInt8(ascii: "f"): return false
        default: return nil
        }
    }
}

extension Double: PGDecodable {
    public static func accepts(_ type: PGType) -> Bool {
        type.isInteger || type == .float4 || type == .float8 || type == .numeric
    }
    public static func decode(pgText: UnsafeBufferPointer<UInt8>) -> Double? {
        switch String(decoding: pgText, as: UTF8.self) {
        case "NaN": return .nan
        case "Infinity": return .infinity
        case "-Infinity": return -.infinity
        case let text: return Double(text)
        }
    }
}

/// Parses an optionally signed ASCII decimal integer that fits in `Int64`.
enum DecimalInteger {
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> Int64? {
        var index = 0
        var negative = false
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+") {
            negative = bytes[index] == UInt8(ascii: "-")
            index += 1
        }
        guard index < bytes.count else { return nil }
        var value: Int64 = 0
        while index < bytes.count {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            // Accumulate negatively so that Int64.min parses.
            let (shifted, o1) = value.multipliedReportingOverflow(by: 10)
            let (next, o2) = shifted.subtractingReportingOverflow(Int64(digit))
            guard !o1, !o2 else { return nil }
            value = next
            index += 1
        }
        if negative { return value }
        let (positive, overflow) = Int64(0).subtractingReportingOverflow(value)
        return overflow ? nil : positive
    }
}
