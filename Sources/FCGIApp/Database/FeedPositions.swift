import PG
import Synchronization

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

/// The end of the database's WAL as the serving threads read it, once at a time for all the
/// requests that want it: a request needs a reading that began after it arrived (then every
/// commit visible before it is at or before the position), so it waits for the reading in
/// flight to end and the next one to be made, by itself or by another thread. Under load one
/// round trip serves many requests. The requests a reading satisfies wait on one condition and
/// those that need the next on the other, so each request is woken once, and the end of a
/// reading wakes one of the next ones to make it.
final class WALPositionReader: @unchecked Sendable {
    /// `pg_current_wal_insert_lsn()`: every commit other sessions can see, whatever its
    /// `synchronous_commit` (an asynchronous commit is visible before it is flushed, so the
    /// flush position may be behind it), is at or before it. The insert position of a record
    /// that would begin a page is past the page's header, where no record ends: it is taken
    /// back to the page's start (a segment's first page has a 40-byte header, the others 24),
    /// where the feed's position can be.
    static let statement = PreparedStatement(
        name: "wal_end",
        sql: """
            SELECT CASE
              WHEN (p - '0/0') % pg_size_bytes(current_setting('wal_segment_size')) = 40 THEN p - 40
              WHEN (p - '0/0') % current_setting('wal_block_size')::int = 24 THEN p - 24
              ELSE p END
            FROM pg_current_wal_insert_lsn() AS p
            """)

    /// Condition `n % 2`: the requests that reading `n` satisfies.
    private let lock = ConditionLock(conditions: 2)
    private var started: UInt64 = 0
    private var finished: UInt64 = 0
    private var reading = false
    private var latest: LSN?

    /// A position read after this call began, on `db` when this thread makes the reading.
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
