import Glibc
import Logging
import PG
import Synchronization

/// What the worker hears of changes to the tables its serving threads cache (users, articles).
///
/// One connection of its own listens on the channels the tables' triggers notify (migrations
/// 0005 and 0006), on a thread of its own, and counts the changes per table as they arrive: a
/// change committed by psql or another worker reaches every thread's cache well within a
/// millisecond, for one notification per change. Changes the worker makes itself are counted
/// before it answers them. While the listening connection is down no count is given, and the
/// caches are not used; once it is back every count moves, for what may have been missed.
/// The same connection reloads the revoked sessions (migration 0008) on each change to them
/// and each time it connects.
final class ChangeFeed: Sendable {
    enum Table { case users, articles }

    static let usersChannel = "articles_users_changed"
    static let articlesChannel = "articles_changed"

    private let users = Atomic<UInt64>(0)
    private let articles = Atomic<UInt64>(0)
    private let listening: Atomic<Bool>

    /// A feed that is not listening until `start`; `listening: true` gives counts at once,
    /// of the changes it is told of (tests).
    init(listening: Bool = false) { self.listening = Atomic(listening) }

    /// The table's change count, or nil while the feed is not listening.
    func version(_ table: Table) -> UInt64? {
        guard listening.load(ordering: .acquiring) else { return nil }
        return switch table {
        case .users: users.load(ordering: .acquiring)
        case .articles: articles.load(ordering: .acquiring)
        }
    }

    func changed(_ table: Table) {
        switch table {
        case .users: users.add(1, ordering: .acquiringAndReleasing)
        case .articles: articles.add(1, ordering: .acquiringAndReleasing)
        }
    }

    /// Listens from now on, on a connection made with `conninfo` and a thread of its own, until
    /// the process exits; reconnects every second while the database is unreachable.
    /// Also reloads `revoked` on each change to it.
    func start(conninfo: String?, revoked: RevokedSessions, logger: Logger) throws(ConfigError) {
        _ = try PosixThread { [self] in
            let db = Connection(lazy: conninfo, applicationName: "articles-fcgi changes",
                                listen: [Self.usersChannel, Self.articlesChannel, RevokedSessions.channel])
            while true { listen(on: db, revoked: revoked, logger: logger) }
        }
    }

    /// Counts notifications until the connection fails, then waits a second.
    private func listen(on db: Connection, revoked: RevokedSessions, logger: Logger) {
        do {
            _ = try db.waitForNotifications(timeout: 0)
            try revoked.load(from: db)
            // Listening again: anything may have changed meanwhile. Counted before caches
            // may be used, so that what they kept from before is dropped.
            changed(.users)
            changed(.articles)
            listening.store(true, ordering: .releasing)
            logger.info("listening for changes to users, articles and revoked sessions")
            while true {
                for channel in Set(try db.waitForNotifications(timeout: 60)) {
                    if channel == RevokedSessions.channel {
                        try revoked.load(from: db)
                        continue
                    }
                    if channel == Self.usersChannel { changed(.users) }
                    // Articles show their owner's username: a change to users may change them.
                    changed(.articles)
                }
            }
        } catch {
            if listening.exchange(false, ordering: .acquiringAndReleasing) {
                logger.warning("not listening for changes; serving without caches until it is back", metadata: ["error": "\(error)"])
            }
            sleep(1)
        }
    }
}

/// A serving thread's view of whether its cache of one table may be used.
struct CacheFreshness {
    let feed: ChangeFeed
    let table: ChangeFeed.Table
    private var filledAt: UInt64?

    init(feed: ChangeFeed, table: ChangeFeed.Table) {
        self.feed = feed
        self.table = table
    }

    /// Whether the cache may be used now (to read and to keep), after `empty` when the table
    /// changed since it was filled. Not while the feed is not listening. Entries are kept under
    /// the count read before they were loaded: a change committed while loading moves the
    /// count, and the next check empties the cache.
    mutating func isUsable(emptying empty: () -> Void) -> Bool {
        guard let current = feed.version(table) else { return false }
        if current != filledAt {
            empty()
            filledAt = current
        }
        return true
    }
}
