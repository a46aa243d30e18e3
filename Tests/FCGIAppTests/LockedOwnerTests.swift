import Foundation
@testable import PG
import Testing

/// One user's row held by another session (sql/admin/delete_user.sql, provisioning, a psql
/// `FOR UPDATE`) costs only that user's POSTs: the shared create statement skips it, and the
/// user's requests wait alone, within the lock bound. Alone: while the psql session holds its
/// transaction, no change feed on the cluster can connect (a new slot waits for it).
@Suite(.lane(.alone)) struct LockedOwnerTests {
    @Test func aLockedUserDelaysOnlyThatUsersPosts() throws {
        // As many threads as the worker's default, so each POST has one.
        let stack = try Stack(environment: ["FCGI_THREADS": "16"])
        let admin = try stack.database.connect()
        try admin.query("INSERT INTO users (username, email) VALUES ('alice', 'alice@example.com'), ('bob', 'bob@example.com')")
        let tokens = ["alice": TestPool.token(claims: TestPool.idClaims(email: "alice@example.com")),
                      "bob": TestPool.token(claims: TestPool.idClaims(email: "bob@example.com"))]
        // Both users' first POST binds their token, before the lock.
        for (name, token) in tokens {
            let first = try stack.request(
                "POST", "/articles/", headers: [("Authorization", token), ("Content-Type", "application/json")],
                body: Data(#"{"name": "\#(name) first"}"#.utf8))
            try #require(first.status == 201, "\(first.text)")
        }
        let psql = try stack.database.connect()
        try psql.query("BEGIN")
        try psql.query("SELECT 1 FROM users WHERE username = 'alice' FOR UPDATE")
        let locked = Date()

        let answers = Results()
        for name in ["alice", "bob"] {
            for n in 0..<4 {
                Thread {
                    let began = Date()
                    let response = try? stack.request(
                        "POST", "/articles/", headers: [("Authorization", tokens[name]!), ("Content-Type", "application/json")],
                        body: Data(#"{"name": "\#(name) \#(n)"}"#.utf8))
                    answers.add(response?.status ?? -1, "\(name) \(n) \(Date().timeIntervalSince(began)) \(response?.text ?? "")")
                }.start()
            }
        }
        try waitFor("bob's four answers", within: 5) { answers.all.filter { $0.body.hasPrefix("bob") }.count == 4 }
        for answer in answers.all where answer.body.hasPrefix("bob") {
            let took = Double(answer.body.split(separator: " ")[2]) ?? 99
            #expect(answer.status == 201 && took < 1, "\(answer.body)")
        }
        // Alice's wait for her row, each within the lock bound (2 s), while the lock is held for 7 s.
        try waitFor("alice's four answers", within: 5) { answers.all.count == 8 }
        for answer in answers.all where answer.body.hasPrefix("alice") {
            let took = Double(answer.body.split(separator: " ")[2]) ?? 99
            #expect(answer.status == 503 && took >= 1.9 && took < 3.5, "\(answer.body)")
            #expect(answer.body.hasSuffix(#"{"detail":"The database did not answer in time; try again later."}"#))
        }
        Thread.sleep(until: locked.addingTimeInterval(7))  // the row is held for 7 s: about time
        try psql.query("ROLLBACK")
        // Each answered POST stored once, nothing else.
        let stored = try admin.query("SELECT name FROM articles ORDER BY name").map { try $0.decode(String.self, at: 0) }
        #expect(stored == ["alice first", "bob 0", "bob 1", "bob 2", "bob 3", "bob first"])
        // Once free, alice writes again.
        let again = try stack.request(
            "POST", "/articles/", headers: [("Authorization", tokens["alice"]!), ("Content-Type", "application/json")],
            body: Data(#"{"name": "alice again"}"#.utf8))
        #expect(again.status == 201)
    }

    /// 150 of a locked user's POSTs at once on one loop: they hold at most four of its
    /// connections, the rest wait until their deadline and are answered 503 before any
    /// statement; another user's requests keep their usual latency, nginx answers nothing
    /// itself, and none of the locked user's requests is stored.
    @Test func aLockedUsersManyPostsStallNeitherTheLoopNorOthers() throws {
        let stack = try Stack(environment: ["FCGI_THREADS": "1", "LOG_LEVEL": "warning", "LOG_REQUESTS": "false"])
        let admin = try stack.database.connect()
        try admin.query("INSERT INTO users (username, email) VALUES ('stuck', 'stuck@example.com'), ('free', 'free@example.com')")
        let stuck = TestPool.token(claims: TestPool.idClaims(email: "stuck@example.com"))
        let free = TestPool.token(claims: TestPool.idClaims(email: "free@example.com"))
        @Sendable func post(_ token: String, _ name: String) throws -> HTTPResponse {
            try stack.request(
                "POST", "/articles/", headers: [("Authorization", token), ("Content-Type", "application/json")],
                body: Data(#"{"name": "\#(name)"}"#.utf8))
        }
        for (token, name) in [(stuck, "stuck first"), (free, "free first")] { try #require(try post(token, name).status == 201) }
        let psql = try stack.database.connect()
        try psql.query("BEGIN")
        try psql.query("SELECT 1 FROM users WHERE username = 'stuck' FOR UPDATE")

        let answers = Results()
        for n in 0..<150 {
            Thread {
                let response = try? post(stuck, "stuck \(n)")
                answers.add(response?.status ?? -1, response?.text ?? "no answer")
            }.start()
        }
        // While they wait: the other user's reads and writes, as usual.
        try waitFor("the loop to hold the stuck user's connections", within: 5) {
            try stack.metric("articles_fcgi_database_sessions").map { $0 >= 4 } == true
        }
        for n in 0..<5 {
            let began = Date()
            let read = try stack.get("/articles/?limit=1", headers: [("Authorization", free)])
            let readTook = Date().timeIntervalSince(began)
            #expect(read.status == 200 && readTook < 0.1, "GET took \(readTook) s: \(read.text)")
            let wrote = try post(free, "free \(n)")
            let writeTook = Date().timeIntervalSince(began) - readTook
            #expect(wrote.status == 201 && writeTook < 1, "POST took \(writeTook) s: \(wrote.text)")
        }
        try waitFor("the stuck user's 150 answers", within: 20) { answers.all.count == 150 }
        try psql.query("ROLLBACK")
        let statuses = Dictionary(grouping: answers.all, by: \.status).mapValues(\.count)
        #expect(Set(statuses.keys).isSubset(of: [201, 503]), "\(statuses)")
        let busy = answers.all.filter { $0.body == #"{"detail":"The database is busy; try again later."}"# }.count
        #expect(busy > 0, "\(statuses)")
        // What was answered 201 is stored, once; nothing answered 503 is (the lock was held
        // until every answer was in).
        let stored = try admin.query("SELECT count(*) FROM articles a JOIN users u ON u.id = a.owner_id WHERE u.username = 'stuck'")
            .first!.decode(Int.self, at: 0)
        #expect(stored == 1 + (statuses[201] ?? 0), "\(statuses)")
        #expect(try admin.query("SELECT count(*) FROM articles a JOIN users u ON u.id = a.owner_id WHERE u.username = 'free'")
            .first!.decode(Int.self, at: 0) == 6)
    }

}
