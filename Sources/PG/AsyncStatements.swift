import CLibPQ

#if canImport(Glibc)
import Glibc
#endif

/// Waits until a socket is ready, for the `async` statements of a `Connection`: a serving loop
/// parks the waiting task in its epoll set and goes on with other work meanwhile.
public protocol SocketWaiter: AnyObject, Sendable {
    /// Returns true once `fd` is readable (with `readable`) or writable (with `writable`), or
    /// has failed; false when `timeout` passed first.
    func wait(for fd: Int32, readable: Bool, writable: Bool, timeout: Duration?) async -> Bool

    /// Runs `work`, which blocks (a host name's lookup), on a thread of its own, the calling
    /// task parked until it returns; nil when `timeout` passed first (`work` then ends unawaited).
    func offLoop<T: Sendable>(timeout: Duration, _ work: @escaping @Sendable () -> T) async -> T?
}

/// Where statements run: a `Connection`, or a set of them that lends one to each statement
/// (and one to each transaction, for all of its statements).
public protocol Database: AnyObject {
    /// Runs one statement with `$1…$n` bound to `parameters`.
    func query(_ sql: String, _ parameters: [(any PGEncodable)?]) async throws(PGError) -> QueryResult
    /// Runs a prepared statement (unnamed through a pooler).
    func query(_ statement: PreparedStatement, _ parameters: [(any PGEncodable)?]) async throws(PGError) -> QueryResult
    /// Runs `body` inside `BEGIN` … `COMMIT` on one connection, or `ROLLBACK` when it throws.
    func transaction<T>(_ body: (Connection) async throws -> T) async throws -> T
}

extension Database {
    @discardableResult
    public func query(_ sql: String, _ parameters: (any PGEncodable)?...) async throws(PGError) -> QueryResult {
        try await query(sql, parameters)
    }

    @discardableResult
    public func query(_ statement: PreparedStatement, _ parameters: (any PGEncodable)?...) async throws(PGError) -> QueryResult {
        try await query(statement, parameters)
    }
}

/// The statements that wait for the server without holding the thread: sent with libpq's
/// non-blocking interface (`PQsendQueryParams`, `PQsendQueryPrepared`, `PQflush`), their
/// results read as they arrive (`PQconsumeInput`, `PQisBusy`, `PQgetResult`) while the task
/// waits on the connection's `waiter`. Connecting again waits the same way (`PQconnectStartParams`,
/// `PQconnectPoll`, within `connect_timeout`, then the statements that set the session up), and
/// a host name is looked up on a thread of the waiter's (`HostLookup`).
extension Connection: Database {
    @discardableResult
    public func query(_ sql: String, _ parameters: [(any PGEncodable)?]) async throws(PGError) -> QueryResult {
        let conn = try await openParked()
        let sent = try withCParameters(parameters) { count, values in
            PQsendQueryParams(conn, sql, count, nil, values, nil, nil, 0)
        }
        return try await result(of: sent, conn)
    }

    @discardableResult
    public func query(_ statement: PreparedStatement, _ parameters: [(any PGEncodable)?]) async throws(PGError) -> QueryResult {
        var conn = try await openParked()
        if isPooled { return try await query(statement.sql, parameters) }
        do {
            try await prepareIfNeeded(statement, conn)
            return try await executePrepared(statement, parameters, conn)
        } catch let error where error.sqlState == .invalidSQLStatementName && !inTransaction {
            // Someone ran DEALLOCATE or DISCARD ALL: nothing ran, so prepare it again and retry.
            prepared[statement.name] = nil
            conn = try await openParked()
            try await prepareIfNeeded(statement, conn)
            return try await executePrepared(statement, parameters, conn)
        }
    }

    public func transaction<T>(_ body: (Connection) async throws -> T) async throws -> T {
        guard !inTransaction else {
            throw PGError.transactionAlreadyOpen
        }
        try await query("BEGIN")
        inTransaction = true
        defer { inTransaction = false }
        let value: T
        do {
            value = try await body(self)
        } catch {
            if isConnected { _ = try? await query("ROLLBACK") }
            throw error
        }
        let commit = try await query("COMMIT")
        try PGError.checkCommitted(commit)
        return value
    }

