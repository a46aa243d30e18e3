import PG

/// One serving thread's caches (users, articles) and whether the current request may use them.
///
/// A request may, once the change feed is up and has applied every change committed up to the
/// end of the database's WAL read after the request arrived (one round trip, shared with the
/// requests that arrived meanwhile), so what the caches answer reflects every commit visible
/// before this request, by any worker or psql. Then the caches apply the changes the feed
/// logged since they last looked.
final class ThreadCaches {
    /// How long a read waits for the change feed to catch up before it bypasses the caches.
    static let feedWait: Duration = .milliseconds(5)

    let users = UserCache()
    let articles = ArticleCache()
    private let changes: ChangeFeed
    private let metrics: Metrics
    /// How many of the feed's changes the caches have applied, and the highest id of the
    /// transactions among them.
    private var changesApplied: UInt64 = 0
    private var highestApplied: UInt32?

    init(changes: ChangeFeed, metrics: Metrics) {
        self.changes = changes
        self.metrics = metrics
    }

    /// Whether a request that arrived before this call may use the caches, reading the WAL's
    /// end on `db` if this thread makes the reading; then the caches are brought up to date.
    /// Asked once per request (`App.read`).
    func areCurrent(using db: Connection) throws -> Bool {
        var current = false
        if changes.isUp, let position = try changes.walEnd.position(using: db) {
            current = changes.applied.value >= position.value
            if !current {
                current = changes.isCurrent(for: position, waiting: Self.feedWait)
                (current ? metrics.cacheWaits : metrics.cacheBypasses).increment()
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

    /// Whether an answer loaded with `snapshot` may be kept: the snapshot shows every
    /// transaction whose changes the caches applied (`ChangeLog.mayHaveMissed`).
    func mayKeep(_ snapshot: Snapshot?) -> Bool {
        !changes.log.mayHaveMissed(snapshot, appliedUpTo: highestApplied)
    }
}
