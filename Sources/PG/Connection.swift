import CLibPQ

#if canImport(Glibc)
import Glibc
#endif

// Kept whole (about 300 lines): the connection's lifecycle, statements, transactions and the
// detection of a drop while idle all share its private state (the PGconn, the prepared names,
// the transaction flag), which an extension in another file could not reach.

/// A connection to a PostgreSQL server, closed when deinitialized. The C type is `PGconn`.
///
/// A connection is used by one thread at a time. Statements are sent with bound parameters only
/// (`PQexecParams`, `PQexecPrepared`). When the server drops the connection (a restart,
/// `pg_terminate_backend`), the statement that finds out fails with a `.connection` error, and
/// the next use outside a transaction connects again and re-prepares statements as they run.
///
/// Through a connection pooler (PgBouncer in transaction pooling mode, where each transaction
/// may run on another server session), named statements and session settings would land on
/// whichever session ran them: there, `PreparedStatement`s are sent unnamed and the session
/// settings are left to the server's role defaults (see `isPooled`).
public final class Connection {
    /// The connection string or URI this connection was opened with; `nil` for libpq's
    /// environment defaults (`PGHOST`, `PGDATABASE`, ...).
    public let conninfo: String?
    let connectTimeout: Int
    private let applicationName: String
    /// Session settings applied at every (re)connect, as `SET name TO 'value'`.
    private let settings: [(name: String, value: String)]
    /// Counts the server sessions this connection has had: it changes at each reconnect.
    public private(set) var session = 0
    /// Whether the connection goes through a pooler rather than to one server session: the
    /// backend process a statement reports (`pg_backend_pid()`) is not the one the start-up
    /// named (`PQbackendPID`), as it always is on a direct connection (a pooler names one of its
    /// own). Checked at each (re)connect.
    public private(set) var isPooled = false
    private var conn: OpaquePointer?
    private var isClosed = false
    /// Statements prepared on the current server session, by name.
    var prepared: [String: String] = [:]
    var inTransaction = false
    /// What the `async` statements wait on for the server (a serving loop's epoll set); nil:
    /// they wait in `poll`, holding the thread.
    public let waiter: (any SocketWaiter)?
    /// Set when the server sends a FATAL report outside a statement (the backend is ending).
    private let fatalWhileIdle = Flag()

    private final class Flag {
        var isSet = false
    }

    /// Connects with `conninfo` (a `key=value` string or a `postgresql://` URI), falling back
    /// to libpq's environment defaults for what it leaves out. The C function is
    /// `PQconnectdbParams`.
    ///
    /// - Parameters:
    ///   - connectTimeout: seconds to wait for the server, unless `conninfo` sets
    ///     `connect_timeout` itself.
    ///   - applicationName: shown in `pg_stat_activity`, unless `conninfo` sets one.
    ///   - settings: session settings (`SET name TO 'value'`) applied at every (re)connect.
    public convenience init(
        _ conninfo: String? = nil, connectTimeout: Int = 5, applicationName: String = "articles-fcgi",
        settings: [(name: String, value: String)] = []
    ) throws(PGError) {
        self.init(
            lazy: conninfo, connectTimeout: connectTimeout, applicationName: applicationName, settings: settings)
        try reconnect()
    }

    /// A connection that connects on first use, so it can be made while the server is down.
    public init(
        lazy conninfo: String?, connectTimeout: Int = 5, applicationName: String = "articles-fcgi",
        settings: [(name: String, value: String)] = [], waiter: (any SocketWaiter)? = nil
    ) {
        self.waiter = waiter
        self.conninfo = conninfo
        self.connectTimeout = connectTimeout
        self.applicationName = applicationName
        self.settings = settings
    }

    deinit {
        if let conn { PQfinish(conn) }
    }

    /// Closes the connection. Later use throws. The C function is `PQfinish`.
    public func close() {
        if let conn { PQfinish(conn) }
        conn = nil
        isClosed = true
    }

    /// The server's version as a number, e.g. `150018` for 15.18. The C function is
    /// `PQserverVersion`.
    public var serverVersion: Int {
        conn.map { Int(PQserverVersion($0)) } ?? 0
    }

    /// The value libpq uses for a connection option (`keepalives`, `tcp_user_timeout`, ...),
    /// after `conninfo`, the defaults and the environment; nil while not connected or unset.
    /// The C function is `PQconninfo`.
    public func option(_ keyword: String) -> String? {
        conn.flatMap { optionValue($0, keyword) }
    }

    /// Whether the last known state of the connection is good. The C function is `PQstatus`.
    public var isConnected: Bool {
        conn.map { PQstatus($0) == CONNECTION_OK } ?? false && !fatalWhileIdle.isSet
    }

    // MARK: - Statements

