import Foundation
@testable import PG
import Testing

/// A commit whose record precedes the change feed's new slot but that other sessions cannot see
/// yet (here: waiting for a synchronous standby, which scripts/test names and never starts) is
/// neither streamed to the feed nor visible to a fresh snapshot: the feed loads what it starts
/// from in the slot's own snapshot, and answers read in a snapshot that hides such a commit are
/// not kept. Alone: while the commit waits, every new slot on the cluster waits for it.
@Suite(.lane(.alone)) struct FeedRestartTests {
    @Test func aRevocationAndADeactivationCommittedWhileTheFeedReconnectsAreRefusedOnceVisible() throws {
        let stack = try Stack()
        let database = stack.database
        // Another worker's feed on the database, as on any deployment of several workers: a
        // new slot may then start from the snapshot that feed saved, without waiting for the
        // transactions running at that moment.
        let other = try Stack(database: database)
        let admin = try database.connect()
        try admin.query("INSERT INTO users (username, email) VALUES ('revoked', 'revoked@example.com'), ('deactivated', 'deactivated@example.com')")
        let article = try admin.query("INSERT INTO articles (name, owner_id) SELECT 'seen', id FROM users WHERE username = 'revoked' RETURNING id")
            .first!.decode(Int64.self, at: 0)
        var revokedClaims = TestPool.idClaims(email: "revoked@example.com")
        revokedClaims["origin_jti"] = "session-to-revoke"
        let tokens = [TestPool.token(claims: revokedClaims), TestPool.token(claims: TestPool.idClaims(email: "deactivated@example.com"))]
        /// Each token's answers on every route of both workers, `requests` times each (more than a
        /// worker's threads).
        func statuses(_ requests: Int, writes: Bool = true) throws -> [Int] {
            try [stack, other].flatMap { stack in try tokens.flatMap { token in
                try (0..<requests).flatMap { _ in
                    let reads = [
                        try stack.get("/articles/", headers: [("Authorization", token)]).status,
                        try stack.get("/articles/\(article)/", headers: [("Authorization", token)]).status,
                    ]
                    guard writes else { return reads }
                    return reads + [
                        try stack.request(
                            "POST", "/articles/", headers: [("Authorization", token), ("Content-Type", "application/json")],
                            body: Data(#"{"name": "x"}"#.utf8)).status
                    ]
                }
            } }
        }
        func feedBackend() throws -> Int32? {
            try admin.query(
                "SELECT active_pid FROM pg_replication_slots WHERE slot_name LIKE $1 AND active", "articles_fcgi_\(stack.worker.pid)_%"
            ).first?.decode(Int32.self, at: 0)
        }
        try waitFor("the feed", within: 10) { try feedBackend() != nil }
        let old = try #require(try feedBackend())
        // Both tokens bind their users, and every thread of both workers reads them.
        #expect(try statuses(8, writes: false) == Array(repeating: 200, count: 64))

        // The feed's session ends; while the worker connects again, a session that waits for the
        // standby commits the revocation and the deactivation.
        try admin.query("SELECT pg_terminate_backend($1)", old)
        let committed = Results()
        Thread {
            do {
                let writer = try database.connect()
                try writer.query("SET synchronous_commit = on")
                try writer.query("BEGIN")
                try writer.query("INSERT INTO revoked_sessions (origin_jti) VALUES ('session-to-revoke')")
                try writer.query("UPDATE users SET is_active = false WHERE username = 'deactivated'")
                try writer.query("COMMIT")
                committed.add(0, "")
            } catch {
                committed.add(-1, "\(error)")
            }
        }.start()
        try waitFor("the commit to wait for the standby", within: 5) {
            try admin.query("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND datname = $1", database.name)
                .first!.decode(Int.self, at: 0) == 1
        }
        try waitFor("the worker's feed to connect again", within: 5) {
            try admin.query(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender' AND application_name = 'articles-fcgi changes' AND datname = $1 AND pid <> $2",
                database.name, old
            ).first!.decode(Int.self, at: 0) == 1
        }
        // Meanwhile every thread reads both users (the database shows neither change yet).
        _ = try statuses(8, writes: false)

        // Released: the commit is visible to every session, and both users are refused on every
        // route within a second.
        try admin.query("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND datname = $1", database.name)
        try waitFor("the commit", within: 5) { !committed.all.isEmpty }
        #expect(committed.all.first?.status == 0, "\(committed.all)")
        try waitFor("both refused on every route", within: 1) { try statuses(4) == Array(repeating: 401, count: 48) }
        // And still once the feed follows again.
        try waitFor("the feed", within: 10) { try feedBackend() != nil }
        #expect(try statuses(8) == Array(repeating: 401, count: 96))
        #expect(try admin.query("SELECT count(*) FROM articles WHERE name = 'x'").first!.decode(Int.self, at: 0) == 0)
    }
}
