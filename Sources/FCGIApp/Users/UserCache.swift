/// One serving thread's users by Cognito `sub`, so a request with a known token needs no user
/// lookup. Emptied whenever the `ChangeFeed` counts a change to `users` (an administrator's
/// deactivation, a deletion, a binding), and not used while the feed is not listening.
final class UserCache {
    private let capacity: Int
    private var freshness: CacheFreshness
    private var users: [String: User] = [:]

    init(feed: ChangeFeed, capacity: Int = 10_000) {
        freshness = CacheFreshness(feed: feed, table: .users)
        self.capacity = capacity
    }

    /// The user for `sub`, from the cache or from `load` (nil, not kept, when there is none).
    func user(for sub: String, load: () throws -> User?) rethrows -> User? {
        guard freshness.isUsable(emptying: { users.removeAll(keepingCapacity: true) }) else { return try load() }
        if let user = users[sub] { return user }
        guard let user = try load() else { return nil }
        if users.count >= capacity { users.removeAll(keepingCapacity: true) }
        users[sub] = user
        return user
    }
}
