/// A five-character SQLSTATE code, as PostgreSQL reports it in the `C` field of an error.
///
/// The class (the first two characters) groups related conditions: `23` integrity constraint
/// violations, `08` connection exceptions, `57` operator intervention, and so on.
public struct SQLState: RawRepresentable, Hashable, Sendable, ExpressibleByStringLiteral,
    CustomStringConvertible
{
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }

    /// The error class: the first two characters of the code.
    public var errorClass: Substring { rawValue.prefix(2) }
    public var description: String { rawValue }

    public static let successfulCompletion: SQLState = "00000"
    public static let connectionException: SQLState = "08000"
    public static let connectionDoesNotExist: SQLState = "08003"
    public static let connectionFailure: SQLState = "08006"
    public static let sqlClientUnableToEstablishSQLConnection: SQLState = "08001"
    public static let invalidTextRepresentation: SQLState = "22P02"
    public static let stringDataRightTruncation: SQLState = "22001"
    public static let numericValueOutOfRange: SQLState = "22003"
    public static let notNullViolation: SQLState = "23502"
    public static let foreignKeyViolation: SQLState = "23503"
    public static let uniqueViolation: SQLState = "23505"
    public static let checkViolation: SQLState = "23514"
    public static let invalidSQLStatementName: SQLState = "26000"
    public static let transactionRollback: SQLState = "40000"
    public static let serializationFailure: SQLState = "40001"
    public static let deadlockDetected: SQLState = "40P01"
    public static let syntaxError: SQLState = "42601"
    public static let insufficientPrivilege: SQLState = "42501"
    public static let undefinedTable: SQLState = "42P01"
    public static let undefinedColumn: SQLState = "42703"
    public static let duplicateObject: SQLState = "42710"
    public static let tooManyConnections: SQLState = "53300"
    public static let lockNotAvailable: SQLState = "55P03"
    public static let queryCanceled: SQLState = "57014"
    public static let adminShutdown: SQLState = "57P01"
    public static let crashShutdown: SQLState = "57P02"
    public static let cannotConnectNow: SQLState = "57P03"
    public static let raiseException: SQLState = "P0001"

    /// Whether the code says the session is gone: class `08`, or the server shutting down or
    /// terminating the backend (`57P01`, `57P02`, `57P03`).
    public var meansConnectionLost: Bool {
        errorClass == "08" || self == .adminShutdown || self == .crashShutdown
            || self == .cannotConnectNow
    }
}
