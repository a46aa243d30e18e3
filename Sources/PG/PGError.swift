/// An error from PostgreSQL, from libpq, or from this wrapper.
///
/// Server errors carry the fields of the server's error report (`PQresultErrorField`), so a
/// caller can tell a unique violation (`23505`) from a check violation (`23514`) from a lost
/// connection (`kind == .connection`).
///
/// `description` names the kind, the SQLSTATE and the primary message only; the detail (which
/// may quote the offending values) is in `detail` and in `String(reflecting:)`.
public struct PGError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// The server reported an error in a statement; the connection is still usable.
        case server
        /// The connection could not be made or was lost. The statement may or may not have run.
        case connection
        /// Refused before it reached the server: a NUL byte in a text parameter, an unknown
        /// prepared statement, a nested transaction.
        case client
        /// A result value could not be decoded as the requested Swift type.
        case decoding
    }

    public var kind: Kind
    /// The SQLSTATE; for connection failures without a server report, `08006` or `08001`.
    public var sqlState: SQLState?
    /// The primary message.
    public var message: String
    public var detail: String?
    public var hint: String?
    /// The name of the violated constraint, for integrity violations.
    public var constraint: String?
    public var table: String?
    public var column: String?

    public init(
        kind: Kind, sqlState: SQLState? = nil, message: String, detail: String? = nil,
        hint: String? = nil, constraint: String? = nil, table: String? = nil, column: String? = nil
    ) {
        self.kind = kind
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.hint = hint
        self.constraint = constraint
        self.table = table
        self.column = column
    }

    /// Whether the connection was lost (or never made).
    public var isConnectionError: Bool { kind == .connection }

    public var description: String {
        var text = "PostgreSQL \(kind) error"
        if let sqlState { text += " \(sqlState)" }
        return text + ": " + message
    }

    public var debugDescription: String {
        var text = description
        if let detail { text += " (detail: \(detail))" }
        if let hint { text += " (hint: \(hint))" }
        if let constraint { text += " (constraint: \(constraint))" }
        return text
    }
}
