import Glibc
import Logging
import PG
import Synchronization

/// A committed change that may make a cached answer wrong.
enum Change: Equatable, Sendable {
    case articleInserted(Int64)
    case articleUpdated(Int64)
    case articleDeleted(Int64)
    /// A user's row changed or was deleted: its cache entry, and the articles that show its name.
    case userChanged(Int64)
    /// Anything may have changed: a table truncated, a change the feed could not read, or the
    /// feed (re)connected after a time it heard nothing.
    case everything
}

/// What the worker hears of committed changes to the tables its serving threads cache (users,
/// articles) and to the revoked sessions, through PostgreSQL's logical decoding: a temporary
/// replication slot streamed with the built-in `pgoutput` plugin for the `articles_fcgi`
/// publication (migration 0009), on a connection and thread of its own. Writers pay nothing at
/// commit, and a change made by psql, another worker or another host arrives the same way.
///
/// Each committed transaction's changes go to the `ChangeLog` (the serving threads apply them
/// to their own caches) and its revocations to `RevokedSessions`; then `applied` moves to the
/// transaction's end. A serving thread uses its caches only when `applied` has reached the
/// server's WAL flush position read after the request arrived (`FlushPositionReader`,
/// `isCurrent(for:waiting:)`), so an answer reflects every write answered before the request
/// began, on any worker.
///
/// The feed proves it is alive: it asks the server for a keepalive every second and counts
/// three seconds without any message as down. While it is down nothing is current, so caches
/// are bypassed and revocations are checked against the database; it connects again every
/// second, with a new slot, and everything cached before is dropped.
final class ChangeFeed: Sendable {
    static let publication = "articles_fcgi"
    /// How often the feed asks the server for a keepalive, and how long a silence counts as down.
    static let statusInterval: Duration = .seconds(1)
    static let silenceBound: Duration = .seconds(3)
    /// A change applied later than this after its commit is logged.
    static let lagBound = 1.0

    let log = ChangeLog()
    let applied = AppliedPosition()
    let flushed = FlushPositionReader()
    let revoked: RevokedSessions
    private let up = Atomic<Bool>(false)
    private let metrics: Metrics?

    /// A feed that is down until `start`.
    init(revoked: RevokedSessions = RevokedSessions(), metrics: Metrics? = nil) {
        self.revoked = revoked
        self.metrics = metrics
    }

    var isUp: Bool { up.load(ordering: .acquiring) }

    /// Whether everything committed up to `position` has been applied, waiting up to `timeout`
    /// for it; false while the feed is down.
    func isCurrent(for position: LSN, waiting timeout: Duration) -> Bool {
        guard isUp else { return false }
        return applied.wait(for: position.value, timeout: timeout) && isUp
    }

    /// Adds the changes of transaction `xid`, committed at `position`.
    private func publish(_ changes: [Change], of xid: UInt32, at position: LSN) {
        log.append(changes, of: xid)
        applied.advance(to: position.value)
    }

    /// Follows changes from now on, on a replication connection made with `conninfo` and a
    /// thread of its own, until the process exits.
    func start(conninfo: String?, logger: Logger) throws(ConfigError) {
        _ = try PosixThread { [self] in
            var lastError = ""
            while true {
                do {
                    try follow(conninfo: conninfo, logger: logger)
                } catch {
                    let wasUp = up.exchange(false, ordering: .acquiringAndReleasing)
                    metrics?.feedUp.set(to: 0)
                    let text = "\(error)"
                    if wasUp || text != lastError {
                        logger.warning(
                            "not following database changes; serving without caches until it is back",
                            metadata: ["error": "\(text)"])
                        if wasUp { metrics?.feedLosses.increment() }
                    }
                    lastError = text
                }
                sleep(1)
            }
        }
    }