    /// Runs one statement with `$1…$n` bound to `parameters`. The C function is `PQexecParams`.
    @discardableResult
    public func query(_ sql: String, _ parameters: [(any PGEncodable)?]) throws(PGError) -> QueryResult {
        let conn = try open()
        let result = try withCParameters(parameters) { count, values in
            PQexecParams(conn, sql, count, nil, values, nil, nil, 0)
        }
        return try check(result, conn)
    }

    /// Runs one statement with `$1…$n` bound to `parameters`. The C function is `PQexecParams`.
    @discardableResult
    public func query(_ sql: String, _ parameters: (any PGEncodable)?...) throws(PGError) -> QueryResult {
        try query(sql, parameters)
    }

    /// Runs a prepared statement, preparing it on this connection first if needed; through a
    /// pooler, as an unnamed statement (`PQexecParams`). The C functions are `PQprepare` and
    /// `PQexecPrepared`.
    @discardableResult
    public func query(
        _ statement: PreparedStatement, _ parameters: [(any PGEncodable)?]
    ) throws(PGError) -> QueryResult {
        var conn = try open()
        if isPooled { return try query(statement.sql, parameters) }
        do {
            try prepareIfNeeded(statement, conn)
            return try executePrepared(statement, parameters, conn)
        } catch let error where error.sqlState == .invalidSQLStatementName && !inTransaction {
            // Someone ran DEALLOCATE or DISCARD ALL: nothing ran, so prepare it again and retry.
            prepared[statement.name] = nil
            conn = try open()
            try prepareIfNeeded(statement, conn)
            return try executePrepared(statement, parameters, conn)
        }
    }

    /// Runs a prepared statement, preparing it on this connection first if needed.
    @discardableResult
    public func query(
        _ statement: PreparedStatement, _ parameters: (any PGEncodable)?...
    ) throws(PGError) -> QueryResult {
        try query(statement, parameters)
    }

    /// Runs trusted SQL text that may hold several statements and no parameters, such as a
    /// migration file. Never build `script` from request data. The C function is `PQexec`.
    @discardableResult
    public func execute(script: String) throws(PGError) -> QueryResult {
        let conn = try open()
        return try check(PQexec(conn, script), conn)
    }

    // MARK: - Transactions

    /// Runs `body` inside `BEGIN` … `COMMIT`, or `ROLLBACK` when it throws (the error is
    /// rethrown). A lost connection inside the transaction is never silently replaced.
    public func transaction<T>(_ body: (Connection) throws -> T) throws -> T {
        guard !inTransaction else {
            throw PGError.transactionAlreadyOpen
        }
        try query("BEGIN")
        inTransaction = true
        defer { inTransaction = false }
        let value: T
        do {
            value = try body(self)
        } catch {
            if isConnected { _ = try? query("ROLLBACK") }
            throw error
        }
        let commit = try query("COMMIT")
        try PGError.checkCommitted(commit)
        return value
    }

    // MARK: - Internals

    /// The live connection, after noticing a drop that happened while idle and connecting again
    /// if the previous one is gone (never inside a transaction).
    func open() throws(PGError) -> OpaquePointer {
        if let conn = try live() { return conn }
        try reconnect()
        return conn!
    }

    /// The connection if it is still good; nil when it must be made again (throws when it may
    /// not be: closed, or lost inside a transaction).
    func live() throws(PGError) -> OpaquePointer? {
        if isClosed {
            throw PGError(kind: .connection, sqlState: .connectionDoesNotExist, message: "the connection was closed")
        }
        if let conn, PQstatus(conn) == CONNECTION_OK, !droppedWhileIdle(conn) {
            return conn
        }
        if inTransaction {
            throw PGError(
                kind: .connection, sqlState: .connectionFailure,
                message: "the connection was lost inside a transaction")
        }
        return nil
    }

    /// Whether the server closed an idle connection: a terminated backend sends its FATAL
    /// message and closes, so the socket is readable while no statement is in flight. Costs one
    /// `poll` with no wait when nothing is pending.
    private func droppedWhileIdle(_ conn: OpaquePointer) -> Bool {
        var pollfd = Glibc.pollfd(fd: PQsocket(conn), events: Int16(POLLIN), revents: 0)
        for _ in 0..<16 {
            guard poll(&pollfd, 1, 0) > 0 else { return fatalWhileIdle.isSet }
            if PQconsumeInput(conn) == 0 || PQstatus(conn) != CONNECTION_OK { return true }
            // Parses what arrived: a FATAL report reaches the notice receiver, which sets the flag.
            _ = PQisBusy(conn)
            if fatalWhileIdle.isSet { return true }
        }
        return fatalWhileIdle.isSet
    }

    private func reconnect() throws(PGError) {
        forget()
        try adopt(connectToServer(conninfo, connectTimeout: connectTimeout, applicationName: applicationName))
    }

    /// Drops the connection there was, before another is made.
    private func forget() {
        if let conn { PQfinish(conn) }
        conn = nil
        prepared = [:]
    }

