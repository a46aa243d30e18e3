@testable import FCGIApp
import Foundation
import Testing

/// What only the whole stack shows: nginx's own answers and the worker's log.
@Suite(.lane()) struct TokenEndToEndTests {
    static let stack = Result { try Stack() }
    let stack: Stack
    init() throws { stack = try Self.stack.get() }

    @Test func twoAuthorizationHeadersAreNginxsJSON400() throws {
        // A token that alone would be taken: nginx, not the worker, refuses the pair.
        try stack.database.connect().query("INSERT INTO users (username, email) VALUES ('twice', 'twice@example.com')")
        let token = TestPool.token(claims: TestPool.idClaims(email: "twice@example.com"))
        #expect(try stack.get("/articles/", headers: [("Authorization", token)]).status == 200)
        let response = try stack.get("/articles/", headers: [("Authorization", "Bearer \(token)"), ("Authorization", "Bearer \(token)")])
        #expect(response.status == 400)
        #expect(response.json == ["detail": "Bad request."])
    }

    @Test func aRefusedTokenNeverReachesTheLogs() throws {
        let token = TestPool.token(claims: TestPool.idClaims(email: "nobody-\(UUID())@example.com"))
        _ = try stack.get("/articles/", headers: [("Authorization", token)])
        _ = try stack.get("/articles/", headers: [("Authorization", String(token.dropLast(4)))])
        let parts = token.split(separator: ".")
        #expect(!stack.worker.output.contains(String(parts[1])))
        #expect(!stack.worker.output.contains(String(parts[2])))
    }
}
