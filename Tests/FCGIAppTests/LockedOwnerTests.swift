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
}
