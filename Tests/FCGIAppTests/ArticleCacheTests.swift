@testable import FCGIApp
import Foundation
@testable import PG
@testable import Stores
import Testing

/// The serving threads keep the pages and articles they answered with; no answer may be older
/// than a change the worker made, and changes made elsewhere show within a second.
@Suite(.lane()) struct ArticleCacheTests {
    /// More requests than the stack's threads, so every thread's cache is asked.
    static let everyThread = 24

    fileprivate func names(_ stack: Stack, _ path: String, _ token: String) throws -> [[String]] {
        try (0..<Self.everyThread).map { _ in
            let response = try stack.get(path, headers: [("Authorization", "Bearer \(token)")])
            #expect(response.status == 200)
            return try JSONDecoder().decode([Article].self, from: response.body).map { "\($0.owner):\($0.name)" }
        }
    }

    private func send(_ stack: Stack, _ method: String, _ path: String, _ token: String, json: String? = nil) throws -> HTTPResponse {
        try stack.request(method, path, headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")],
                          body: json.map { Data($0.utf8) })
    }

    @Test func everyThreadSeesAChangeTheWorkerMadeAtOnce() throws {
        let stack = try Stack()
        try stack.database.connect().query("INSERT INTO users (username, email) VALUES ('rw', 'rw@example.com')")
        let token = TestPool.token(claims: TestPool.idClaims(email: "rw@example.com"))
        #expect(try names(stack, "/articles/", token) == Array(repeating: [], count: Self.everyThread))

        let created = try JSONDecoder().decode(Article.self, from: send(stack, "POST", "/articles/", token, json: #"{"name": "one"}"#).body)
        // No pause: the answer to the POST comes after every thread's cache was dropped.
        #expect(try names(stack, "/articles/", token) == Array(repeating: ["rw:one"], count: Self.everyThread))
        let single = "/articles/\(created.id)/"
        #expect(try (0..<Self.everyThread).map { _ in try send(stack, "GET", single, token).status } == Array(repeating: 200, count: Self.everyThread))

        #expect(try send(stack, "PATCH", single, token, json: #"{"name": "two"}"#).status == 200)
        #expect(try names(stack, "/articles/", token) == Array(repeating: ["rw:two"], count: Self.everyThread))
        let read = try (0..<Self.everyThread).map { _ in try JSONDecoder().decode(Article.self, from: send(stack, "GET", single, token).body).name }
        #expect(read == Array(repeating: "two", count: Self.everyThread))

        #expect(try send(stack, "DELETE", single, token).status == 204)
        #expect(try names(stack, "/articles/", token) == Array(repeating: [], count: Self.everyThread))
        #expect(try (0..<Self.everyThread).map { _ in try send(stack, "GET", single, token).status } == Array(repeating: 404, count: Self.everyThread))
    }

    @Test func changesFromPsqlShowWithinASecond() throws {
        let stack = try Stack()
        let db = try stack.database.connect()
        try db.query("INSERT INTO users (username, email) VALUES ('ps', 'ps@example.com')")
        try db.query("INSERT INTO articles (name, owner_id) SELECT 'first', id FROM users WHERE username = 'ps'")
        let token = TestPool.token(claims: TestPool.idClaims(email: "ps@example.com"))
        #expect(try names(stack, "/articles/", token) == Array(repeating: ["ps:first"], count: Self.everyThread))

        /// The time until every answer shows `expected`, after `change` as an administrator.
        func settle(_ expected: [String], after change: String) throws -> TimeInterval {
            let result = try run("/usr/bin/psql", ["-X", "-v", "ON_ERROR_STOP=1", try stack.database.adminURI(), "-c", change])
            try #require(result.status == 0, "\(result.output)")
            let changed = Date()
            while try names(stack, "/articles/", token).contains(where: { $0 != expected }), Date().timeIntervalSince(changed) < 2 {}
            return Date().timeIntervalSince(changed)
        }
        #expect(try settle(["ps:renamed"], after: "UPDATE articles SET name = 'renamed'") < 1)
        // The owner's username is part of each article.
        #expect(try settle(["pz:renamed"], after: "UPDATE users SET username = 'pz' WHERE username = 'ps'") < 1)
        #expect(try settle(["pz:renamed", "pz:second"], after: "INSERT INTO articles (name, owner_id) SELECT 'second', id FROM users") < 1)
        #expect(try settle([], after: "TRUNCATE articles") < 1)
    }
}

extension ArticleCacheTests {
    @Test func aChangeMadeWhileTheWorkerWasNotListeningIsNotMissed() throws {
        let stack = try Stack()
        let db = try stack.database.connect()
        try db.query("INSERT INTO users (username, email) VALUES ('gap', 'gap@example.com')")
        try db.query("INSERT INTO articles (name, owner_id) SELECT 'before', id FROM users")
        let token = TestPool.token(claims: TestPool.idClaims(email: "gap@example.com"))
        #expect(try names(stack, "/articles/", token) == Array(repeating: ["gap:before"], count: Self.everyThread))
        // The listening connection goes, and with it the notification of the change.
        let change = """
            SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'articles-fcgi changes' AND datname = current_database();
            UPDATE articles SET name = 'after';
            """
        let result = try run("/usr/bin/psql", ["-X", "-v", "ON_ERROR_STOP=1", try stack.database.adminURI(), "-c", change])
        try #require(result.status == 0, "\(result.output)")
        let changed = Date()
        while try names(stack, "/articles/", token).contains(where: { $0 != ["gap:after"] }), Date().timeIntervalSince(changed) < 3 {}
        #expect(Date().timeIntervalSince(changed) < 1)
        // Listening again after a second or so, and caching again: a later change is seen too.
        func listeners() throws -> Int {
            try db.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'articles-fcgi changes' AND datname = current_database()").first!.decode(Int.self, at: 0)
        }
        let reconnecting = Date()
        while try listeners() == 0, Date().timeIntervalSince(reconnecting) < 5 { Thread.sleep(forTimeInterval: 0.05) }
        #expect(try listeners() == 1)
        _ = try names(stack, "/articles/", token)
        try db.query("UPDATE articles SET name = 'later'")
        let later = Date()
        while try names(stack, "/articles/", token).contains(where: { $0 != ["gap:later"] }), Date().timeIntervalSince(later) < 3 {}
        #expect(Date().timeIntervalSince(later) < 1)
    }
}
