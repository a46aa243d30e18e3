import Synchronization

/// Sign-in sessions revoked with sql/admin/revoke_session.sql, by the `origin_jti` their tokens
/// carry: the whole set loaded by the change feed each time it connects, then kept current from
/// the changes to `revoked_sessions` it streams. Kept in memory, so the check is a set lookup;
/// each serving thread reads a copy of its own, taken again only after a change.
final class RevokedSessions: Sendable {
    private let current = Mutex<Set<String>>([])
    private let changes = Atomic<Int>(0)

    func replace(with sessions: Set<String>) {
        current.withLock { $0 = sessions }
        changes.add(1, ordering: .releasing)
    }

    /// Applies a transaction's changes, in order.
    func apply(_ updates: [SessionChange]) {
        guard !updates.isEmpty else { return }
        current.withLock { sessions in
            for update in updates {
                switch update {
                case .revoke(let session): sessions.insert(session)
                case .unrevoke(let session): sessions.remove(session)
                case .clear: sessions.removeAll()
                }
            }
        }
        changes.add(1, ordering: .releasing)
    }

    /// One serving thread's copy.
    final class View {
        private let shared: RevokedSessions
        private var sessions: Set<String> = []
        private var seen = -1

        init(_ shared: RevokedSessions) { self.shared = shared }

        func contains(_ originJTI: String) -> Bool {
            let changes = shared.changes.load(ordering: .acquiring)
            if changes != seen {
                sessions = shared.current.withLock { $0 }
                seen = changes
            }
            return sessions.contains(originJTI)
        }
    }
}
