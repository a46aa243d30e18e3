import CLibPQ

/// Owns one `PGresult` and frees it with `PQclear` exactly once, when the last reference goes.
@usableFromInline final class ResultHandle: @unchecked Sendable {
    // A PGresult is immutable once returned; libpq allows reading it from any thread.
    @usableFromInline let pointer: OpaquePointer

    init(_ pointer: OpaquePointer) { self.pointer = pointer }
    deinit { PQclear(pointer) }
}

extension PGError {
    /// The error a failed result reports. The C function is `PQresultErrorField`.
    init(result: OpaquePointer, connection: OpaquePointer?) {
        func field(_ code: Int32) -> String? {
            PQresultErrorField(result, code).map { String(cString: $0) }
        }
        let state = field(CLIBPQ_DIAG_SQLSTATE).map(SQLState.init(rawValue:))
        let primary = field(CLIBPQ_DIAG_MESSAGE_PRIMARY)
        let lost = connection.map { PQstatus($0) != CONNECTION_OK } ?? true
        let connectionLost = lost || (state?.meansConnectionLost ?? false)
        let fallback = String(cString: PQresultErrorMessage(result))
        self.init(
            kind: connectionLost ? .connection : .server,
            sqlState: state ?? (connectionLost ? .connectionFailure : nil),
            message: primary ?? PGError.trimmed(fallback.isEmpty && connection != nil
                ? String(cString: PQerrorMessage(connection)) : fallback),
            detail: field(CLIBPQ_DIAG_MESSAGE_DETAIL),
            hint: field(CLIBPQ_DIAG_MESSAGE_HINT),
            constraint: field(CLIBPQ_DIAG_CONSTRAINT_NAME),
            table: field(CLIBPQ_DIAG_TABLE_NAME),
            column: field(CLIBPQ_DIAG_COLUMN_NAME))
    }

    /// A connection-level failure, from `PQerrorMessage`.
    init(connection: OpaquePointer?, sqlState: SQLState = .connectionFailure) {
        let text = connection.map { String(cString: PQerrorMessage($0)) } ?? "out of memory"
        self.init(kind: .connection, sqlState: sqlState, message: PGError.trimmed(text))
    }

    /// libpq messages end in a newline and may start with "ERROR:  " or "FATAL:  ".
    static func trimmed(_ text: String) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: true).map {
            $0.trimmingPrefix("ERROR:  ").trimmingPrefix("FATAL:  ").drop(while: \.isWhitespace)
        }
        if lines.isEmpty { lines = ["unknown libpq error"] }
        return lines.joined(separator: "; ")
    }
}
