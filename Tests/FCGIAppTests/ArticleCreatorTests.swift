@testable import Auth
@testable import FCGIApp
import Foundation
@testable import Observability
@testable import PG
@testable import Stores
import Testing

/// POSTs that arrive together share one statement (`ArticleCreator`), in process against a
/// real database: each request still gets its own answer, also when the shared statement fails.
@Suite(.lane()) struct ArticleCreatorTests {
    private struct Setup {
        let database: TestDatabase
        let metrics = Metrics()
        let creator: ArticleCreator
        /// The serving loop the creates run on, as one loop's requests do.
        let loop: TestLoop
        /// Holds a lock every create statement waits for, until `release()`.
        let blocker: Connection

        init() throws {
            database = try TestDatabase.migrated()
            creator = ArticleCreator(metrics: metrics)
            loop = try TestLoop()
            let admin = try database.connect()
            try admin.query(
                """
                INSERT INTO users (username, email, cognito_sub, is_active) VALUES
                  ('ann', 'ann@example.com', 'sub-ann', true), ('bob', 'bob@example.com', 'sub-bob', true),
                  ('cid', 'cid@example.com', 'sub-cid', false)
                """)
            blocker = try database.connect()
            try blocker.query("BEGIN")
            try blocker.query("LOCK TABLE revoked_sessions IN ACCESS EXCLUSIVE MODE")
        }

        func release() throws { try blocker.query("ROLLBACK") }

        func metric(_ name: String) -> Double? {
            let text = String(decoding: metrics.exposition(), as: UTF8.self)
            return text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
        }

        func claims(_ sub: String) -> Claims {
            Claims(
                sub: sub, tokenUse: .id, email: nil, emailVerified: true, username: nil, groups: [],
                expiresAt: Date().timeIntervalSince1970 + 600, issuedAt: Date().timeIntervalSince1970)
        }

        /// Starts one create per request on the loop, with its connections (with `settings`):
        /// the first alone, the next once it waits in the database, and each of the rest once
        /// the one before it queued behind it.
        func start(_ requests: [(name: String, sub: String)], settings: [(name: String, value: String)] = []) throws -> Outcomes {
            let outcomes = Outcomes(count: requests.count)
            let conninfo = try database.conninfo(user: "articles_app")
            let db = LoopDatabase(loop: loop.loop) { Connection(lazy: conninfo, settings: settings, waiter: $0) }
            for (index, request) in requests.enumerated() {
                let claims = claims(request.sub)
                loop.start { [creator] in
                    do throws(PGError) {
                        outcomes.set(index, .success(try await creator.create(name: request.name, asUserOf: claims, using: db)))
                    } catch {
                        outcomes.set(index, .failure(error))
                    }
                }
                if index == 0 {
                    try database.waitForALockWait()
                } else {
                    try waitFor("request \(index) to queue", within: 10) {
                        metric("articles_fcgi_article_creates_queued") == Double(index)
                    }
                }
            }
            return outcomes
        }

        /// `start`, then releases the lock; each outcome, in order.
        func createTogether(_ requests: [(name: String, sub: String)]) throws -> [Result<ArticleStore.Owned?, PGError>] {
            let outcomes = try start(requests)
            try release()
            try waitFor("every create to end", within: 10) { outcomes.done }
            return outcomes.all
        }
    }

    final class Outcomes: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [Result<ArticleStore.Owned?, PGError>?]
        init(count: Int) { items = Array(repeating: nil, count: count) }
        func set(_ index: Int, _ outcome: Result<ArticleStore.Owned?, PGError>) { lock.withLock { items[index] = outcome } }
        var done: Bool { lock.withLock { items.allSatisfy { $0 != nil } } }
        var all: [Result<ArticleStore.Owned?, PGError>] { lock.withLock { items.map { $0! } } }
    }

    private func stored(_ database: TestDatabase) throws -> [String: String] {
        let rows = try database.connect().query(
            "SELECT a.id, a.name, u.username FROM articles a JOIN users u ON u.id = a.owner_id")
        return Dictionary(uniqueKeysWithValues: try rows.map { (String(try $0.decode(Int64.self, at: 0)), "\(try $0.decode(String.self, at: 1)) by \(try $0.decode(String.self, at: 2))") })
    }

    @Test func requestsQueuedBehindAStatementShareTheNextOne() throws {
        let setup = try Setup()
        // Same name and owner twice, a quote and a backslash, and a user who may not write.
        let outcomes = try setup.createTogether([
            ("first", "sub-ann"), ("twin", "sub-ann"), (#"say "hi" \ bye"#, "sub-bob"), ("twin", "sub-ann"),
            ("refused", "sub-cid"), ("ünïcödé ✓", "sub-bob"),
        ])
        // The first alone, the shared one, and the refused request's alone (a request the shared
        // statement did not find is looked up on its own).
        #expect(setup.metric("articles_fcgi_article_create_statements_total") == 3)
        #expect(setup.metric("articles_fcgi_article_creates_queued") == 0)
        let created = try outcomes.map { try $0.get() }
        #expect(created.map { $0?.article.name } == ["first", "twin", #"say "hi" \ bye"#, "twin", nil, "ünïcödé ✓"])
        #expect(created.map { $0?.article.owner } == ["ann", "ann", "bob", "ann", nil, "bob"])
        // Each answer is a row of its own, as stored.
        let articles = created.compactMap { $0?.article }
        #expect(Set(articles.map(\.id)).count == 5)
        #expect(try stored(setup.database) == Dictionary(uniqueKeysWithValues: articles.map { (String($0.id), "\($0.name) by \($0.owner)") }))
    }

    @Test func aStatementThatFailsOnOneRequestsDataRunsEachAlone() throws {
        let setup = try Setup()
        // The table is stricter than the worker's check (as a later migration could make it).
        try setup.database.connect().query(
            "ALTER TABLE articles ADD CONSTRAINT articles_no_forbidden CHECK (name <> 'forbidden')")
        let outcomes = try setup.createTogether([("alone", "sub-ann"), ("fine", "sub-ann"), ("forbidden", "sub-bob"), ("also fine", "sub-bob")])
        // The first alone, the shared one that failed, then the three again, each alone.
        #expect(setup.metric("articles_fcgi_article_create_statements_total") == 5)
        #expect(try outcomes[0].get()?.article.name == "alone")
        #expect(try outcomes[1].get()?.article.name == "fine")
        #expect(try outcomes[3].get()?.article.name == "also fine")
        guard case .failure(let error) = outcomes[2] else { Issue.record("forbidden was created"); return }
        #expect(error.sqlState == .checkViolation && error.constraint == "articles_no_forbidden")
        #expect(try stored(setup.database).values.sorted() == ["alone by ann", "also fine by bob", "fine by ann"])
    }

    @Test(.lane(.waiting)) func aTimedOutSharedStatementRunsEachRequestAloneAndWritesNothing() throws {
        let setup = try Setup()
        // Every connection gives up on a lock after 2 s (time enough to see the others queue); the
        // blocker never lets go.
        let outcomes = try setup.start(
            [("late 0", "sub-ann"), ("late 1", "sub-ann"), ("late 2", "sub-bob")], settings: [("lock_timeout", "2s")])
        try waitFor("every create to end", within: 15) { outcomes.done }
        // The first alone, the shared one, then its two requests again, each alone within its own
        // bound: a cancelled statement wrote nothing.
        #expect(setup.metric("articles_fcgi_article_create_statements_total") == 4)
        for outcome in outcomes.all {
            guard case .failure(let error) = outcome else { Issue.record("created despite the lock"); continue }
            #expect(error.sqlState == .lockNotAvailable)
        }
        try setup.release()
        #expect(try stored(setup.database).isEmpty)
    }
}
