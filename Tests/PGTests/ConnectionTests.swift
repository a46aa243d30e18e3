import Foundation
import PG
import Testing

@Suite struct ConnectionTests {
    let db: Connection
    init() throws { db = try TestDatabase.fresh() }

    @Test func reportsTheServerVersion() throws {
        let reported = try #require(try db.query("SHOW server_version_num").first?.decode(String.self, at: 0))
        #expect(db.serverVersion == Int(reported))
        #expect(db.serverVersion >= 150_000)
    }

    @Test func connectsWithURIsAndKeywordStrings() throws {
        let keywords = try TestDatabase.conninfo(database: "postgres")
        let host = try #require(ProcessInfo.processInfo.environment["ARTICLES_TEST_PGHOST"])
        let uri = "postgresql:///postgres?host=\(host)&user=postgres&application_name=uri-test"
        #expect(try Connection(keywords).query("SELECT current_database()").first?["current_database"] == "postgres")
        let viaURI = try Connection(uri)
        #expect(try viaURI.query("SHOW application_name").first?[0] == "uri-test")
        #expect(try Connection(keywords).query("SHOW application_name").first?[0] == "articles-fcgi")
    }

    @Test func everyConnectionBoundsATCPServerThatVanishes() throws {
        #expect(db.option("keepalives") == "1")
        #expect(db.option("keepalives_idle") == "5")
        #expect(db.option("keepalives_interval") == "2")
        #expect(db.option("keepalives_count") == "3")
        #expect(db.option("tcp_user_timeout") == "10000")
        // What the connection string says wins.
        let own = try Connection(try TestDatabase.conninfo(database: "postgres") + " tcp_user_timeout=3000")
        #expect(own.option("tcp_user_timeout") == "3000")
    }