    /// `open()`, but connecting again parked on the waiter, when there is one.
    private func openParked() async throws(PGError) -> OpaquePointer {
        if let conn = try live() { return conn }
        guard let waiter else { return try open() }
        var overriding: [(String, String)] = []
        if let lookup = HostLookup(conninfo) {
            let timeout = Duration.seconds(lookup.connectTimeout ?? connectTimeout)
            guard let found = await waiter.offLoop(timeout: timeout, lookup.resolve) else {
                throw PGError(
                    kind: .connection, sqlState: .sqlClientUnableToEstablishSQLConnection,
                    message: "looking up \(lookup.hosts.joined(separator: ",")) took longer than connect_timeout (\(timeout))")
            }
            overriding = try found.get()
        }
        let (fresh, timeout) = try startReconnecting(overriding: overriding)
        let deadline = ContinuousClock.now + timeout
        var polling = PGRES_POLLING_WRITING
        while polling != PGRES_POLLING_OK {
            let left = deadline - .now
            guard polling != PGRES_POLLING_FAILED,
                left > .zero,
                await wait(for: PQsocket(fresh), readable: polling != PGRES_POLLING_WRITING, writable: polling == PGRES_POLLING_WRITING, timeout: left)
            else {
                defer { PQfinish(fresh) }
                if polling == PGRES_POLLING_FAILED { throw PGError(connection: fresh, sqlState: .sqlClientUnableToEstablishSQLConnection) }
                throw PGError(
                    kind: .connection, sqlState: .sqlClientUnableToEstablishSQLConnection,
                    message: "the server did not answer within connect_timeout (\(timeout))")
            }
            polling = PQconnectPoll(fresh)
        }
        try await adoptParked(fresh)
        return try open()
    }

    /// `adopt`, with the statements that set the session up sent and awaited on the waiter.
    private func adoptParked(_ fresh: OpaquePointer) async throws(PGError) {
        receiveNotices(fresh)
        PQsetnonblocking(fresh, 1)
        do throws(PGError) {
            let backend = try await result(of: PQsendQuery(fresh, Self.sessionStart), fresh)
            if let statements = try sessionSettings(after: backend, fresh) {
                _ = try await result(of: PQsendQuery(fresh, statements), fresh)
            }
        } catch {
            PQfinish(fresh)
            throw error
        }
        adopted(fresh)
    }

    private func prepareIfNeeded(_ statement: PreparedStatement, _ conn: OpaquePointer) async throws(PGError) {
        if let sql = prepared[statement.name] {
            guard sql == statement.sql else { throw PGError.preparedWithOtherSQL(statement) }
            return
        }
        _ = try await result(of: PQsendPrepare(conn, statement.name, statement.sql, 0, nil), conn)
        prepared[statement.name] = statement.sql
    }

    private func executePrepared(
        _ statement: PreparedStatement, _ parameters: [(any PGEncodable)?], _ conn: OpaquePointer
    ) async throws(PGError) -> QueryResult {
        let sent = try withCParameters(parameters) { count, values in
            PQsendQueryPrepared(conn, statement.name, count, values, nil, nil, 0)
        }
        return try await result(of: sent, conn)
    }

    /// The result of what `PQsend…` returned `sent` for: its data flushed to the server, then
    /// every result read, the last statement's kept (a single statement has one; of several sent
    /// together, as `PQexec` does, the last, or the first error).
    private func result(of sent: Int32, _ conn: OpaquePointer) async throws(PGError) -> QueryResult {
        guard sent == 1 else { throw PGError(connection: conn) }
        let fd = PQsocket(conn)
        // Sent whole, reading meanwhile whatever the server sends (as libpq's documentation
        // says): a server that is sending (notifications, notices) stops reading until the
        // client reads, and waiting for writable alone would hold both up for good.
        while true {
            let flushed = PQflush(conn)
            if flushed == 0 { break }
            guard flushed > 0 else { throw PGError(connection: conn) }
            _ = await wait(for: fd, readable: true, writable: true, timeout: nil)
            guard PQconsumeInput(conn) == 1 else { throw PGError(connection: conn) }
        }
        var last: OpaquePointer?
        while true {
            while PQisBusy(conn) == 1 {
                _ = await wait(for: fd, readable: true, writable: false, timeout: nil)
                guard PQconsumeInput(conn) == 1 else {
                    if let last { PQclear(last) }
                    throw PGError(connection: conn)
                }
            }
            guard let next = PQgetResult(conn) else { break }
            // The last statement's result, unless one before it failed: the first error wins.
            if let last, PQresultStatus(last) == PGRES_FATAL_ERROR {
                PQclear(next)
                continue
            }
            if let last { PQclear(last) }
            last = next
        }
        return try checked(last, conn)
    }

    private func wait(for fd: Int32, readable: Bool, writable: Bool, timeout: Duration?) async -> Bool {
        if let waiter { return await waiter.wait(for: fd, readable: readable, writable: writable, timeout: timeout) }
        var ready = pollfd(fd: fd, events: Int16((readable ? POLLIN : 0) | (writable ? POLLOUT : 0)), revents: 0)
        let milliseconds = timeout.map { Int32(clamping: $0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000 + 1) }
        return poll(&ready, 1, milliseconds ?? -1) != 0
    }
}