    /// Drops the connection there was and starts making another, to be finished with
    /// `PQconnectPoll` within the timeout returned (libpq leaves `connect_timeout` to whoever
    /// polls: the conninfo's, else this connection's), then `adopt`ed; `overriding` wins over
    /// the conninfo (the addresses a `HostLookup` found).
    func startReconnecting(overriding: [(String, String)] = []) throws(PGError) -> (OpaquePointer, Duration) {
        forget()
        let fresh = try startConnecting(conninfo, connectTimeout: connectTimeout, applicationName: applicationName, overriding: overriding)
        return (fresh, .seconds(optionValue(fresh, "connect_timeout").flatMap(Int.init) ?? connectTimeout))
    }

    /// Makes `fresh`, just connected, this connection's: its notices, its settings, its session.
    /// The statements that set the session up block (`PQexec`); a connection with a waiter sets
    /// it up parked instead (`adoptParked`).
    func adopt(_ fresh: OpaquePointer) throws(PGError) {
        receiveNotices(fresh)
        do throws(PGError) {
            let backend = try check(PQexec(fresh, Self.sessionStart), fresh)
            if let statements = try sessionSettings(after: backend, fresh) { _ = try check(PQexec(fresh, statements), fresh) }
        } catch {
            PQfinish(fresh)
            throw error
        }
        adopted(fresh)
    }

    /// Timestamps are parsed in ISO form (a setting poolers carry over to every server session
    /// they use), and the backend's pid tells whether a pooler stands between.
    static let sessionStart = "SET DateStyle TO ISO; SELECT pg_backend_pid()"

    /// Notices are dropped, except that a FATAL report (the server ending this backend, as
    /// pg_terminate_backend does) marks the connection for replacement before it is used.
    func receiveNotices(_ fresh: OpaquePointer) {
        fatalWhileIdle.isSet = false
        PQsetNoticeReceiver(fresh, { context, result in
            guard let context, let result,
                let severity = PQresultErrorField(result, CLIBPQ_DIAG_SEVERITY_NONLOCALIZED),
                String(cString: severity) == "FATAL"
            else { return }
            Unmanaged<Flag>.fromOpaque(context).takeUnretainedValue().isSet = true
        }, Unmanaged.passUnretained(fatalWhileIdle).toOpaque())
    }

    /// Whether `fresh` is a pooler's, from `sessionStart`'s answer; and on a session of its own,
    /// the caller's settings as statements, quoted as literals (nil when there are none to run).
    func sessionSettings(after backend: QueryResult, _ fresh: OpaquePointer) throws(PGError) -> String? {
        isPooled = try backend.first?.decode(Int32.self, at: 0) != PQbackendPID(fresh)
        guard !isPooled, !settings.isEmpty else { return nil }
        return settings.map { "SET \($0.name) TO '\($0.value.replacingQuotes)'" }.joined(separator: "; ")
    }

    /// `fresh`, set up, is this connection's. Statements sent with `PQsend…` never block on a
    /// full socket buffer (`PQflush` says when to wait); PQexec still blocks, as it always does.
    func adopted(_ fresh: OpaquePointer) {
        PQsetnonblocking(fresh, 1)
        conn = fresh
        session += 1
    }

    func prepareIfNeeded(_ statement: PreparedStatement, _ conn: OpaquePointer) throws(PGError) {
        if let sql = prepared[statement.name] {
            guard sql == statement.sql else { throw PGError.preparedWithOtherSQL(statement) }
            return
        }
        _ = try check(PQprepare(conn, statement.name, statement.sql, 0, nil), conn)
        prepared[statement.name] = statement.sql
    }

    private func executePrepared(
        _ statement: PreparedStatement, _ parameters: [(any PGEncodable)?], _ conn: OpaquePointer
    ) throws(PGError) -> QueryResult {
        let result = try withCParameters(parameters) { count, values in
            PQexecPrepared(conn, statement.name, count, values, nil, nil, 0)
        }
        return try check(result, conn)
    }

    private func check(_ result: OpaquePointer?, _ conn: OpaquePointer) throws(PGError) -> QueryResult {
        try checked(result, conn)
    }
}

extension PGError {
    static let transactionAlreadyOpen = PGError(kind: .client, message: "a transaction is already open on this connection")

    /// Throws when the server turned a `COMMIT` into a rollback: a statement in it failed.
    static func checkCommitted(_ commit: QueryResult) throws(PGError) {
        guard commit.commandTag == "ROLLBACK" else { return }
        throw PGError(kind: .server, sqlState: .transactionRollback, message: "the transaction was rolled back: a statement in it failed")
    }

    static func preparedWithOtherSQL(_ statement: PreparedStatement) -> PGError {
        PGError(kind: .client, message: "prepared statement \"\(statement.name)\" is already prepared with other SQL")
    }
}

extension String {
    /// The text with each `'` doubled, for a SQL string literal.
    fileprivate var replacingQuotes: String {
        var result = ""
        for each in self { result += each == "'" ? "''" : String(each) }
        return result
    }
}