    @Test func aFailedConnectionIsAConnectionError() throws {
        let host = try #require(ProcessInfo.processInfo.environment["ARTICLES_TEST_PGHOST"])
        let error = try #require(throws: PGError.self) {
            try Connection("host=\(host) port=5432 user=postgres dbname=no_such_database")
        }
        #expect(error.kind == .connection)
        #expect(error.message.contains("database \"no_such_database\" does not exist"))
    }

    @Test func uniqueViolationCarriesSQLStateAndConstraint() throws {
        try db.query("CREATE TABLE t (email text CONSTRAINT t_email_key UNIQUE)")
        try db.query("INSERT INTO t VALUES ($1)", "a@example.com")
        let error = try #require(throws: PGError.self) { try db.query("INSERT INTO t VALUES ($1)", "a@example.com") }
        #expect(error.kind == .server)
        #expect(error.sqlState == .uniqueViolation)
        #expect(error.constraint == "t_email_key")
        #expect(error.message == "duplicate key value violates unique constraint \"t_email_key\"")
        #expect(error.detail == "Key (email)=(a@example.com) already exists.")
        #expect(!error.description.contains("a@example.com"))
    }

    @Test func syntaxErrorIs42601() throws {
        let error = try #require(throws: PGError.self) { try db.query("SELEC 1") }
        #expect(error.sqlState == .syntaxError)
        #expect(error.kind == .server)
        #expect(try db.query("SELECT 1").count == 1)
    }

    @Test func statementTimeoutIs57014() throws {
        try db.query("SET statement_timeout = 100")
        let started = Date()
        let error = try #require(throws: PGError.self) { try db.query("SELECT pg_sleep(5)") }
        #expect(error.sqlState == .queryCanceled)
        #expect(error.kind == .server)
        #expect(Date().timeIntervalSince(started) < 2)
        try db.query("RESET statement_timeout")
        #expect(try db.query("SELECT 1").count == 1)
    }

    @Test func aNulByteInAParameterIsRefusedBeforeLibpq() throws {
        try db.query("CREATE TABLE t (name text)")
        let error = try #require(throws: PGError.self) {
            try db.query("INSERT INTO t VALUES ($1), ($2)", "fine", "bad\u{0}tail")
        }
        #expect(error.kind == .client)
        #expect(error.message == "parameter $2 contains a NUL byte, which PostgreSQL text cannot hold")
        #expect(try db.query("SELECT count(*) FROM t").first?.decode(Int.self, at: 0) == 0)
    }

    @Test func arraysArriveElementByElement() throws {
        let texts: [String?] = ["plain", #"a "quoted" \ one"#, "{braces}, commas", "", "NULL", nil, "ünïcödé ✓", " spaced "]
        let rows = try db.query("SELECT t, t IS NULL FROM unnest($1::text[]) WITH ORDINALITY AS u (t, n) ORDER BY n", texts)
        #expect(try rows.map { try $0.decode(String?.self, at: 0) } == texts)
        #expect(try rows.map { try $0.decode(Bool.self, at: 1) } == texts.map { $0 == nil })
        let numbers: [Int64?] = [1, nil, -9_223_372_036_854_775_808]
        #expect(try db.query("SELECT unnest($1::int8[])", numbers).map { try $0.decode(Int64?.self, at: 0) } == numbers)
        #expect(try db.query("SELECT cardinality($1::text[])", [String]()).first?.decode(Int.self, at: 0) == 0)
    }

    @Test func rowsAffectedCountsChangedRows() throws {
        try db.query("CREATE TABLE t (n int)")
        #expect(try db.query("INSERT INTO t SELECT generate_series(1, 5)").rowsAffected == 5)
        #expect(try db.query("UPDATE t SET n = n + 1 WHERE n > $1", 2).rowsAffected == 3)
        #expect(try db.query("DELETE FROM t").rowsAffected == 5)
        let rows = try db.query("SELECT n FROM generate_series(1, 3) n")
        #expect(rows.rowsAffected == 3)
        #expect(try rows.map { try $0.decode(Int.self, "n") } == [1, 2, 3])
        #expect(rows.columns == ["n"])
    }

    @Test func preparedStatementsRunByNameAndSurviveDeallocate() throws {
        let add = PreparedStatement(name: "add", sql: "SELECT $1::int + $2::int AS sum")
        #expect(try db.query(add, 2, 3).first?.decode(Int.self, "sum") == 5)
        #expect(try db.query(add, 10, 20).first?.decode(Int.self, "sum") == 30)
        #expect(try db.query("SELECT count(*) FROM pg_prepared_statements WHERE name = 'add'").first?.decode(Int.self, at: 0) == 1)
        try db.query("DEALLOCATE ALL")
        #expect(try db.query(add, 1, 1).first?.decode(Int.self, "sum") == 2)
        let clash = PreparedStatement(name: "add", sql: "SELECT 1")
        let error = try #require(throws: PGError.self) { try db.query(clash) }
        #expect(error.kind == .client)
    }

    @Test func transactionCommitsOrRollsBack() throws {
        try db.query("CREATE TABLE t (n int)")
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try db.transaction { db in
                try db.query("INSERT INTO t VALUES (1)")
                throw Boom()
            }
        }
        #expect(try db.query("SELECT count(*) FROM t").first?.decode(Int.self, at: 0) == 0)
        let inserted = try db.transaction { db in try db.query("INSERT INTO t VALUES (2), (3)").rowsAffected }
        #expect(inserted == 2)
        #expect(try db.query("SELECT count(*) FROM t").first?.decode(Int.self, at: 0) == 2)
        // A failed statement whose error the body swallowed still rolls the transaction back.
        let error = try #require(throws: PGError.self) {
            try db.transaction { db in
                try db.query("INSERT INTO t VALUES (4)")
                _ = try? db.query("SELECT 1/0")
            }
        }
        #expect(error.sqlState == .transactionRollback)
        #expect(try db.query("SELECT count(*) FROM t").first?.decode(Int.self, at: 0) == 2)
        let nested = try #require(throws: PGError.self) { try db.transaction { db in try db.transaction { _ in } } }
        #expect(nested.kind == .client)
    }

    @Test func reconnectsAfterTheBackendIsTerminatedWhileIdle() throws {
        let statement = PreparedStatement(name: "pid", sql: "SELECT pg_backend_pid() AS pid")
        let before = try #require(try db.query(statement).first?.decode(Int.self, "pid"))
        try Self.terminate(before)
        let after = try #require(try db.query(statement).first?.decode(Int.self, "pid"))
        #expect(after != before)
        #expect(db.isConnected)
    }

    @Test func aQueryCutOffByTerminationFailsPromptlyAndTheNextOneReconnects() throws {
        let before = try #require(try db.query("SELECT pg_backend_pid()").first?.decode(Int.self, at: 0))
        let killer = Thread {
            // Once the backend runs the query.
            guard let admin = try? Connection(TestDatabase.conninfo(database: "postgres")) else { return }
            for _ in 0..<500 {
                let running = try? admin.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'PgSleep'", before)
                if running?.isEmpty == false { break }
                Thread.sleep(forTimeInterval: 0.01)
            }
            try? Self.terminate(before)
        }
        killer.start()
        let started = Date()
        let error = try #require(throws: PGError.self) { try db.query("SELECT pg_sleep(30)") }
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(error.kind == .connection)
        #expect(error.isConnectionError)
        #expect(error.sqlState?.meansConnectionLost == true)
        #expect(error.message.hasPrefix("server closed the connection unexpectedly"), "\(error.message)")
        let after = try #require(try db.query("SELECT pg_backend_pid()").first?.decode(Int.self, at: 0))
        #expect(after != before)
    }

    @Test func aConnectionLostInsideATransactionIsNotReplacedSilently() throws {
        try db.query("CREATE TABLE t (n int)")
        let error = try #require(throws: PGError.self) {
            try db.transaction { db in
                try db.query("INSERT INTO t VALUES (1)")
                let pid = try db.query("SELECT pg_backend_pid()").first!.decode(Int.self, at: 0)
                try Self.terminate(pid)
                try db.query("INSERT INTO t VALUES (2)")
            }
        }
        #expect(error.kind == .connection)
        #expect(try db.query("SELECT count(*) FROM t").first?.decode(Int.self, at: 0) == 0)
    }

    @Test func repeatedUseDoesNotLeak() throws {
        let statement = PreparedStatement(name: "rows", sql: "SELECT g, repeat('x', 100) FROM generate_series(1, $1::int) g")
        func residentKiB() throws -> Int {
            let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
            let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
            return try #require(Int(line.split(separator: " ")[1]))
        }
        for _ in 0..<2_000 { _ = try db.query(statement, 50).map { try $0.decode(Int.self, at: 0) } }
        let before = try residentKiB()
        for _ in 0..<20_000 {
            _ = try db.query(statement, 50).map { try $0.decode(Int.self, at: 0) }
            _ = try? db.query("SELECT $1::int", "not a number")
        }
        let grown = try residentKiB() - before
        // 20,000 results of 50 rows (about 6 KB each) would add over 100 MiB if kept; the bound
        // leaves room for the other suites running in the same process meanwhile.
        #expect(grown < 40 * 1024, "resident memory grew by \(grown) KiB")
    }

    @Test func useAfterCloseThrows() throws {
        db.close()
        let error = try #require(throws: PGError.self) { try db.query("SELECT 1") }
        #expect(error.kind == .connection)
        #expect(error.message == "the connection was closed")
    }

    /// Ends a backend from another connection and waits until it is gone.
    private static func terminate(_ pid: Int) throws {
        let admin = try Connection(TestDatabase.conninfo(database: "postgres"))
        try admin.query("SELECT pg_terminate_backend($1)", pid)
        for _ in 0..<100 {
            if try admin.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", pid).isEmpty { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }
}

extension ConnectionTests {
    @Test func sessionSettingsApplyAtEveryConnect() throws {
        let settings = [(name: "application_name", value: "it's set"), (name: "plan_cache_mode", value: "force_generic_plan")]
        let db = try Connection(TestDatabase.conninfo(database: "postgres"), settings: settings)
        #expect(try db.query("SHOW application_name").first?[0] == "it's set")
        let pid = try #require(try db.query("SELECT pg_backend_pid()").first?.decode(Int.self, at: 0))
        try Self.terminate(pid)
        #expect(try db.query("SHOW plan_cache_mode").first?[0] == "force_generic_plan")
        #expect(try db.query("SELECT pg_backend_pid()").first?.decode(Int.self, at: 0) != pid)
    }
}
