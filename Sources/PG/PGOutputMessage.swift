import CLibPQ

#if canImport(Glibc)
import Glibc
#endif

/// A message of the `pgoutput` plugin, protocol version 1 (PostgreSQL's "Logical Replication
/// Message Formats"). Column values are in text form.
public enum PGOutputMessage: Equatable {
    public enum Value: Equatable {
        case null
        /// A TOASTed value the change left as it was.
        case unchanged
        case text(String)
    }

    /// A transaction begins; `xid` is its transaction id.
    case begin(xid: UInt32)
    /// A transaction committed at `commitTime` (microseconds since 2000-01-01 UTC); every change
    /// of it was sent before, and the next one starts after `end`.
    case commit(end: LSN, commitTime: Int64)
    /// Describes relation `id` before the first change to it in the stream.
    case relation(id: UInt32, schema: String, name: String, columns: [String])
    case insert(relation: UInt32, new: [Value])
    /// `old` is the old key (or whole row) when the key changed or the replica identity is full.
    case update(relation: UInt32, old: [Value]?, new: [Value])
    /// `key` holds the key columns (others are null), or the whole row.
    case delete(relation: UInt32, key: [Value])
    case truncate(relations: [UInt32])
    /// Origins, types and logical messages: nothing a cache depends on.
    case other

    public init(_ bytes: [UInt8]) throws(PGError) {
        let decoded: PGOutputMessage? = bytes.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            let message = Self.decode(&reader)
            return reader.isValid ? message : nil
        }
        guard let decoded else {
            throw PGError(kind: .decoding, message: "malformed pgoutput message of \(bytes.count) bytes")
        }
        self = decoded
    }

    private static func decode(_ reader: inout ByteReader) -> PGOutputMessage? {
        switch reader.byte() {
        case UInt8(ascii: "B"):
            _ = reader.uint64()  // the commit's position
            _ = reader.uint64()  // its time
            return .begin(xid: reader.uint32())
        case UInt8(ascii: "C"):
            _ = reader.byte()  // flags
            _ = reader.uint64()  // the commit's own position
            let end = LSN(reader.uint64())
            return .commit(end: end, commitTime: Int64(bitPattern: reader.uint64()))
        case UInt8(ascii: "R"):
            let id = reader.uint32()
            let schema = reader.cString()
            let name = reader.cString()
            _ = reader.byte()  // replica identity
            let count = Int(reader.uint16())
            var columns: [String] = []
            for _ in 0..<count where reader.isValid {
                _ = reader.byte()  // flags
                columns.append(reader.cString())
                _ = reader.uint32()  // type
                _ = reader.uint32()  // modifier
            }
            return .relation(id: id, schema: schema, name: name, columns: columns)
        case UInt8(ascii: "I"):
            let relation = reader.uint32()
            guard reader.byte() == UInt8(ascii: "N") else { return nil }
            return .insert(relation: relation, new: tuple(&reader))
        case UInt8(ascii: "U"):
            let relation = reader.uint32()
            var kind = reader.byte()
            var old: [Value]?
            if kind == UInt8(ascii: "K") || kind == UInt8(ascii: "O") {
                old = tuple(&reader)
                kind = reader.byte()
            }
            guard kind == UInt8(ascii: "N") else { return nil }
            return .update(relation: relation, old: old, new: tuple(&reader))
        case UInt8(ascii: "D"):
            let relation = reader.uint32()
            let kind = reader.byte()
            guard kind == UInt8(ascii: "K") || kind == UInt8(ascii: "O") else { return nil }
            return .delete(relation: relation, key: tuple(&reader))
        case UInt8(ascii: "T"):
            let count = Int(reader.uint32())
            _ = reader.byte()  // options
            var relations: [UInt32] = []
            for _ in 0..<count where reader.isValid { relations.append(reader.uint32()) }
            return .truncate(relations: relations)
        case UInt8(ascii: "O"), UInt8(ascii: "Y"), UInt8(ascii: "M"):
            return .other
        default:
            return nil
        }
    }

    private static func tuple(_ reader: inout ByteReader) -> [Value] {
        let count = Int(reader.uint16())
        var values: [Value] = []
        values.reserveCapacity(count)
        for _ in 0..<count where reader.isValid {
            switch reader.byte() {
            case UInt8(ascii: "n"): values.append(.null)
            case UInt8(ascii: "u"): values.append(.unchanged)
            case UInt8(ascii: "t"): values.append(.text(reader.string(length: Int(reader.uint32()))))
            default: reader.isValid = false
            }
        }
        return values
    }
}

/// Big-endian fields of a protocol message; reading past the end marks it invalid (and reads
/// zeros), so a short message is one check at the end.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0
    var isValid = true

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    private mutating func take(_ count: Int) -> UnsafeRawBufferPointer? {
        guard isValid, count >= 0, bytes.count - offset >= count else {
            isValid = false
            return nil
        }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count])
    }

    private mutating func integer<T: FixedWidthInteger>(_: T.Type) -> T {
        guard let raw = take(MemoryLayout<T>.size) else { return 0 }
        return raw.reduce(T(0)) { $0 << 8 | T($1) }
    }

    mutating func byte() -> UInt8 { integer(UInt8.self) }
    mutating func uint16() -> UInt16 { integer(UInt16.self) }
    mutating func uint32() -> UInt32 { integer(UInt32.self) }
    mutating func uint64() -> UInt64 { integer(UInt64.self) }

    mutating func string(length: Int) -> String {
        take(length).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    /// A NUL-terminated string.
    mutating func cString() -> String {
        guard isValid, let end = bytes[offset...].firstIndex(of: 0) else {
            isValid = false
            return ""
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<end]), as: UTF8.self)
        offset = end + 1
        return text
    }
}
