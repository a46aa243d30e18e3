@testable import FCGIApp
import Foundation
import Glibc
import Logging
@testable import PG
@testable import Stores
@testable import Support
import Synchronization
import Testing

// Kept whole (about 300 lines): every test here runs workers on one database through the same
// helpers (users with tokens, pairs of workers, waiting for the feed), kept private to them.

/// The change feed (logical decoding) and what the caches promise with it: an answer reflects
/// every write answered before the request, by any worker on the database; psql's changes show
/// on every thread at once; a feed that stops or falls behind is noticed, and caches are
/// bypassed meanwhile.
@Suite(.lane()) struct ChangeFeedTests {
    /// More requests than a stack's threads, so every thread's cache is asked.
    static let everyThread = 16

    struct User {
        let id: Int64
        let token: String
    }

    private func user(_ name: String, in database: TestDatabase, claims extra: [String: Any] = [:]) throws -> User {
        let db = try database.connect()
        let id = try db.query("INSERT INTO users (username, email) VALUES ($1, $2) RETURNING id", name, "\(name)@example.com")
            .first!.decode(Int64.self, at: 0)
        let claims = TestPool.idClaims(email: "\(name)@example.com").merging(extra) { $1 }
        return User(id: id, token: TestPool.token(claims: claims))
    }

    private func send(
        _ stack: Stack, _ method: String, _ path: String, _ token: String, json: String? = nil
    ) throws -> HTTPResponse {
        try stack.request(
            method, path, headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")],
            body: json.map { Data($0.utf8) })
    }

    private func list(_ stack: Stack, _ token: String, _ query: String = "") throws -> [Article] {
        let response = try send(stack, "GET", "/articles/\(query)", token)
        try #require(response.status == 200, "\(response.text)")
        return try JSONDecoder().decode([Article].self, from: response.body)
    }

    private func metric(_ stack: Stack, _ name: String) throws -> Double? { try stack.metric(name) }

    /// The replication backends that stream to `stack`'s worker (two while a frozen one lingers).
    private func feedBackends(_ stack: Stack) throws -> [Int32] {
        let db = try stack.database.connect()
        let rows = try db.query(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name LIKE $1 AND active", "articles_fcgi_\(stack.worker.pid)_%")
        return try rows.map { try $0.decode(Int32.self, at: 0) }
    }

    /// The backend of `stack`'s feed, once the feed streams from it.
    private func streamingFeedBackend(_ stack: Stack) throws -> Int32 {
        var backend: Int32?
        try waitFor("the feed", within: 10) {
            let backends = try feedBackends(stack)
            backend = backends.first
            return try backends.count == 1 && metric(stack, "articles_fcgi_change_feed_up") == 1
        }
        return backend!
    }

    @Test(.lane(.alone)) func aWriteAnsweredByOneWorkerIsReadByTheOtherAtOnce() throws {
        let database = try TestDatabase.migrated()
        let stacks = [try Stack(database: database), try Stack(database: database)]
        let writer = try user("rw", in: database)
        let stop = Atomic<Bool>(false)
        // Readers keep every thread's caches of both workers full of the pages and articles the
        // pairs change.
        let readers = try (0..<2).map { index in
            try PosixThread {
                while !stop.load(ordering: .relaxed) {
                    let stack = stacks[index]
                    if let page = try? list(stack, writer.token), let first = page.first {
                        _ = try? send(stack, "GET", "/articles/\(first.id)/", writer.token)
                    }
                }
            }
        }
        defer {
            stop.store(true, ordering: .relaxed)
            readers.forEach { $0.join() }
        }
        let staleAnswers = Atomic<Int>(0)
        let pairs = Atomic<Int>(0)
        let failures = Mutex<[String]>([])
        @Sendable func stale(_ what: String) {
            staleAnswers.add(1, ordering: .relaxed)
            failures.withLock { $0.append(what) }
        }
        // Four clients, each writing through one worker and reading through the other: POST then
        // list, PATCH then get, DELETE then get or list; 2,000 pairs in all.
        let clients = try (0..<4).map { client in
            try PosixThread {
                var cycle = 0
                while pairs.load(ordering: .relaxed) < 2_000 {
                    cycle += 1
                    let (write, read) = (stacks[(client + cycle) % 2], stacks[(client + cycle + 1) % 2])
                    do {
                        let posted = try send(write, "POST", "/articles/", writer.token, json: #"{"name": "c\#(client)-\#(cycle)"}"#)
                        guard posted.status == 201 else { throw HTTPClient.Failure(description: "POST: \(posted.status)") }
                        let id = try JSONDecoder().decode(Article.self, from: posted.body).id
                        if try !list(read, writer.token).contains(where: { $0.id == id }) { stale("list without POSTed \(id)") }
                        pairs.add(1, ordering: .relaxed)

                        let name = "r\(client)-\(cycle)"
                        let patched = try send(write, "PATCH", "/articles/\(id)/", writer.token, json: #"{"name": "\#(name)"}"#)
                        guard patched.status == 200 else { throw HTTPClient.Failure(description: "PATCH: \(patched.status)") }
                        let got = try send(read, "GET", "/articles/\(id)/", writer.token)
                        if try got.status != 200 || JSONDecoder().decode(Article.self, from: got.body).name != name {
                            stale("GET \(id) after PATCH: \(got.status) \(got.text)")
                        }
                        pairs.add(1, ordering: .relaxed)

                        let deleted = try send(write, "DELETE", "/articles/\(id)/", writer.token)
                        guard deleted.status == 204 else { throw HTTPClient.Failure(description: "DELETE: \(deleted.status)") }
                        if cycle % 2 == 0 {
                            let gone = try send(read, "GET", "/articles/\(id)/", writer.token)
                            if gone.status != 404 { stale("GET \(id) after DELETE: \(gone.status)") }
                        } else if try list(read, writer.token).contains(where: { $0.id == id }) {
                            stale("list with DELETEd \(id)")
                        }
                        pairs.add(1, ordering: .relaxed)
                    } catch {
                        failures.withLock { $0.append("\(error)") }
                        return
                    }
                }
            }
        }
        clients.forEach { $0.join() }
        #expect(failures.withLock { $0 } == [])
        #expect(pairs.load(ordering: .relaxed) >= 2_000)
        #expect(staleAnswers.load(ordering: .relaxed) == 0)
        // Both workers followed the feed (so their caches were in play), and still do.
        for stack in stacks { try stack.waitForChangeFeed(within: 10) }
    }

    @Test func psqlChangesReachEveryThreadOfTwoWorkersWithinASecond() throws {
        let database = try TestDatabase.migrated()
        let stacks = [try Stack(database: database), try Stack(database: database)]
        let owner = try user("ps", in: database)
        let db = try database.connect()
        try db.query("INSERT INTO articles (name, owner_id) VALUES ('first', $1)", owner.id)

        /// Every thread's answer on both workers, as owner:name.
        func answers() throws -> [[String]] {
            try stacks.flatMap { stack in
                try (0..<Self.everyThread).map { _ in try list(stack, owner.token).map { "\($0.owner):\($0.name)" } }
            }
        }
        let all = Self.everyThread * stacks.count
        #expect(try answers() == Array(repeating: ["ps:first"], count: all))

        func settle(_ expected: [String], after change: String) throws -> TimeInterval {
            let result = try run("/usr/bin/psql", ["-X", "-v", "ON_ERROR_STOP=1", try database.adminURI(), "-c", change])
            try #require(result.status == 0, "\(result.output)")
            let changed = Date()
            while try answers() != Array(repeating: expected, count: all), Date().timeIntervalSince(changed) < 2 {}
            return Date().timeIntervalSince(changed)
        }
        #expect(try settle(["ps:renamed"], after: "UPDATE articles SET name = 'renamed'") < 1)
        #expect(try settle(["pz:renamed"], after: "UPDATE users SET username = 'pz' WHERE username = 'ps'") < 1)
        #expect(try settle(["pz:renamed", "pz:second"], after: "INSERT INTO articles (name, owner_id) SELECT 'second', id FROM users") < 1)
        #expect(try settle(["pz:second"], after: "DELETE FROM articles WHERE name = 'renamed'") < 1)
        #expect(try settle([], after: "TRUNCATE articles") < 1)

        // A deactivation refuses the user's next request on every thread of both workers.
        let result = try run(
            "/usr/bin/psql", ["-X", "-v", "ON_ERROR_STOP=1", try database.adminURI(), "-v", "username=pz",
                              "-f", TestEnvironment.path("sql/admin/deactivate_user.sql")])
        try #require(result.status == 0, "\(result.output)")
        let statuses = try stacks.flatMap { stack in try (0..<Self.everyThread).map { _ in try send(stack, "GET", "/articles/", owner.token).status } }
        #expect(statuses == Array(repeating: 401, count: all))
    }

    @Test(.lane(.long)) func aFrozenFeedIsNoticedAndCachesAreBypassedMeanwhile() throws {
        let stack = try Stack()
        let owner = try user("fz", in: stack.database)
        let db = try stack.database.connect()
        let id = try db.query("INSERT INTO articles (name, owner_id) VALUES ('before', $1) RETURNING id", owner.id)
            .first!.decode(Int64.self, at: 0)
        let backend = try streamingFeedBackend(stack)
        // Warm every thread's caches.
        for _ in 0..<Self.everyThread { #expect(try list(stack, owner.token).map(\.name) == ["before"]) }

        // The feed's backend stops answering, its connection open: a change made meanwhile is
        // answered at once (the caches are bypassed, as the feed is behind the WAL), ...
        #expect(kill(backend, SIGSTOP) == 0)
        defer { kill(backend, SIGCONT) }
        try db.query("UPDATE articles SET name = 'during' WHERE id = $1", id)
        for _ in 0..<Self.everyThread { #expect(try list(stack, owner.token).map(\.name) == ["during"]) }
        // ... and a deactivation refuses the user's next request.
        try db.query("UPDATE users SET is_active = false WHERE id = $1", owner.id)
        #expect(try send(stack, "GET", "/articles/\(id)/", owner.token).status == 401)
        try db.query("UPDATE users SET is_active = true WHERE id = $1", owner.id)
        #expect(try send(stack, "GET", "/articles/\(id)/", owner.token).status == 200)
        // Within a few seconds the silence counts as down, and the worker says so.
        let frozen = Date()
        try waitFor("the feed's loss", within: 6) { try metric(stack, "articles_fcgi_change_feed_losses_total") == 1 }
        #expect(Date().timeIntervalSince(frozen) < 5)
        try waitFor("the log line", within: 2) { stack.worker.output.contains("not following database changes") }
        // It connects again with a new backend (the frozen one still holds its own slot), and the
        // caches serve current answers again.
        try waitFor("a new feed", within: 10) {
            try feedBackends(stack).contains { $0 != backend } && metric(stack, "articles_fcgi_change_feed_up") == 1
        }
        try db.query("UPDATE articles SET name = 'after' WHERE id = $1", id)
        for _ in 0..<Self.everyThread { #expect(try list(stack, owner.token).map(\.name) == ["after"]) }
    }

    @Test func aLateFeedIsLoggedAndItsLagExported() throws {
        let stack = try Stack()
        let owner = try user("lt", in: stack.database)
        let backend = try streamingFeedBackend(stack)
        // Stopped for longer than the lag bound (1 s) and shorter than the silence bound (3 s),
        // with a change committed meanwhile: it arrives late.
        #expect(kill(backend, SIGSTOP) == 0)
        try stack.database.connect().query("INSERT INTO articles (name, owner_id) VALUES ('late', $1)", owner.id)
        Thread.sleep(forTimeInterval: 1.5)  // the delay itself is what is measured
        #expect(kill(backend, SIGCONT) == 0)
        try waitFor("the late change", within: 3) { (try metric(stack, "articles_fcgi_change_feed_lag_seconds") ?? 0) >= 1.4 }
        try waitFor("the log line", within: 3) { stack.worker.output.contains("database changes arrive late") }
        #expect(try metric(stack, "articles_fcgi_change_feed_losses_total") == 0)
        #expect(try list(stack, owner.token).map(\.name) == ["late"])
    }

    @Test(.lane(.alone)) func aRevocationCommittedWhileTheFeedIsBusyIsAppliedWithinASecond() throws {
        let stack = try Stack()
        let owner = try user("rv", in: stack.database, claims: ["origin_jti": "session-busy"])
        #expect(try send(stack, "GET", "/articles/", owner.token).status == 200)
        // A bulk load keeps the feed decoding for a while; the revocation commits right after it.
        let result = try run("/usr/bin/psql", [
            "-X", "-v", "ON_ERROR_STOP=1", try stack.database.adminURI(), "-c",
            "INSERT INTO articles (name, owner_id) SELECT 'bulk ' || g, \(owner.id) FROM generate_series(1, 200000) g",
            "-c", "INSERT INTO revoked_sessions (origin_jti) VALUES ('session-busy')",
        ])
        try #require(result.status == 0, "\(result.output)")
        let revoked = Date()
        try waitFor("the revocation", within: 3) { try send(stack, "GET", "/articles/?limit=1", owner.token).status == 401 }
        #expect(Date().timeIntervalSince(revoked) < 1)
        #expect(try send(stack, "GET", "/articles/?limit=1", owner.token).status == 401)
    }

    /// `stop` ends the replication session, and the temporary slot with it, within a second
    /// (the in-process tests stop their feeds so; each walsender left would read every
    /// database's WAL until the run ends).
    @Test func aStoppedFeedLeavesNoSessionBehind() throws {
        let database = try TestDatabase.migrated()
        let feed = ChangeFeed(handlers: FeedHandlers(loadSessions: { _ in }, applySessions: { _ in }))
        try feed.start(conninfo: database.conninfo(user: "articles_feed"), logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
        let db = try database.connect()
        func slots() throws -> Int {
            try db.query("SELECT count(*) FROM pg_replication_slots WHERE database = $1", database.name).first!.decode(Int.self, at: 0)
        }
        try waitFor("the feed", within: 10) { try feed.isUp && slots() == 1 }
        feed.stop()
        let stopped = Date()
        try waitFor("the session to end", within: 3) { try !feed.isUp && slots() == 0 }
        #expect(Date().timeIntervalSince(stopped) < 1)
    }

    @Test func aPostChecksItsUserInTheDatabase() throws {
        let stack = try Stack()
        let writer = try user("pw", in: stack.database, claims: ["origin_jti": "session-pw"])
        let db = try stack.database.connect()
        func post() throws -> HTTPResponse { try send(stack, "POST", "/articles/", writer.token, json: #"{"name": "n"}"#) }
        func count() throws -> Int { try db.query("SELECT count(*) FROM articles").first!.decode(Int.self, at: 0) }
        #expect(try post().status == 201, "the first POST binds the user by email")
        #expect(try db.query("SELECT cognito_sub IS NOT NULL FROM users WHERE id = $1", writer.id).first!.decode(Bool.self, at: 0))
        #expect(try post().status == 201)
        try db.query("UPDATE users SET is_active = false WHERE id = $1", writer.id)
        let inactive = try post()
        #expect(inactive.status == 401 && inactive.json == ["detail": "User is inactive."])
        try db.query("UPDATE users SET is_active = true WHERE id = $1", writer.id)
        try db.query("INSERT INTO revoked_sessions (origin_jti) VALUES ('session-pw')")
        let revoked = try post()
        #expect(revoked.status == 401 && revoked.json == ["detail": "Token has been revoked."])
        try db.query("DELETE FROM revoked_sessions")
        try db.query("UPDATE users SET tokens_valid_after = now() + interval '1 second' WHERE id = $1", writer.id)
        let signedOut = try post()
        #expect(signedOut.status == 401 && signedOut.json == ["detail": "Token has been revoked."])
        // A bad body from a refused caller is refused as a caller first.
        let badBody = try send(stack, "POST", "/articles/", writer.token, json: #"{"name": ""}"#)
        #expect(badBody.status == 401)
        try db.query("UPDATE users SET tokens_valid_after = NULL WHERE id = $1", writer.id)
        let blank = try send(stack, "POST", "/articles/", writer.token, json: #"{"name": ""}"#)
        #expect(blank.status == 400)
        #expect(try JSONSerialization.jsonObject(with: blank.body) as? [String: [String]] == ["name": ["This field may not be blank."]])
        #expect(try count() == 2)
    }

}
