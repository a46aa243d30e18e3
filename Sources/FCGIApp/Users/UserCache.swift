import PG

/// One serving thread's users by Cognito `sub`, so a request with a known token needs no user
/// lookup. It is emptied whenever the `users` table changes (migration 0005 notifies
/// `articles_users_changed` on every update or delete, and the thread's connection listens),
/// and whenever the connection was lost, since notifications may have been missed.
final class UserCache {
    static let channel = "articles_users_changed"

    private let capacity: Int
    private var users: [String: User] = [:]
    private(set) var session = -1

    init(capacity: Int = 10_000) { self.capacity = capacity }

    /// The cached user for `sub`, after dropping everything if the table may have changed.
    func user(for sub: String, in db: Connection) -> User? {
        if !db.notifications().isEmpty || !db.isConnected || db.session != session {
            users.removeAll(keepingCapacity: true)
            session = db.session
        }
        return users[sub]
    }

    func insert(_ user: User, for sub: String) {
        if users.count >= capacity { users.removeAll(keepingCapacity: true) }
        users[sub] = user
    }
}