    /// One replication session: throws when the connection fails or goes silent.
    private func follow(conninfo: String?, logger: Logger) throws {
        let stream = try ReplicationStream(conninfo, applicationName: "articles-fcgi changes")
        defer { stream.close() }
        var random = SystemRandomNumberGenerator()
        let slot = "articles_fcgi_\(getpid())_\(String(random.next() as UInt32, radix: 16))"
        let start = try stream.createTemporarySlot(slot, plugin: "pgoutput")
        // Loaded after the slot exists: a change in between is both in the set and in the stream,
        // and applying it again leaves the set as the table is.
        revoked.replace(with: try Self.revokedSessions(stream))
        try stream.start(slot: slot, options: "proto_version '1', publication_names '\(Self.publication)'")
        // Whatever the caches kept may be older than the slot: dropped before they are used again.
        log.append([.everything], of: nil)
        applied.reset(to: start.value)
        up.store(true, ordering: .releasing)
        metrics?.feedUp.set(to: 1)
        logger.info("following database changes", metadata: ["slot": "\(slot)", "from": "\(start)"])

        var decoder = ChangeDecoder()
        var heard = monotonicNanoseconds()
        var asked = Int64.min
        var behind = false
        while true {
            let now = monotonicNanoseconds()
            if asked == .min || now - asked >= Self.statusInterval.nanoseconds {
                try stream.sendStatus(applied: LSN(applied.value), replyRequested: true)
                asked = now
            }
            guard let message = try stream.next(timeout: 0.25) else {
                if monotonicNanoseconds() - heard > Self.silenceBound.nanoseconds {
                    throw PGError(kind: .connection, message: "the server sent nothing for \(Self.silenceBound)")
                }
                continue
            }
            heard = monotonicNanoseconds()
            switch message {
            case .keepalive(let walEnd, _):
                // Everything before walEnd was sent, so it has been applied (outside a transaction).
                if !decoder.inTransaction { applied.advance(to: walEnd.value) }
                try stream.sendStatus(applied: LSN(applied.value), replyRequested: false)
            case .data(_, let bytes):
                guard let commit = try decoder.decode(PGOutputMessage(bytes)) else { continue }
                if commit.unreadable {
                    // Only a new session can load the set again (no statements while streaming).
                    throw PGError(kind: .decoding, message: "a change to revoked_sessions had no origin_jti")
                }
                revoked.apply(commit.revocations)
                publish(commit.changes, of: commit.xid, at: commit.end)
                let lag = Double(ReplicationStream.postgresMicroseconds() - commit.commitTime) / 1_000_000
                metrics?.feedLag.set(to: max(0, lag))
                if (lag > Self.lagBound) != behind {
                    behind.toggle()
                    if behind {
                        logger.warning("database changes arrive late", metadata: ["lag_seconds": "\(lag)"])
                    } else {
                        logger.info("database changes arrive on time again", metadata: ["lag_seconds": "\(lag)"])
                    }
                }
            }
        }
    }
}

extension ChangeFeed {
    fileprivate static func revokedSessions(_ stream: ReplicationStream) throws -> Set<String> {
        var sessions = Set<String>()
        for row in try stream.execute("SELECT origin_jti FROM revoked_sessions") {
            sessions.insert(try row.decode(String.self, at: 0))
        }
        return sessions
    }
}

/// Turns `pgoutput` messages into each transaction's `Change`s and revocations.
struct ChangeDecoder {
    struct Commit {
        var changes: [Change]
        var revocations: [RevokedSessions.Update]
        var xid: UInt32
        var end: LSN
        var commitTime: Int64
        /// A revocation whose session the decoder could not read: the set must be loaded again.
        var unreadable: Bool
    }

    private enum Table { case users, articles, revokedSessions }
    private enum Operation { case insert, update, delete }
    /// Relations by id: which table, and where its key column is.
    private var relations: [UInt32: (table: Table, key: Int)] = [:]
    private var changes: [Change] = []
    private var revocations: [RevokedSessions.Update] = []
    private var unreadable = false
    private var xid: UInt32 = 0
    private(set) var inTransaction = false

    /// The transaction's changes once `message` commits it, else nil.
    mutating func decode(_ message: PGOutputMessage) -> Commit? {
        switch message {
        case .begin(let xid):
            self.xid = xid
            inTransaction = true
            changes.removeAll(keepingCapacity: true)
            revocations.removeAll(keepingCapacity: true)
            unreadable = false
        case .relation(let id, _, let name, let columns):
            let table: Table? = switch name {
            case "users": .users
            case "articles": .articles
            case "revoked_sessions": .revokedSessions
            default: nil
            }
            let key = table.flatMap { columns.firstIndex(of: $0 == .revokedSessions ? "origin_jti" : "id") }
            relations[id] = table.map { ($0, key ?? -1) }
        case .insert(let relation, let new):
            row(.insert, relation, old: nil, new: new)
        case .update(let relation, let old, let new):
            row(.update, relation, old: old, new: new)
        case .delete(let relation, let key):
            row(.delete, relation, old: key, new: nil)
        case .truncate(let truncated):
            for relation in truncated {
                switch relations[relation]?.table {
                case .revokedSessions: revocations.append(.clear)
                case .users, .articles: changes.append(.everything)
                case nil: break
                }
            }
        case .commit(let end, let commitTime):
            inTransaction = false
            // A transaction of many changes (a bulk load) empties the caches rather than
            // flooding the log.
            let collapsed = changes.count > ChangeLog.capacity / 4 ? [.everything] : changes
            return Commit(
                changes: collapsed, revocations: revocations, xid: xid, end: end, commitTime: commitTime,
                unreadable: unreadable)
        case .other:
            break
        }
        return nil
    }

