/// One serving loop's users by Cognito `sub`, so a request with a known token needs no user
/// lookup. A user's entry is dropped when the change feed reports a change to that user's row
/// (an administrator's deactivation, a revocation, a deletion, a binding); whether the cache
/// may be used for a request is the caller's decision (`LoopCaches.areCurrent`).
package final class UserCache {
    private let capacity: Int
    private var users: [String: User] = [:]
    /// The `sub` each cached user id is kept under.
    private var subs: [Int64: String] = [:]

    package init(capacity: Int = 10_000) {
        self.capacity = capacity
    }

    /// The user for `sub`, from the cache or from `load` (nil, not kept, when there is none),
    /// which also says whether it may be kept.
    package func user(for sub: String, load: () async throws -> (User, keep: Bool)?) async rethrows -> User? {
        if let user = users[sub] { return user }
        guard let (user, keep) = try await load() else { return nil }
        guard keep else { return user }
        if users.count >= capacity { removeAll() }
        if let previous = subs.updateValue(sub, forKey: user.id), previous != sub { users[previous] = nil }
        users[sub] = user
        return user
    }

    /// Drops what `change` may have made wrong.
    package func apply(_ change: Change) {
        switch change {
        case .userChanged(let id):
            if let sub = subs.removeValue(forKey: id) { users[sub] = nil }
        case .everything:
            removeAll()
        case .articleInserted, .articleUpdated, .articleDeleted:
            break
        }
    }

    package func removeAll() {
        users.removeAll(keepingCapacity: true)
        subs.removeAll(keepingCapacity: true)
    }
}
