@testable import FCGIApp
import Foundation
import Testing

/// The worker threads cache users by `sub`; changes made with psql reach every thread at once.
@Suite(.lane()) struct UserCacheTests {
    @Test func deactivationReactivationAndDeletionTakeEffectAtOnce() throws {
        let stack = try Stack()
        let db = try stack.database.connect()
        try db.query("INSERT INTO users (username, email) VALUES ('cached', 'cached@example.com')")
        let token = TestPool.token(claims: TestPool.idClaims(email: "cached@example.com"))
        func statuses() throws -> [Int] {
            // More requests than threads, so every thread's cache is asked.
            try (0..<12).map { _ in try stack.get("/articles/", headers: [("Authorization", token)]).status }
        }
        func psql(_ script: String, _ variables: [String: String]) throws {
            let result = try stack.database.admin(script, variables)
            try #require(result.status == 0, "\(result.output)")
        }
        /// The statuses of requests made half a second after the change (well within a second).
        func after(_ change: () throws -> Void) throws -> [Int] {
            try change()
            Thread.sleep(forTimeInterval: 0.5)
            return try statuses()
        }
        #expect(try statuses() == Array(repeating: 200, count: 12))
        #expect(try after { try psql("deactivate_user.sql", ["username": "cached"]) } == Array(repeating: 401, count: 12))
        #expect(try after { try psql("reactivate_user.sql", ["username": "cached"]) } == Array(repeating: 200, count: 12))
        #expect(try after { try psql("delete_user.sql", ["username": "cached"]) } == Array(repeating: 401, count: 12))
        let refused = try stack.get("/articles/", headers: [("Authorization", token)])
        #expect(refused.json == ["detail": "No user matches this token."])
    }
}
