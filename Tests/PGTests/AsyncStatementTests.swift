import Foundation
import PG
import Testing

/// The `async` statements (libpq's non-blocking interface): the same answers and errors as the
/// blocking ones, here waiting in `poll` (a serving loop's waiter is what the worker's tests use).
@Suite struct AsyncStatementTests {
    let db: Connection
    init() throws { db = try TestDatabase.fresh() }

    @Test func answerAsTheBlockingStatementsDo() async throws {
        try await db.query("CREATE TABLE t (id int PRIMARY KEY, name text)")
        try await db.query("INSERT INTO t VALUES ($1, $2)", 1, "one")
        let byID = PreparedStatement(name: "t_by_id", sql: "SELECT name FROM t WHERE id = $1")
        #expect(try await db.query(byID, 1).first?.decode(String.self, at: 0) == "one")
        #expect(try await db.query(byID, 2).isEmpty)
        let duplicate = try await #require(throws: PGError.self) { try await db.query("INSERT INTO t VALUES ($1, $2)", 1, "again") }
        #expect(duplicate.sqlState == .uniqueViolation && duplicate.constraint == "t_pkey")
        // A result of many packets arrives whole; a parameter of many megabytes is flushed whole.
        #expect(try await db.query("SELECT g, repeat('x', 1000) FROM generate_series(1, 5000) g").count == 5000)
        let big = String(repeating: "y", count: 4_000_000)
        #expect(try await db.query("SELECT length($1)", big).first?.decode(Int.self, at: 0) == 4_000_000)
    }

    @Test func aTransactionThatThrowsLeavesNothing() async throws {
        try await db.query("CREATE TABLE t (id int PRIMARY KEY)")
        await #expect(throws: PGError.self) {
            try await db.transaction { db in
                try await db.query("INSERT INTO t VALUES (1)")
                try await db.query("SELEC 1")
            }
        }
        try await db.transaction { db in try await db.query("INSERT INTO t VALUES (2)") }
        #expect(try await db.query("SELECT array_agg(id)::text FROM t").first?.decode(String.self, at: 0) == "{2}")
    }

    @Test func aStatementCutOffByTheServerIsAConnectionErrorAndTheNextConnectsAgain() async throws {
        let pid = try #require(try await db.query("SELECT pg_backend_pid()").first?.decode(Int32.self, at: 0))
        let conninfo = try TestDatabase.conninfo(database: "postgres")
        let cut = Thread {
            Thread.sleep(forTimeInterval: 0.2)  // while the statement below runs
            _ = try? Connection(conninfo).query("SELECT pg_terminate_backend($1)", pid)
        }
        cut.start()
        let error = try await #require(throws: PGError.self) { try await db.query("SELECT pg_sleep(5)") }
        #expect(error.kind == .connection)
        #expect(try await db.query("SELECT 1").first?.decode(Int.self, at: 0) == 1)
    }

    /// A server that sends while a statement's parameters are still being sent (here the
    /// notifications a LISTEN session receives, more than the socket buffers hold) blocks
    /// until the client reads: the client reads while it flushes, so the statement completes.
    @Test func aStatementLargerThanTheSocketBuffersCompletesWhileTheServerSends() async throws {
        let database = try #require(try await db.query("SELECT current_database()").first?.decode(String.self, at: 0))
        let listener = Connection(lazy: try TestDatabase.conninfo(database: database), waiter: PollWaiter())
        try await listener.query("LISTEN big")
        let pid = try #require(try await listener.query("SELECT pg_backend_pid()").first?.decode(Int32.self, at: 0))
        // About 2 MB of notifications, ten times what a unix socket buffers each way, each its own
        // (equal ones in a transaction are sent once). Kept small: other suites in the process
        // measure its memory.
        try await db.query("SELECT pg_notify('big', repeat('n', 7000) || g) FROM generate_series(1, 300) g")
        // Should the two block each other, the server's side is ended after 20 s, so the test
        // ends too.
        let conninfo = try TestDatabase.conninfo(database: "postgres")
        let stuck = Thread {
            for _ in 0..<200 {
                if Thread.current.isCancelled { return }
                Thread.sleep(forTimeInterval: 0.1)
            }
            _ = try? Connection(conninfo).query("SELECT pg_terminate_backend($1)", pid)
        }
        stuck.start()
        let began = Date()
        let big = String(repeating: "y", count: 4_000_000)
        let length = try await listener.query("SELECT length($1)", big).first?.decode(Int.self, at: 0)
        #expect(length == 4_000_000)
        #expect(Date().timeIntervalSince(began) < 15)
        stuck.cancel()
    }

    /// A connection with a waiter sets its session up parked, as the blocking one does: ISO
    /// dates, the caller's settings, and not taken for a pooler's.
    @Test func aParkedConnectionSetsItsSessionUp() async throws {
        let db = Connection(
            lazy: try TestDatabase.conninfo(database: "postgres"), settings: [("lock_timeout", "1234ms")], waiter: PollWaiter())
        let row = try #require(try await db.query("SELECT current_setting('lock_timeout'), current_setting('DateStyle')").first)
        #expect(try row.decode(String.self, at: 0) == "1234ms" && row.decode(String.self, at: 1).hasPrefix("ISO"))
        #expect(!db.isPooled)
    }
}

/// Waits in `poll`, and runs work where it is called: a waiter for connections outside a loop.
private final class PollWaiter: SocketWaiter {
    func wait(for fd: Int32, readable: Bool, writable: Bool, timeout: Duration?) async -> Bool {
        var ready = pollfd(fd: fd, events: Int16((readable ? POLLIN : 0) | (writable ? POLLOUT : 0)), revents: 0)
        return poll(&ready, 1, timeout.map { Int32($0.components.seconds * 1000) } ?? -1) != 0
    }

    func offLoop<T: Sendable>(timeout: Duration, _ work: @escaping @Sendable () -> T) async -> T? { work() }
}
