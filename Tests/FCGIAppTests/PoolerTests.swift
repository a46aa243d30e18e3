@testable import FCGIApp
import Foundation
@testable import PG
@testable import Stores
@testable import Support
import Synchronization
import Testing

/// The worker's database connections through PgBouncer in transaction pooling mode, where each
/// transaction may run on another server session: named statements and session settings would
/// stay behind on whichever session ran them (PgBouncer 1.18 keeps no prepared statements).
@Suite(.lane()) struct PoolerTests {
    static let lookUp = PreparedStatement(name: "pooler_look_up", sql: "SELECT $1::int + 1")
    static let count = PreparedStatement(name: "pooler_count", sql: "SELECT count(*) FROM users WHERE username = $1")

    @Test func statementsAndTransactionsWorkThroughTransactionPooling() throws {
        let database = try TestDatabase.migrated()
        let direct = try Connection(database.conninfo(user: "articles_app"))
        #expect(!direct.isPooled, "a direct connection names its own backend")

        let bouncer = try PgBouncer(poolSize: 2)
        // More clients than server connections, each with the worker's session settings.
        let settings = try Config.fromEnvironment(["AWS_USER_POOLS_ID": TestPool.poolID, "AWS_APP_CLIENT_ID": TestPool.clientID])
            .sessionSettings
        let clients = try (0..<6).map { _ in try Connection(bouncer.conninfo(database), settings: settings) }
        for client in clients { #expect(client.isPooled) }
        for round in 0..<20 {
            for (index, client) in clients.enumerated() {
                #expect(try client.query(Self.lookUp, Int32(round * 10 + index)).first?.decode(Int32.self, at: 0) == Int32(round * 10 + index + 1))
                let counted = try client.transaction { db in
                    try db.query(Self.count, "nobody").first!.decode(Int64.self, at: 0)
                        + db.query(Self.lookUp, Int32(1)).first!.decode(Int64.self, at: 0)
                }
                #expect(counted == 2)
            }
        }
        // The clients' statement_timeout stayed off the shared server sessions.
        for client in clients {
            #expect(try client.query("SHOW statement_timeout").first?.decode(String.self, at: 0) == "0")
        }
        // Nothing was prepared on any server session.
        #expect(try clients[0].query("SELECT count(*) FROM pg_prepared_statements").first?.decode(Int64.self, at: 0) == 0)
    }

    @Test func theWorkerServesThroughPgBouncerWithAPoolSmallerThanItsThreads() throws {
        let database = try TestDatabase.migrated()
        try database.connect().query("INSERT INTO users (username, email) VALUES ('pooled', 'pooled@example.com')")
        let token = TestPool.token(claims: TestPool.idClaims(email: "pooled@example.com"))
        let bouncer = try PgBouncer(poolSize: 2)
        let stack = try Stack(
            database: database,
            environment: [
                "DATABASE_URL": bouncer.conninfo(database), "DATABASE_FEED_URL": try database.conninfo(user: "articles_feed"),
                "FCGI_THREADS": "6",
            ])
        #expect(stack.worker.output.contains("goes through a connection pooler: statements are sent unnamed"))

        // Six clients, each creating articles and reading each back and the list, at once.
        let failures = Mutex<[String]>([])
        let created = Mutex<[Int64]>([])
        let clients = try (0..<6).map { client in
            try PosixThread {
                for index in 0..<25 {
                    let headers = [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")]
                    do {
                        let posted = try stack.request("POST", "/articles/", headers: headers, body: Data(#"{"name": "p\#(client)-\#(index)"}"#.utf8))
                        guard posted.status == 201 else { throw HTTPClient.Failure(description: "POST \(posted.status) \(posted.text)") }
                        let id = try JSONDecoder().decode(Article.self, from: posted.body).id
                        created.withLock { $0.append(id) }
                        let got = try stack.request("GET", "/articles/\(id)/", headers: headers)
                        guard got.status == 200 else { throw HTTPClient.Failure(description: "GET \(got.status) \(got.text)") }
                        let listed = try stack.request("GET", "/articles/", headers: headers)
                        guard listed.status == 200 else { throw HTTPClient.Failure(description: "list \(listed.status) \(listed.text)") }
                    } catch {
                        failures.withLock { $0.append("\(error)") }
                    }
                }
            }
        }
        clients.forEach { $0.join() }
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0.prefix(5) })")
        let rows = try database.connect().query("SELECT id FROM articles ORDER BY id").map { try $0.decode(Int64.self, at: 0) }
        #expect(rows == created.withLock { $0 }.sorted(), "every answered POST stored once, nothing else")
        #expect(rows.count == 150)
        // PostgreSQL saw at most the pool's server connections, beside the feed's stream.
        let sessions = try database.connect().query(
            "SELECT backend_type, count(*) FROM pg_stat_activity WHERE usename IN ('articles_app', 'articles_feed') AND datname = $1 GROUP BY 1 ORDER BY 1",
            database.name
        ).map { try ($0.decode(String.self, at: 0), $0.decode(Int64.self, at: 1)) }
        let clientBackends = sessions.first { $0.0 == "client backend" }?.1 ?? 0
        #expect(clientBackends >= 1 && clientBackends <= 2, "\(sessions)")
        #expect(sessions.first { $0.0 == "walsender" }?.1 == 1, "\(sessions)")
    }

    @Test func withoutADirectFeedConnectionTheWorkerRefusesToStart() throws {
        let database = try TestDatabase.migrated()
        let bouncer = try PgBouncer(poolSize: 1)
        let dir = try TestEnvironment.scratchFolder("pooled")
        var environment = try TestPool.environment(dir: dir)
        environment["DATABASE_URL"] = bouncer.conninfo(database)
        environment["FCGI_LISTEN"] = "unix:\(dir)/fcgi.sock"
        let refused = try run(TestEnvironment.binary(), ["serve"], environment: environment, timeout: 30)
        #expect(refused.status != 0)
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/fcgi.sock"))
        #expect(refused.output.contains(
            "DATABASE_URL goes through a connection pooler, which cannot carry the change feed: set DATABASE_FEED_URL to a direct connection to PostgreSQL"),
            "\(refused.output)")
    }
}
