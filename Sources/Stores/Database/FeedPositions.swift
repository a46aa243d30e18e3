import PG
import Support
import Synchronization

/// The WAL position up to which the change feed has applied every commit, which requests may
/// wait for: a waiting request is parked in its loop, and the feed's thread hands each loop the
/// waits it satisfied.
package final class AppliedPosition: Sendable {
    private let position = Atomic<UInt64>(0)
    private let waits = Mutex<[(target: UInt64, wait: LoopWait)]>([])

    package var value: UInt64 { position.load(ordering: .sequentiallyConsistent) }

    /// Moves forward to `target` (never back).
    package func advance(to target: UInt64) {
        guard target > position.load(ordering: .relaxed) else { return }
        position.store(target, ordering: .sequentiallyConsistent)
        wake()
    }

    /// Sets the position after the feed connected again (a failover may have moved it back).
    package func reset(to target: UInt64) {
        position.store(target, ordering: .sequentiallyConsistent)
        wake()
    }

    /// Whether the position reached `target`, waiting up to `timeout` for it, parked in `loop`
    /// (the caller's).
    package func wait(for target: UInt64, timeout: Duration, on loop: EventLoop) async -> Bool {
        if value >= target { return true }
        guard timeout > .zero else { return false }
        let wait = LoopWait(loop: loop)
        await wait.park(until: monotonicNanoseconds() + timeout.nanoseconds) {
            waits.withLock { $0.append((target, wait)) }
            // The position may have moved before the wait was listed.
            if value >= target { wait.resume() }
        } unlist: { [self] in
            waits.withLock { $0.removeAll { $0.wait === wait } }
        }
        return value >= target
    }

    /// Hands the waits the position satisfies to their loops, one call per loop.
    private func wake() {
        let now = value
        let due = waits.withLock { waits -> [LoopWait] in
            guard !waits.isEmpty else { return [] }
            defer { waits.removeAll { $0.target <= now } }
            return waits.filter { $0.target <= now }.map(\.wait)
        }
        var byLoop: [ObjectIdentifier: [LoopWait]] = [:]
        for wait in due { byLoop[ObjectIdentifier(wait.loop), default: []].append(wait) }
        for waits in byLoop.values {
            waits[0].loop.execute { for wait in waits { wait.resume() } }
        }
    }
}

/// The end of the database's WAL as one loop's requests read it, once at a time for all of them:
/// a request needs a reading that began after it arrived (then every commit visible before it
/// is at or before the position), so it waits for the reading in flight to end and the next one
/// to be made, by itself or by another request of the loop. Under load one round trip serves
/// many requests. Touched on its loop only.
package final class WALPositionReader {
    /// `pg_current_wal_insert_lsn()`: every commit other sessions can see, whatever its
    /// `synchronous_commit` (an asynchronous commit is visible before it is flushed, so the
    /// flush position may be behind it), is at or before it.
    package static let statement = PreparedStatement(name: "wal_end", sql: "SELECT pg_current_wal_insert_lsn()")
    /// The cluster's WAL page and segment sizes, read once.
    package static let sizes = PreparedStatement(
        name: "wal_sizes", sql: "SELECT current_setting('wal_block_size')::int8, pg_size_bytes(current_setting('wal_segment_size'))")

    /// Where a record inserted at `position` may end at the latest: the insert position of a
    /// record that would begin a page is past the page's header, where no record ends, so it is
    /// taken back to the page's start (a segment's first page has a 40-byte header, the others
    /// 24), where the feed's position can be.
    package static func recordEnd(_ position: LSN, pageSize: UInt64, segmentSize: UInt64) -> LSN {
        guard pageSize > 0, segmentSize > 0 else { return position }
        if position.value % segmentSize == 40 { return LSN(position.value - 40) }
        if position.value % pageSize == 24 { return LSN(position.value - 24) }
        return position
    }

    private var pageSize: UInt64 = 0
    private var segmentSize: UInt64 = 0
    private var started: UInt64 = 0
    private var finished: UInt64 = 0
    private var reading = false
    private var latest: LSN?
    /// The requests parked until the reading in flight ends.
    private var parked: [UnsafeContinuation<Void, Never>] = []

    /// A position read after this call began, on `db` when this request makes the reading.
    package func position(using db: any Database) async throws -> LSN? {
        let needed = started + 1
        while finished < needed {
            guard !reading else {
                await withUnsafeContinuation { parked.append($0) }
                continue
            }
            reading = true
            started += 1
            let mine = started
            defer {
                reading = false
                // Each looks again: the ones this reading satisfies return, the first of the
                // others makes the next.
                let waking = parked
                parked.removeAll()
                for each in waking { each.resume() }
            }
            // The loop's reading, no one principal's.
            let shared = RequestScope(deadline: LoopDatabase.scope?.deadline ?? monotonicNanoseconds() + LoopDatabase.defaultWait.nanoseconds)
            let position = try await LoopDatabase.$scope.withValue(shared) { () async throws -> LSN? in
                if pageSize == 0, let row = try await db.query(Self.sizes).first {
                    (pageSize, segmentSize) = (UInt64(try row.decode(Int64.self, at: 0)), UInt64(try row.decode(Int64.self, at: 1)))
                }
                return try await db.query(Self.statement).first?.decode(LSN?.self, at: 0)
            }
            finished = mine
            latest = position.map { Self.recordEnd($0, pageSize: pageSize, segmentSize: segmentSize) }
        }
        return latest
    }
}
