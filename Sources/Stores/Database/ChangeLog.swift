import PG
import Synchronization

/// The changes the feed applied, in order, for the serving loops to apply to their caches: the
/// last `capacity` of them. A loop that fell further behind empties its caches.
///
/// The feed reads a commit once it is flushed, a moment before the transaction becomes visible
/// to other sessions' snapshots. So the log also keeps the ids of the last `capacity`
/// transactions it logged changes of, and hands a loop the highest of them with the changes:
/// an answer loaded with a snapshot that hides one of the transactions the loop applied may
/// predate a change its cache already applied, and is not kept (`mayHaveMissed`).
package final class ChangeLog: Sendable {
    package static let capacity = 16_384

    private struct Ring: ~Copyable {
        var changes = [Change](repeating: .everything, count: ChangeLog.capacity)
        var count: UInt64 = 0
        var xids = [UInt32](repeating: 0, count: ChangeLog.capacity)
        var transactions = 0
        var recent = Set<UInt32>()
        var highest: UInt32?
        /// The snapshot the feed's slot started from: it shows every commit the feed will not
        /// send, so an answer loaded in a snapshot that hides one of them may be older than
        /// what the feed's start counts as applied.
        var start: Snapshot?
    }

    private let ring = Mutex(Ring())
    private let count = Atomic<UInt64>(0)

    /// How many changes were ever appended: a loop that has applied this many is up to date.
    package var total: UInt64 { count.load(ordering: .acquiring) }

    /// Appends `new`, the changes of transaction `xid` (nil: not a transaction's).
    package func append(_ new: [Change], of xid: UInt32?) {
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

    /// The feed (re)connected from `start` (its slot's snapshot): everything cached before is
    /// dropped.
    package func restart(from start: Snapshot?) {
        ring.withLock { $0.start = start }
        append([.everything], of: nil)
    }

    /// Whether an answer loaded with `snapshot` may miss a change a loop applied, the
    /// transactions it applied going up to id `highest` (from `changes(after:)`): the snapshot
    /// hides that id or higher ones, saw a logged transaction running, or hides one that the
    /// feed's start showed. True without a snapshot.
    package func mayHaveMissed(_ snapshot: Snapshot?, appliedUpTo highest: UInt32?) -> Bool {
        guard let snapshot else { return true }
        if let highest, snapshot.hides(highest) { return true }
        return ring.withLock { ring in
            if let start = ring.start, snapshot.hidesAny(shownBy: start) { return true }
            return snapshot.running.contains(where: ring.recent.contains)
        }
    }

    /// The changes after the first `seen`, how many there are in all, and the highest id of the
    /// transactions logged so far; nil changes when some of them are no longer kept.
    package func changes(after seen: UInt64) -> (changes: [Change]?, total: UInt64, highest: UInt32?) {
        ring.withLock { ring in
            guard ring.count - seen <= UInt64(Self.capacity) else { return (nil, ring.count, ring.highest) }
            let changes = (seen..<ring.count).map { ring.changes[Int($0 % UInt64(Self.capacity))] }
            return (changes, ring.count, ring.highest)
        }
    }
}
