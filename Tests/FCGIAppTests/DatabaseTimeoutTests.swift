import Foundation
@testable import PG
import Testing

/// Every database wait is bounded: a request stuck behind a lock gets 503 within the bound and
/// the other threads go on.
@Suite(.lane()) struct DatabaseTimeoutTests {
    @Test func aLockedArticleIs503WithinTheBoundWhileOthersAreServed() throws {
        let stack = try Stack(environment: ["DATABASE_LOCK_TIMEOUT_SECONDS": "1", "DATABASE_STATEMENT_TIMEOUT_SECONDS": "3"])
        let admin = try stack.database.connect()
        try admin.query("INSERT INTO users (username, email) VALUES ('locked', 'locked@example.com')")
        let ids = try admin.query(
            "INSERT INTO articles (name, owner_id) SELECT n, id FROM users, (VALUES ('held'), ('free')) v(n) RETURNING id"
        ).map { try $0.decode(Int64.self, at: 0) }
        let token = TestPool.token(claims: TestPool.idClaims(email: "locked@example.com"))
        @Sendable func patch() throws -> (HTTPResponse, TimeInterval) {
            let began = Date()
            let response = try stack.request(
                "PATCH", "/articles/\(ids[0])/", headers: [("Authorization", token), ("Content-Type", "application/json")],
                body: Data(#"{"name": "renamed"}"#.utf8))
            return (response, Date().timeIntervalSince(began))
        }

        // A psql session sits inside BEGIN holding the article's row lock.
        let psql = try stack.database.connect()
        try psql.query("BEGIN")
        try psql.query("SELECT 1 FROM articles WHERE id = $1 FOR UPDATE", ids[0])
        let blocked = Results()
        let writer = Thread {
            guard let (response, took) = try? patch() else { return blocked.add(-1, "") }
            blocked.add(response.status, "\(took) \(response.text)")
        }
        writer.start()
        // While the PATCH waits for the lock, another article is served at once.
        try stack.database.waitForALockWait()
        let began = Date()
        let other = try stack.get("/articles/\(ids[1])/", headers: [("Authorization", token)])
        #expect(other.status == 200 && other.text.contains(#""name":"free""#))
        #expect(Date().timeIntervalSince(began) < 0.5)
        let deadline = Date().addingTimeInterval(5)
        while blocked.all.isEmpty, Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        let answer = try #require(blocked.all.first)
        let took = Double(answer.body.prefix { $0 != " " }) ?? -1
        #expect(answer.status == 503)
        #expect(answer.body.hasSuffix(#" {"detail":"The database did not answer in time; try again later."}"#))
        #expect(took >= 0.9 && took < 2, "answered after \(took) s")
        let unchanged = try admin.query("SELECT name FROM articles WHERE id = $1", ids[0])
        #expect(try unchanged.first!.decode(String.self, at: 0) == "held")

        try psql.query("ROLLBACK")
        let (renamed, _) = try patch()
        #expect(renamed.status == 200)
        #expect(renamed.text.contains(#""name":"renamed""#))
        let stored = try admin.query("SELECT name FROM articles WHERE id = $1", ids[0])
        #expect(try stored.first!.decode(String.self, at: 0) == "renamed")
    }

    /// Serving is bounded by the database's timeouts, not by the request timeout (5 s, which
    /// bounds receiving a request and sending its answer): writes that wait 7 s for a lock are
    /// answered with what they did. Alone: while the psql session holds its transaction, no
    /// change feed on the cluster can connect (a new slot waits for the transactions running).
    @Test(.lane(.alone)) func writesThatWaitLongerThanTheRequestTimeoutAreAnsweredWithTheirResult() throws {
        let stack = try Stack(environment: ["DATABASE_LOCK_TIMEOUT_SECONDS": "10"])
        let admin = try stack.database.connect()
        try admin.query("INSERT INTO users (username, email) VALUES ('patient', 'patient@example.com')")
        let id = try admin.query("INSERT INTO articles (name, owner_id) SELECT 'held', id FROM users RETURNING id").first!
            .decode(Int64.self, at: 0)
        let token = TestPool.token(claims: TestPool.idClaims(email: "patient@example.com"))
        // A psql session holds the article's row lock and the table in SHARE mode (which every
        // insert waits for) for 7 s.
        let psql = try stack.database.connect()
        try psql.query("BEGIN")
        try psql.query("SELECT 1 FROM articles WHERE id = $1 FOR UPDATE", id)
        try psql.query("LOCK TABLE articles IN SHARE MODE")
        let locked = Date()
        let answers = Results()
        let writes = [("PATCH", "/articles/\(id)/", #"{"name": "renamed"}"#), ("POST", "/articles/", #"{"name": "late"}"#)]
        for (method, path, body) in writes {
            Thread {
                let response = try? stack.request(
                    method, path, headers: [("Authorization", token), ("Content-Type", "application/json")], body: Data(body.utf8))
                answers.add(response?.status ?? -1, "\(method) \(Date().timeIntervalSince(locked)) \(response?.text ?? "")")
            }.start()
        }
        // Client sessions only: a change feed connecting meanwhile waits for the psql session too.
        try waitFor("both writes to wait for the lock", within: 5) {
            try admin.query(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND backend_type = 'client backend' AND datname = $1",
                stack.database.name)
                .first!.decode(Int64.self, at: 0) == 2
        }
        Thread.sleep(until: locked.addingTimeInterval(7))  // the lock is held for 7 s: about time
        try psql.query("ROLLBACK")
        try waitFor("both answers", within: 5) { answers.all.count == 2 }
        for answer in answers.all {
            let fields = answer.body.split(separator: " ", maxSplits: 2)
            #expect(answer.status == (fields[0] == "PATCH" ? 200 : 201), "\(answer.body)")
            #expect((Double(fields[1]) ?? 0) >= 6.9, "\(answer.body)")
        }
        #expect(try admin.query("SELECT name FROM articles ORDER BY id").map { try $0.decode(String.self, at: 0) } == ["renamed", "late"])
    }
}
