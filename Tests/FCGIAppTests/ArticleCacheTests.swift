import Foundation
import PG
import Testing

@testable import FCGIApp

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

@Suite(.lane()) struct ArticleCacheUnitTests {
    /// A page of ids `after+1 ... last`, with `peek` the first row after it.
    private func page(_ text: String, last: Int64? = nil, peek: Int64? = nil, owners: Set<Int64> = [1]) -> (ArticleCache.Page, keep: Bool) {
        (ArticleCache.Page(body: Array(text.utf8), nextAfter: peek == nil ? nil : last, lastID: last, peekID: peek, owners: owners), true)
    }

    /// Which of the pages (after, last, peek) and articles a change drops.
    private func dropped(by change: Change) -> [String] {
        let cache = ArticleCache()
        let pages: [(after: Int64, last: Int64?, peek: Int64?, owners: Set<Int64>)] = [
            (0, 10, 11, [1]), (10, 20, 21, [1, 2]), (20, 25, nil, [3]), (30, nil, nil, []),
        ]
        for entry in pages { _ = cache.page(after: entry.after, limit: 10) { page("p\(entry.after)", last: entry.last, peek: entry.peek, owners: entry.owners) } }
        for (id, owner) in [(5, 1), (15, 2), (22, 3)] as [(Int64, Int64)] {
            _ = cache.article(id) { (ArticleCache.Single(body: [1], etag: "e", ownerID: owner), true) }
        }
        cache.apply(change)
        var gone: [String] = []
        for entry in pages {
            var loaded = false
            _ = cache.page(after: entry.after, limit: 10) { loaded = true; return page("") }
            if loaded { gone.append("p\(entry.after)") }
        }
        for id in [5, 15, 22] as [Int64] {
            var loaded = false
            _ = cache.article(id) { loaded = true; return nil }
            if loaded { gone.append("a\(id)") }
        }
        return gone
    }

    @Test func dropsOnlyWhatAChangeTouches() {
        // A new article joins the last page (or one whose range it falls in), gives a page without
        // a next page a next, and leaves full pages before it alone.
        #expect(dropped(by: .articleInserted(26)) == ["p20"])
        #expect(dropped(by: .articleInserted(31)) == ["p20", "p30"])
        #expect(dropped(by: .articleInserted(7)) == ["p0"])
        // An update drops the article and the page that shows it.
        #expect(dropped(by: .articleUpdated(15)) == ["p10", "a15"])
        #expect(dropped(by: .articleUpdated(28)) == [])
        // A delete also drops the page whose next page began with it.
        #expect(dropped(by: .articleDeleted(11)) == ["p0", "p10"])
        #expect(dropped(by: .articleDeleted(5)) == ["p0", "a5"])
        // A user's change drops what shows the user's name.
        #expect(dropped(by: .userChanged(2)) == ["p10", "a15"])
        #expect(dropped(by: .userChanged(3)) == ["p20", "a22"])
        #expect(dropped(by: .userChanged(9)) == [])
        #expect(dropped(by: .everything) == ["p0", "p10", "p20", "p30", "a5", "a15", "a22"])
    }

    @Test func staysWithinItsBytes() {
        let cache = ArticleCache(capacityBytes: 10)
        var loads = 0
        func load() -> (ArticleCache.Page, keep: Bool) {
            loads += 1
            return page("12345")
        }
        _ = cache.page(after: 1, limit: 1, load: load)
        _ = cache.page(after: 2, limit: 1, load: load)
        _ = cache.page(after: 1, limit: 1, load: load)
        #expect(loads == 2, "two pages fit")
        _ = cache.page(after: 3, limit: 1, load: load)
        _ = cache.page(after: 1, limit: 1, load: load)
        #expect(loads == 4, "a third emptied the cache")
        // Larger than the whole cache: answered, never kept.
        _ = cache.page(after: 9, limit: 1) { page("0123456789ab") }
        _ = cache.page(after: 3, limit: 1, load: load)
        #expect(loads == 4)
        // What a change drops frees its bytes.
        cache.apply(.articleInserted(5))
        _ = cache.page(after: 4, limit: 1, load: load)
        _ = cache.page(after: 1, limit: 1, load: load)
        #expect(loads == 6, "page 3 was dropped by the insert, so two fit again")
        _ = cache.page(after: 4, limit: 1, load: load)
        #expect(loads == 6)
    }

    @Test func userCacheDropsTheChangedUserOnly() {
        let cache = UserCache()
        var loads = 0
        func user(_ id: Int64, keep: Bool = true) -> () -> (User, keep: Bool)? {
            { loads += 1; return (User(id: id, username: "u\(id)", isActive: true), keep) }
        }
        _ = cache.user(for: "a", load: user(1))
        _ = cache.user(for: "b", load: user(2))
        cache.apply(.userChanged(1))
        cache.apply(.articleDeleted(2))
        _ = cache.user(for: "a", load: user(1))
        _ = cache.user(for: "b", load: user(2))
        #expect(loads == 3)
        #expect(cache.user(for: "missing") { nil } == nil)
        // An answer that may predate a change already applied is not kept.
        _ = cache.user(for: "c", load: user(3, keep: false))
        _ = cache.user(for: "c", load: user(3))
        _ = cache.user(for: "c", load: user(3))
        #expect(loads == 5)
    }
}

