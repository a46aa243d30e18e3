import Synchronization

/// What the change feed keeps whole for the serving loops (the revoked sessions, the groups'
/// roles): replaced at each (re)connect and changed by each commit, under a lock. Each serving
/// loop reads a copy of its own (`View`), taken again only after a change, so its reads take
/// no lock.
package class FeedState<Value: Sendable>: @unchecked Sendable {
    private let current: Mutex<Value>
    private let changes = Atomic<Int>(0)

    package init(_ initial: Value) { current = Mutex(initial) }

    package func replace(with value: Value) {
        current.withLock { $0 = value }
        changes.add(1, ordering: .releasing)
    }

    /// Applies a transaction's changes.
    package func update(_ change: (inout Value) -> Void) {
        current.withLock { change(&$0) }
        changes.add(1, ordering: .releasing)
    }

    /// One serving loop's copy.
    package final class View {
        private let shared: FeedState<Value>
        private var copy: Value
        private var seen = -1

        package init(_ shared: FeedState<Value>) {
            self.shared = shared
            copy = shared.current.withLock { $0 }
        }

        package var value: Value {
            let changes = shared.changes.load(ordering: .acquiring)
            if changes != seen {
                copy = shared.current.withLock { $0 }
                seen = changes
            }
            return copy
        }
    }
}
