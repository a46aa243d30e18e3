@testable import FCGIApp
import Foundation
@testable import PG
@testable import Stores
@testable import Support
import Testing

/// The caches, the change decoder and the change log, in process.
@Suite(.lane()) struct ArticleCacheUnitTests {
    /// A page of ids `after+1 ... last`, with `peek` the first row after it.
    private func page(_ text: String, last: Int64? = nil, peek: Int64? = nil, owners: Set<Int64> = [1]) -> (ArticleCache.Page, keep: Bool) {
        (ArticleCache.Page(body: Array(text.utf8), nextAfter: peek == nil ? nil : last, lastID: last, peekID: peek, owners: owners), true)
    }

    /// Which of the pages (after, last, peek) and articles a change drops.
    private func dropped(by change: Change) async -> [String] {
        let cache = ArticleCache()
        let pages: [(after: Int64, last: Int64?, peek: Int64?, owners: Set<Int64>)] = [
            (0, 10, 11, [1]), (10, 20, 21, [1, 2]), (20, 25, nil, [3]), (30, nil, nil, []),
        ]
        for entry in pages { _ = await cache.page(after: entry.after, limit: 10) { page("p\(entry.after)", last: entry.last, peek: entry.peek, owners: entry.owners) } }
        for (id, owner) in [(5, 1), (15, 2), (22, 3)] as [(Int64, Int64)] {
            _ = await cache.article(id) { (ArticleCache.Single(body: [1], etag: "e", ownerID: owner), true) }
        }
        cache.apply(change)
        var gone: [String] = []
        for entry in pages {
            var loaded = false
            _ = await cache.page(after: entry.after, limit: 10) { loaded = true; return page("") }
            if loaded { gone.append("p\(entry.after)") }
        }
        for id in [5, 15, 22] as [Int64] {
            var loaded = false
            _ = await cache.article(id) { loaded = true; return nil }
            if loaded { gone.append("a\(id)") }
        }
        return gone
    }

    @Test func dropsOnlyWhatAChangeTouches() async {
        // A new article joins the last page (or one whose range it falls in), gives a page without
        // a next page a next, and leaves full pages before it alone.
        #expect(await dropped(by: .articleInserted(26)) == ["p20"])
        #expect(await dropped(by: .articleInserted(31)) == ["p20", "p30"])
        #expect(await dropped(by: .articleInserted(7)) == ["p0"])
        // An update drops the article and the page that shows it.
        #expect(await dropped(by: .articleUpdated(15)) == ["p10", "a15"])
        #expect(await dropped(by: .articleUpdated(28)) == [])
        // A delete also drops the page whose next page began with it.
        #expect(await dropped(by: .articleDeleted(11)) == ["p0", "p10"])
        #expect(await dropped(by: .articleDeleted(5)) == ["p0", "a5"])
        // A user's change drops what shows the user's name.
        #expect(await dropped(by: .userChanged(2)) == ["p10", "a15"])
        #expect(await dropped(by: .userChanged(3)) == ["p20", "a22"])
        #expect(await dropped(by: .userChanged(9)) == [])
        #expect(await dropped(by: .everything) == ["p0", "p10", "p20", "p30", "a5", "a15", "a22"])
    }

    @Test func staysWithinItsBytes() async {
        let cache = ArticleCache(capacityBytes: 10)
        var loads = 0
        func load() -> (ArticleCache.Page, keep: Bool) {
            loads += 1
            return page("12345")
        }
        _ = await cache.page(after: 1, limit: 1, load: load)
        _ = await cache.page(after: 2, limit: 1, load: load)
        _ = await cache.page(after: 1, limit: 1, load: load)
        #expect(loads == 2, "two pages fit")
        _ = await cache.page(after: 3, limit: 1, load: load)
        _ = await cache.page(after: 1, limit: 1, load: load)
        #expect(loads == 4, "a third emptied the cache")
        // Larger than the whole cache: answered, never kept.
        _ = await cache.page(after: 9, limit: 1) { page("0123456789ab") }
        _ = await cache.page(after: 3, limit: 1, load: load)
        #expect(loads == 4)
        // What a change drops frees its bytes.
        cache.apply(.articleInserted(5))
        _ = await cache.page(after: 4, limit: 1, load: load)
        _ = await cache.page(after: 1, limit: 1, load: load)
        #expect(loads == 6, "page 3 was dropped by the insert, so two fit again")
        _ = await cache.page(after: 4, limit: 1, load: load)
        #expect(loads == 6)
    }

    @Test func userCacheDropsTheChangedUserOnly() async {
        let cache = UserCache()
        var loads = 0
        func user(_ id: Int64, keep: Bool = true) -> () -> (User, keep: Bool)? {
            { loads += 1; return (User(id: id, username: "u\(id)", isActive: true), keep) }
        }
        _ = await cache.user(for: "a", load: user(1))
        _ = await cache.user(for: "b", load: user(2))
        cache.apply(.userChanged(1))
        cache.apply(.articleDeleted(2))
        _ = await cache.user(for: "a", load: user(1))
        _ = await cache.user(for: "b", load: user(2))
        #expect(loads == 3)
        #expect(await cache.user(for: "missing") { nil } == nil)
        // An answer that may predate a change already applied is not kept.
        _ = await cache.user(for: "c", load: user(3, keep: false))
        _ = await cache.user(for: "c", load: user(3))
        _ = await cache.user(for: "c", load: user(3))
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

    /// The feed's slot started from a snapshot that showed 10 committed (a commit other
    /// sessions could not see yet, so the stream never carries it) and 12 running: an answer
    /// read in a snapshot that hides 10 may be older than the feed's start.
    @Test func anAnswerThatMissesWhatTheFeedStartedFromIsNotKept() {
        let log = ChangeLog()
        log.restart(from: Snapshot(xmax: 13, running: [12]))
        #expect(log.changes(after: 0).changes == [.everything])
        #expect(log.mayHaveMissed(Snapshot(xmax: 14, running: [10]), appliedUpTo: nil))
        #expect(log.mayHaveMissed(Snapshot(xmax: 11, running: []), appliedUpTo: nil), "hides 11 and 12 as not yet begun")
        #expect(!log.mayHaveMissed(Snapshot(xmax: 14, running: [12]), appliedUpTo: nil), "12 was running for the start too")
        #expect(!log.mayHaveMissed(Snapshot(xmax: 14, running: [13]), appliedUpTo: nil), "13 began after the start: streamed")
        log.restart(from: nil)
        #expect(!log.mayHaveMissed(Snapshot(xmax: 14, running: [10]), appliedUpTo: nil))
    }

    @Test func aReadingPastAPageHeaderIsTakenBackToThePagesStart() {
        let (page, segment): (UInt64, UInt64) = (8192, 16 << 20)
        func end(_ value: UInt64) -> UInt64 { WALPositionReader.recordEnd(LSN(value), pageSize: page, segmentSize: segment).value }
        #expect(end(3 * segment + 40) == 3 * segment, "a segment's first page has a 40-byte header")
        #expect(end(3 * segment + 5 * page + 24) == 3 * segment + 5 * page, "the others 24")
        #expect(end(3 * segment + 5 * page + 40) == 3 * segment + 5 * page + 40, "past a short header: where a record may end")
        #expect(end(3 * segment + 1000) == 3 * segment + 1000)
    }

    @Test func waitsForThePositionOrGivesUp() throws {
        let position = AppliedPosition()
        let loop = try TestLoop()
        position.advance(to: 10)
        #expect(try loop.run { await position.wait(for: 10, timeout: .zero, on: loop.loop) })
        let started = Date()
        #expect(try !loop.run { await position.wait(for: 11, timeout: .milliseconds(50), on: loop.loop) })
        #expect(Date().timeIntervalSince(started) >= 0.045)
        let thread = try PosixThread {
            Thread.sleep(forTimeInterval: 0.05)  // so the wait below waits: the test is about time
            position.advance(to: 12)
        }
        let waiting = Date()
        #expect(try loop.run { await position.wait(for: 12, timeout: .seconds(5), on: loop.loop) })
        #expect(Date().timeIntervalSince(waiting) < 1)
        thread.join()
        position.reset(to: 3)
        #expect(position.value == 3)
    }
}