    /// `old` is the key before the change (deletes; updates that changed it), `new` the row after.
    private mutating func row(
        _ operation: Operation, _ relation: UInt32, old: [PGOutputMessage.Value]?, new: [PGOutputMessage.Value]?
    ) {
        guard let (table, key) = relations[relation] else { return }
        func text(_ values: [PGOutputMessage.Value]?) -> String? {
            guard let values, key >= 0, key < values.count, case .text(let value) = values[key] else { return nil }
            return value
        }
        let after = text(new)
        let before = text(old) ?? (operation == .update ? after : nil)
        if table == .revokedSessions {
            if let before, before != after || operation == .delete { revocations.append(.unrevoke(before)) }
            if let after { revocations.append(.revoke(after)) }
            if before == nil && after == nil { unreadable = true }
            return
        }
        let beforeID = before.flatMap { Int64($0) }
        let afterID = after.flatMap { Int64($0) }
        guard (operation == .insert || beforeID != nil) && (operation == .delete || afterID != nil) else {
            // A key the decoder cannot read: nothing cached can be trusted.
            changes.append(.everything)
            return
        }
        switch (table, operation) {
        case (.users, .insert):
            break  // a new row changes no cached answer
        case (.users, _):
            changes.append(.userChanged(beforeID!))
            if let afterID, afterID != beforeID { changes.append(.userChanged(afterID)) }
        case (.articles, .insert):
            changes.append(.articleInserted(afterID!))
        case (.articles, .delete):
            changes.append(.articleDeleted(beforeID!))
        case (.articles, .update) where beforeID == afterID:
            changes.append(.articleUpdated(afterID!))
        case (.articles, .update):
            changes.append(.articleDeleted(beforeID!))
            changes.append(.articleInserted(afterID!))
        case (.revokedSessions, _):
            break
        }
    }
}

/// The changes the feed applied, in order, for the serving threads to apply to their caches: the
/// last `capacity` of them. A thread that fell further behind empties its caches.
///
/// The feed reads a commit once it is flushed, a moment before the transaction becomes visible
/// to other sessions' snapshots. So the log also keeps the ids of the last `capacity`
/// transactions it logged changes of, and hands a thread the highest of them with the changes:
/// an answer loaded with a snapshot that hides one of the transactions the thread applied may
/// predate a change its cache already applied, and is not kept (`mayHaveMissed`).
final class ChangeLog: Sendable {
    static let capacity = 16_384

    private struct Ring: ~Copyable {
        var changes = [Change](repeating: .everything, count: ChangeLog.capacity)
        var count: UInt64 = 0
        var xids = [UInt32](repeating: 0, count: ChangeLog.capacity)
        var transactions = 0
        var recent = Set<UInt32>()
        var highest: UInt32?
    }

    private let ring = Mutex(Ring())
    private let count = Atomic<UInt64>(0)

    /// How many changes were ever appended: a thread that has applied this many is up to date.
    var total: UInt64 { count.load(ordering: .acquiring) }

    /// Appends `new`, the changes of transaction `xid` (nil: not a transaction's).
    func append(_ new: [Change], of xid: UInt32?) {
        guard !new.isEmpty else { return }
        let total = ring.withLock { ring in
            for change in new {
                ring.changes[Int(ring.count % UInt64(Self.capacity))] = change
                ring.count += 1
            }
            guard let xid else { return ring.count }
            let slot = ring.transactions % Self.capacity
            if ring.transactions >= Self.capacity { ring.recent.remove(ring.xids[slot]) }
            ring.xids[slot] = xid
            ring.recent.insert(xid)
            // Ids compare modulo 2^32, as PostgreSQL compares them.
            if ring.highest.map({ Int32(bitPattern: xid &- $0) > 0 }) ?? true { ring.highest = xid }
            ring.transactions += 1
            return ring.count
        }
        count.store(total, ordering: .releasing)
    }

