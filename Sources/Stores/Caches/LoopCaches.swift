import Observability
import PG
import Support

/// One serving loop's caches (users, articles) and whether the current request may use them.
///
/// A request may, once the change feed is up and has applied every change committed up to the
/// end of the database's WAL read after the request arrived (one round trip, shared with the
/// requests that arrived meanwhile), so what the caches answer reflects every commit visible
/// before this request, by any worker or psql. Then the caches apply the changes the feed
/// logged since they last looked.
package final class LoopCaches {
    /// How long a read waits for the change feed to catch up before it bypasses the caches.
    package static let feedWait: Duration = .milliseconds(5)

    package let users = UserCache()
    package let articles = ArticleCache()
    /// The end of the WAL as this loop's requests read it.
    package let walEnd = WALPositionReader()
    private let changes: ChangeFeed
    private let loop: EventLoop
    private let metrics: Metrics
    /// How many of the feed's changes the caches have applied, and the highest id of the
    /// transactions among them.
    private var changesApplied: UInt64 = 0
    private var highestApplied: UInt32?
    /// Whether a flush this loop asked for is in flight, and when the last was asked.
    private var flushing = false
    private var lastFlush: Int64 = 0

    package init(changes: ChangeFeed, metrics: Metrics, loop: EventLoop) {
        self.changes = changes
        self.loop = loop
        self.metrics = metrics
    }

    /// Whether a request that arrived before this call may use the caches, reading the WAL's
    /// end on `db` if this request makes the loop's reading; then the caches are brought up to
    /// date. Asked once per request (`App.read`).
    package func areCurrent(using db: any Database) async throws -> Bool {
        var current = false
        if changes.isUp, let position = try await walEnd.position(using: db) {
            current = changes.applied.value >= position.value
            if !current {
                current = await changes.isCurrent(for: position, waiting: Self.feedWait, on: loop)
                (current ? metrics.cacheWaits : metrics.cacheBypasses).increment()
                if !current { askForFlush(db) }
            }
        }
        if current && changes.log.total != changesApplied {
            let (logged, total, highest) = changes.log.changes(after: changesApplied)
            if let logged {
                for change in logged {
                    articles.apply(change)
                    users.apply(change)
                }
            } else {
                articles.removeAll()
                users.removeAll()
            }
            changesApplied = total
            highestApplied = highest
        }
        return current
    }

    /// Has PostgreSQL flush its WAL, at most once per `flushInterval` per loop, when the feed
    /// did not reach a position in time. The feed streams only flushed WAL, and WAL written by
    /// a transaction still open (a psql session holding a row lock) stays unflushed until the
    /// next synchronous commit: the insert position the reads wait for stays out of the feed's
    /// reach, and every read would bypass the caches until then. A transaction that takes an id
    /// commits with a flush of everything before it (`synchronous_commit` `local` for it alone:
    /// no standby is waited for), and the feed catches up. Runs beside the request, which
    /// bypasses the caches meanwhile.
    private func askForFlush(_ db: any Database) {
        let now = monotonicNanoseconds()
        guard !flushing, now - lastFlush >= Self.flushInterval.nanoseconds else { return }
        (flushing, lastFlush) = (true, now)
        loop.spawn { [self] in
            _ = try? await db.query(Self.flush)
            flushing = false
        }
    }

    package static let flush = PreparedStatement(
        name: "wal_flush", sql: "SELECT set_config('synchronous_commit', 'local', true), pg_current_xact_id()")
    package static let flushInterval: Duration = .milliseconds(100)

    /// Whether an answer loaded with `snapshot` may be kept: the snapshot shows every
    /// transaction whose changes the caches applied (`ChangeLog.mayHaveMissed`).
    package func mayKeep(_ snapshot: Snapshot?) -> Bool {
        !changes.log.mayHaveMissed(snapshot, appliedUpTo: highestApplied)
    }
}
