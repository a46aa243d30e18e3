@testable import FCGIApp
import Foundation
@testable import PG
import Testing

/// sql/admin/revoke_session.sql and revoke_tokens.sql: refusals within a second, through every
/// serving thread, and after a restart.
@Suite(.lane()) struct RevocationTests {
    private func psql(_ database: TestDatabase, _ script: String, _ variables: [String: String]) throws {
        let result = try database.admin(script, variables)
        try #require(result.status == 0, "\(result.output)")
    }

    /// The statuses of enough requests that every thread answers one.
    private func statuses(_ stack: Stack, _ token: String) throws -> Set<Int> {
        Set(try (0..<12).map { _ in try stack.get("/articles/", headers: [("Authorization", "Bearer \(token)")]).status })
    }

    /// Waits up to `limit` seconds for every answer to be `status`; how long it took.
    private func settle(_ stack: Stack, _ token: String, to status: Int, within limit: TimeInterval = 3) throws -> TimeInterval {
        let started = Date()
        while try statuses(stack, token) != [status], Date().timeIntervalSince(started) < limit {}
        return Date().timeIntervalSince(started)
    }

    @Test func revokedSessionsAndTokensAreRefusedWithinASecondAndAfterARestart() throws {
        let database = try TestDatabase.migrated()
        try database.connect().query("INSERT INTO users (username, email) VALUES ('rev', 'rev@example.com')")
        let sub = UUID().uuidString.lowercased()
        func token(session: String, issuedAt: Int = Int(Date().timeIntervalSince1970)) -> String {
            var claims = TestPool.idClaims(sub: sub, email: "rev@example.com", now: issuedAt)
            claims["origin_jti"] = session
            return TestPool.token(claims: claims)
        }
        let first = token(session: "session-a"), second = token(session: "session-b")
        var stack = try Stack(database: database)
        #expect(try statuses(stack, first) == [200])
        #expect(try statuses(stack, second) == [200])

        try psql(database, "revoke_session.sql", ["origin_jti": "session-a"])
        #expect(try settle(stack, first, to: 401) < 1)
        let refused = try stack.get("/articles/", headers: [("Authorization", "Bearer \(first)")])
        #expect(refused.json == ["detail": "Token has been revoked."])
        #expect(try statuses(stack, second) == [200], "another session of the same user is not touched")

        try psql(database, "revoke_tokens.sql", ["username": "rev"])
        #expect(try settle(stack, second, to: 401) < 1)
        // Minted in the second of the revocation: refused too. A later sign-in works.
        let revokedAt = try database.connect().query("SELECT floor(extract(epoch FROM tokens_valid_after))::int8 FROM users")
            .first!.decode(Int64.self, at: 0)
        #expect(try statuses(stack, token(session: "session-c", issuedAt: Int(revokedAt))) == [401])
        // Into the next whole second: tokens carry whole seconds, so the test is about time.
        Thread.sleep(until: Date(timeIntervalSince1970: TimeInterval(revokedAt) + 1.05))
        // A refresh after the revocation: a new iat, the revoked sign-in's auth_time. Refused.
        var refreshed = TestPool.idClaims(sub: sub, email: "rev@example.com")
        refreshed["origin_jti"] = "session-b"
        refreshed["auth_time"] = Int(revokedAt) - 30
        #expect(try statuses(stack, TestPool.token(claims: refreshed)) == [401])
        let later = token(session: "session-d")
        #expect(try statuses(stack, later) == [200])

        // A new worker on the same database refuses the same tokens.
        stack = try Stack(database: database)
        #expect(try statuses(stack, first) == [401])
        #expect(try statuses(stack, second) == [401])
        #expect(try statuses(stack, later) == [200])
    }

    @Test func theScriptsSayWhatIsMissing() throws {
        let database = try TestDatabase.migrated()
        let noJTI = try run("/usr/bin/psql", ["-X", try database.adminURI(), "-f", TestEnvironment.path("sql/admin/revoke_session.sql")])
        #expect(noJTI.status != 0 && noJTI.output.contains("ERROR:  an origin_jti is required"))
        let nobody = try run("/usr/bin/psql", [
            "-X", try database.adminURI(), "-v", "username=nobody", "-f", TestEnvironment.path("sql/admin/revoke_tokens.sql"),
        ])
        #expect(nobody.status != 0 && nobody.output.contains(#"ERROR:  no user named "nobody""#))
    }

    /// A read that looks its user up honours the database's word on the session, even when the
    /// worker's copy of the revoked sessions lacks it (as a feed that missed a commit would
    /// leave it), and keeps that user out of its cache.
    @Test func aLookupHonoursARevocationTheFeedDidNotBring() throws {
        let stack = try InProcess()
        try stack.database.connect().query("INSERT INTO users (username, email) VALUES ('missed', 'missed@example.com')")
        var claims = TestPool.idClaims(email: "missed@example.com")
        claims["origin_jti"] = "session-missed"
        let token = TestPool.token(claims: claims)
        try waitFor("the feed", within: 10) { stack.services.changes.isUp }
        try stack.database.connect().query("INSERT INTO revoked_sessions (origin_jti) VALUES ('session-missed')")
        try waitFor("the feed to bring the revocation", within: 5) {
            try stack.get("/articles/", headers: [("Authorization", token)]).status == 401
        }
        stack.services.revoked.replace(with: [])
        for _ in 0..<3 {
            let response = try stack.get("/articles/", headers: [("Authorization", token)])
            #expect(response.status == 401 && response.json == ["detail": "Token has been revoked."], "\(response.text)")
        }
    }
}
