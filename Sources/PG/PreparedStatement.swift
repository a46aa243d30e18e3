/// A named statement that each `Connection` prepares on first use and executes by name.
///
/// Declare statements once (for example as static constants) and use them from any thread's
/// connection: each connection prepares a statement the first time it runs it, and again after
/// it reconnects. The C functions are `PQprepare` and `PQexecPrepared`.
public struct PreparedStatement: Sendable, Hashable {
    public let name: String
    public let sql: String

    public init(name: String, sql: String) {
        self.name = name
        self.sql = sql
    }
}
