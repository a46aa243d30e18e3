/// Sign-in sessions revoked with sql/admin/revoke_session.sql, by the `origin_jti` their tokens
/// carry: the whole set loaded by the change feed each time it connects, then kept current from
/// the changes to `revoked_sessions` it streams. Kept in memory, so the check is a set lookup.
package final class RevokedSessions: FeedState<Set<String>>, @unchecked Sendable {
    package init() { super.init([]) }

    /// Applies a transaction's changes, in order.
    package func apply(_ updates: [SessionChange]) {
        guard !updates.isEmpty else { return }
        update { sessions in
            for update in updates {
                switch update {
                case .revoke(let session): sessions.insert(session)
                case .unrevoke(let session): sessions.remove(session)
                case .clear: sessions.removeAll()
                }
            }
        }
    }
}
