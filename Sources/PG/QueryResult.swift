import CLibPQ

#if canImport(Glibc)
import Glibc
#endif

/// The rows a statement returned, or the count of rows it changed.
///
/// Values are read straight from libpq's result (`PQgetvalue`), which is freed when the result
/// and every `Row` taken from it are gone.
public struct QueryResult: Sendable, RandomAccessCollection {
    @usableFromInline let handle: ResultHandle
    /// How many columns each row has. The C function is `PQnfields`.
    public let columnCount: Int

    init(_ handle: ResultHandle) {
        self.handle = handle
        columnCount = Int(PQnfields(handle.pointer))
        count = Int(PQntuples(handle.pointer))
    }

    /// Column names in order, read from the result when asked (not for every query). The C
    /// function is `PQfname`.
    public var columns: [String] {
        (0..<columnCount).map(columnName)
    }

    /// The name of column `index`.
    public func columnName(_ index: Int) -> String {
        String(cString: PQfname(handle.pointer, Int32(index)))
    }

    public let count: Int
    public var startIndex: Int { 0 }
    public var endIndex: Int { count }
    public subscript(position: Int) -> Row {
        precondition(position >= 0 && position < count, "row \(position) out of range 0..<\(count)")
        return Row(result: self, index: Int32(position))
    }

    /// Rows inserted, updated, deleted, selected, ... by the statement. The C function is
    /// `PQcmdTuples`; 0 for statements that report no count.
    public var rowsAffected: Int {
        Int(String(cString: PQcmdTuples(handle.pointer))) ?? 0
    }

    /// The command tag, such as `INSERT 0 1` or `ROLLBACK`. The C function is `PQcmdStatus`.
    public var commandTag: String {
        String(cString: PQcmdStatus(handle.pointer))
    }

    /// The type of column `index`. The C function is `PQftype`.
    public func type(ofColumn index: Int) -> PGType {
        PGType(rawValue: PQftype(handle.pointer, Int32(index)))
    }

    /// The index of the column named `name`, or `nil`.
    public func columnIndex(_ name: String) -> Int? {
        name.withCString { wanted in
            (0..<columnCount).first { strcmp(PQfname(handle.pointer, Int32($0)), wanted) == 0 }
        }
    }
}

/// One row of a `QueryResult`. Columns are addressed by index or by name.
public struct Row: Sendable {
    @usableFromInline let result: QueryResult
    @usableFromInline let index: Int32

    /// The text of column `column`, or `nil` for NULL.
    public subscript(column: Int) -> String? {
        (0..<result.columnCount).contains(column) ? try? decode(String?.self, at: column) : nil
    }

    /// The text of the column named `name`, or `nil` for NULL or no such column.
    public subscript(name: String) -> String? {
        result.columnIndex(name).flatMap { self[$0] }
    }

    /// Whether column `column` is NULL. The C function is `PQgetisnull`.
    public func isNull(_ column: Int) -> Bool {
        PQgetisnull(result.handle.pointer, index, Int32(column)) == 1
    }

    /// Decodes column `column` as `T`; throws for NULL, a column type `T` does not accept, or
    /// text that is not a valid `T`. Inlinable, so callers get code specialised for `T`.
    @inlinable public func decode<T: PGDecodable>(_ type: T.Type, at column: Int) throws(PGError) -> T {
        guard let value = try decode(T?.self, at: column) else {
            throw decodingError("is NULL; decode it as Optional<\(T.self)>", column)
        }
        return value
    }

    /// Decodes column `column` as `T?`, with `nil` for NULL.
    @inlinable public func decode<T: PGDecodable>(_ type: T?.Type, at column: Int) throws(PGError) -> T? {
        guard (0..<result.columnCount).contains(column) else {
            throw PGError(
                kind: .decoding,
                message: "no column \(column); the result has \(result.columnCount)")
        }
        let pgType = result.type(ofColumn: column)
        guard T.accepts(pgType) else {
            throw decodingError("has type \(pgType), which cannot be decoded as \(T.self)", column)
        }
        let res = result.handle.pointer
        if PQgetisnull(res, index, Int32(column)) == 1 { return nil }
        let length = Int(PQgetlength(res, index, Int32(column)))
        let bytes = UnsafeRawPointer(PQgetvalue(res, index, Int32(column))!)
        let buffer = UnsafeBufferPointer(start: bytes.assumingMemoryBound(to: UInt8.self), count: length)
        guard let value = T.decode(pgText: buffer) else {
            let text = String(decoding: buffer.prefix(64), as: UTF8.self)
            throw decodingError("value \"\(text)\" is not a valid \(T.self)", column)
        }
        return value
    }

    /// Decodes the column named `name` as `T`.
    public func decode<T: PGDecodable>(_ type: T.Type, _ name: String) throws(PGError) -> T {
        try decode(type, at: try columnIndex(name))
    }

    /// Decodes the column named `name` as `T?`, with `nil` for NULL.
    public func decode<T: PGDecodable>(_ type: T?.Type, _ name: String) throws(PGError) -> T? {
        try decode(type, at: try columnIndex(name))
    }

    private func columnIndex(_ name: String) throws(PGError) -> Int {
        guard let column = result.columnIndex(name) else {
            throw PGError(
                kind: .decoding,
                message: "no column \"\(name)\" in the result (columns: \(result.columns.joined(separator: ", ")))")
        }
        return column
    }

    @usableFromInline func decodingError(_ what: String, _ column: Int) -> PGError {
        let name = result.columnName(column)
        return PGError(kind: .decoding, message: "column \"\(name)\" \(what)", column: name)
    }
}