@Suite(.lane()) struct ChangeFeedUnitTests {
    private let articles: UInt32 = 16_400
    private let users: UInt32 = 16_390
    private let sessions: UInt32 = 16_410

    private func decoder() -> ChangeDecoder {
        var decoder = ChangeDecoder()
        _ = decoder.decode(.relation(id: users, schema: "public", name: "users", columns: ["id", "username", "email", "cognito_sub", "is_active"]))
        _ = decoder.decode(.relation(id: articles, schema: "public", name: "articles", columns: ["id", "name", "owner_id"]))
        _ = decoder.decode(.relation(id: sessions, schema: "public", name: "revoked_sessions", columns: ["origin_jti", "revoked_at"]))
        return decoder
    }

    private func transaction(_ messages: [PGOutputMessage]) -> ChangeDecoder.Commit? {
        var decoder = decoder()
        _ = decoder.decode(.begin(xid: 99))
        for message in messages { #expect(decoder.decode(message) == nil) }
        return decoder.decode(.commit(end: LSN(42), commitTime: 7))
    }

    @Test func turnsRowsIntoChanges() throws {
        let commit = try #require(transaction([
            .insert(relation: articles, new: [.text("5"), .text("a"), .text("1")]),
            .update(relation: articles, old: nil, new: [.text("6"), .text("b"), .text("1")]),
            .update(relation: articles, old: [.text("7"), .null, .null], new: [.text("8"), .text("c"), .text("1")]),
            .delete(relation: articles, key: [.text("9"), .null, .null]),
            .insert(relation: users, new: [.text("3"), .text("new"), .null, .null, .text("t")]),
            .update(relation: users, old: nil, new: [.text("4"), .text("x"), .null, .unchanged, .text("f")]),
            .delete(relation: users, key: [.text("2"), .null, .null, .null, .null]),
            .insert(relation: sessions, new: [.text("s1"), .text("2026-12-01")]),
            .delete(relation: sessions, key: [.text("s0"), .null]),
            .insert(relation: 1, new: [.text("x")]),
        ]))
        #expect(commit.changes == [
            .articleInserted(5), .articleUpdated(6), .articleDeleted(7), .articleInserted(8), .articleDeleted(9),
            .userChanged(4), .userChanged(2),
        ])
        #expect(commit.revocations == [.revoke("s1"), .unrevoke("s0")])
        #expect(commit.end == LSN(42))
        #expect(commit.xid == 99)
        #expect(!commit.unreadable)
    }

    @Test func whatItCannotReadDropsEverything() throws {
        #expect(try #require(transaction([.update(relation: articles, old: nil, new: [.text("x"), .null, .null])])).changes == [.everything])
        #expect(try #require(transaction([.truncate(relations: [articles])])).changes == [.everything])
        #expect(try #require(transaction([.truncate(relations: [sessions])])).revocations == [.clear])
        #expect(try #require(transaction([.delete(relation: sessions, key: [.null, .null])])).unreadable)
        let bulk = (0..<Int64(ChangeLog.capacity)).map { PGOutputMessage.insert(relation: articles, new: [.text("\($0)"), .null, .null]) }
        #expect(try #require(transaction(bulk)).changes == [.everything])
    }

    @Test func logKeepsTheLatestChanges() {
        let log = ChangeLog()
        log.append([.articleInserted(1), .articleDeleted(2)], of: 7)
        #expect(log.changes(after: 0).changes == [.articleInserted(1), .articleDeleted(2)])
        #expect(log.changes(after: 1).changes == [.articleDeleted(2)])
        #expect(log.changes(after: 2).changes == [])
        #expect(log.changes(after: 0).highest == 7)
        // Transaction 7 was logged: a snapshot that saw it running, or took 7 as not yet completed,
        // may predate its changes.
        #expect(log.mayHaveMissed(Snapshot(xmax: 9, running: [7]), appliedUpTo: 7))
        #expect(log.mayHaveMissed(Snapshot(xmax: 7, running: []), appliedUpTo: 7))
        #expect(!log.mayHaveMissed(Snapshot(xmax: 9, running: [8]), appliedUpTo: 7))
        #expect(!log.mayHaveMissed(Snapshot(xmax: 8, running: []), appliedUpTo: 7))
        #expect(!log.mayHaveMissed(Snapshot(xmax: 3, running: []), appliedUpTo: nil))
        #expect(log.mayHaveMissed(nil, appliedUpTo: nil))
        // Ids compare modulo 2^32.
        #expect(log.mayHaveMissed(Snapshot(xmax: 0xFFFF_FFF0, running: []), appliedUpTo: 5))
        #expect(!log.mayHaveMissed(Snapshot(xmax: 5, running: []), appliedUpTo: 0xFFFF_FFF0))
        log.append(Array(repeating: .articleUpdated(3), count: ChangeLog.capacity - 1), of: nil)
        #expect(log.changes(after: 1).changes?.count == ChangeLog.capacity)
        #expect(log.changes(after: 0).changes == nil, "the first change is no longer kept")
        #expect(log.total == UInt64(ChangeLog.capacity + 1))
    }

    @Test func waitsForThePositionOrGivesUp() throws {
        let position = AppliedPosition()
        position.advance(to: 10)
        #expect(position.wait(for: 10, timeout: .zero))
        let started = Date()
        #expect(!position.wait(for: 11, timeout: .milliseconds(50)))
        #expect(Date().timeIntervalSince(started) >= 0.045)
        let thread = try PosixThread {
            Thread.sleep(forTimeInterval: 0.05)  // so the wait below waits: the test is about time
            position.advance(to: 12)
        }
        let waiting = Date()
        #expect(position.wait(for: 12, timeout: .seconds(5)))
        #expect(Date().timeIntervalSince(waiting) < 1)
        thread.join()
        position.reset(to: 3)
        #expect(position.value == 3)
    }
}
