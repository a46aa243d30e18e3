import Auth

/// Where the feed sends what the workers keep whole besides their caches, the revoked
/// sessions, the groups' roles and the trusted pools: each table loaded at each (re)connect,
/// then each committed transaction's changes to it, in order. Registered at start-up.
package struct FeedHandlers: Sendable {
    package let loadSessions: @Sendable (Set<String>) -> Void
    package let applySessions: @Sendable ([SessionChange]) -> Void
    package var loadRoles: @Sendable ([Authorization.Group: String]) -> Void = { _ in }
    package var applyRoles: @Sendable ([RoleChange]) -> Void = { _ in }
    package var loadPools: @Sendable ([String: PoolRow]) -> Void = { _ in }
    package var applyPools: @Sendable ([PoolChange]) -> Void = { _ in }

    package init(
        loadSessions: @escaping @Sendable (Set<String>) -> Void, applySessions: @escaping @Sendable ([SessionChange]) -> Void,
        loadRoles: @escaping @Sendable ([Authorization.Group: String]) -> Void = { _ in }, applyRoles: @escaping @Sendable ([RoleChange]) -> Void = { _ in },
        loadPools: @escaping @Sendable ([String: PoolRow]) -> Void = { _ in }, applyPools: @escaping @Sendable ([PoolChange]) -> Void = { _ in }
    ) {
        self.loadSessions = loadSessions
        self.applySessions = applySessions
        self.loadRoles = loadRoles
        self.applyRoles = applyRoles
        self.loadPools = loadPools
        self.applyPools = applyPools
    }
}
