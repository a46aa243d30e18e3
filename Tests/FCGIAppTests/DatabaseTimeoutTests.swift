import Foundation
import PG
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
}
