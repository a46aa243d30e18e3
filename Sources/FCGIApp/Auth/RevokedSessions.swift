import PG
import Synchronization

/// Sign-in sessions revoked with sql/admin/revoke_session.sql, by the `origin_jti` their tokens
/// carry. Loaded before the worker serves, and again by the change feed on every change to
/// `revoked_sessions` (and whenever its connection is made again); kept in memory, so the check
/// is a set lookup. Each serving thread reads a copy of its own, taken again only after a load.
final class RevokedSessions: Sendable {
    static let channel = "articles_sessions_revoked"

    private let current = Mutex<Set<String>>([])
    private let loads = Atomic<Int>(0)

    func load(from db: Connection) throws(PGError) {
        var sessions = Set<String>()
        for row in try db.query("SELECT origin_jti FROM revoked_sessions") { sessions.insert(try row.decode(String.self, at: 0)) }
        current.withLock { $0 = sessions }
        loads.add(1, ordering: .releasing)
    }

    /// One serving thread's copy.
    final class View {
        private let shared: RevokedSessions
        private var sessions: Set<String> = []
        private var seen = -1

        init(_ shared: RevokedSessions) { self.shared = shared }

        func contains(_ originJTI: String) -> Bool {
            let loads = shared.loads.load(ordering: .acquiring)
            if loads != seen {
                sessions = shared.current.withLock { $0 }
                seen = loads
            }
            return sessions.contains(originJTI)
        }
    }
}