    /// Whether an answer loaded with `snapshot` may miss a change a thread applied, the
    /// transactions it applied going up to id `highest` (from `changes(after:)`): the snapshot
    /// hides that id or higher ones, or saw a logged transaction running. True without a snapshot.
    func mayHaveMissed(_ snapshot: Snapshot?, appliedUpTo highest: UInt32?) -> Bool {
        guard let snapshot else { return true }
        if let highest, snapshot.hides(highest) { return true }
        guard !snapshot.running.isEmpty else { return false }
        return ring.withLock { ring in snapshot.running.contains(where: ring.recent.contains) }
    }

    /// The changes after the first `seen`, how many there are in all, and the highest id of the
    /// transactions logged so far; nil changes when some of them are no longer kept.
    func changes(after seen: UInt64) -> (changes: [Change]?, total: UInt64, highest: UInt32?) {
        ring.withLock { ring in
            guard ring.count - seen <= UInt64(Self.capacity) else { return (nil, ring.count, ring.highest) }
            let changes = (seen..<ring.count).map { ring.changes[Int($0 % UInt64(Self.capacity))] }
            return (changes, ring.count, ring.highest)
        }
    }
}

/// The WAL position up to which the change feed has applied every commit, which serving
/// threads may wait for: a normal (not priority-inheriting) mutex and condition variable,
/// touched only while someone waits.
final class AppliedPosition: @unchecked Sendable {
    private let position = Atomic<UInt64>(0)
    private let waiters = Atomic<Int>(0)
    private let lock = ConditionLock()

    var value: UInt64 { position.load(ordering: .sequentiallyConsistent) }

    /// Moves forward to `target` (never back).
    func advance(to target: UInt64) {
        guard target > position.load(ordering: .relaxed) else { return }
        position.store(target, ordering: .sequentiallyConsistent)
        wake()
    }

    /// Sets the position after the feed connected again (a failover may have moved it back).
    func reset(to target: UInt64) {
        position.store(target, ordering: .sequentiallyConsistent)
        wake()
    }

    /// Whether the position reached `target`, waiting up to `timeout` for it.
    func wait(for target: UInt64, timeout: Duration) -> Bool {
        if value >= target { return true }
        guard timeout > .zero else { return false }
        let deadline = monotonicNanoseconds() + timeout.nanoseconds
        waiters.add(1, ordering: .sequentiallyConsistent)
        lock.lock()
        while value < target, lock.wait(until: deadline) {}
        lock.unlock()
        waiters.subtract(1, ordering: .sequentiallyConsistent)
        return value >= target
    }

    private func wake() {
        guard waiters.load(ordering: .sequentiallyConsistent) > 0 else { return }
        lock.lock()
        lock.broadcast()
        lock.unlock()
    }
}

/// The database's WAL flush position as the serving threads read it, once at a time for all the
/// requests that want it: a request needs a reading that began after it arrived (then every
/// write answered before it is at or before the position), so it waits for the reading in
/// flight to end and the next one to be made, by itself or by another thread. Under load one
/// round trip serves many requests. The requests a reading satisfies wait on one condition and
/// those that need the next on the other, so each request is woken once, and the end of a
/// reading wakes one of the next ones to make it.
final class FlushPositionReader: @unchecked Sendable {
    /// `pg_current_wal_flush_lsn()`: every write answered so far, by any worker, is at or before it.
    static let statement = PreparedStatement(name: "wal_flushed", sql: "SELECT pg_current_wal_flush_lsn()")

    /// Condition `n % 2`: the requests that reading `n` satisfies.
    private let lock = ConditionLock(conditions: 2)
    private var started: UInt64 = 0
    private var finished: UInt64 = 0
    private var reading = false
    private var latest: LSN?

    /// A flush position read after this call began, on `db` when this thread makes the reading.
    func position(using db: Connection) throws -> LSN? {
        lock.lock()
        let needed = started + 1
        while finished < needed {
            guard !reading else {
                // The reading in flight, if it began after this call, else the next one.
                lock.wait(Int(max(needed, started) % 2))
                continue
            }
            reading = true
            started += 1
            let mine = started
            lock.unlock()
            let position: LSN?
            do {
                position = try db.query(Self.statement).first?.decode(LSN?.self, at: 0)
            } catch {
                lock.lock()
                reading = false
                lock.broadcast(0)
                lock.broadcast(1)
                lock.unlock()
                throw error
            }
            lock.lock()
            reading = false
            finished = mine
            latest = position
            lock.broadcast(Int(mine % 2))
            lock.signal(Int((mine + 1) % 2))
        }
        let position = latest
        lock.unlock()
        return position
    }
}
