import PG
import Synchronization

/// The roles of Cognito groups (`group_roles`, sql/admin/grant_group_role.sql): the whole table
/// loaded by the change feed each time it connects, then kept current from the changes it
/// streams, as the revoked sessions are. Each serving thread reads a copy of its own, taken
/// again only after a change.
final class GroupRoles: Sendable {
    private let current = Mutex<[String: Authorization.Role]>([:])
    private let changes = Atomic<Int>(0)

    func replace(with roles: [String: Authorization.Role]) {
        current.withLock { $0 = roles }
        changes.add(1, ordering: .releasing)
    }

    /// The table as the feed loaded it (a role the worker does not know counts as none).
    func replace(with rows: [String: String]) {
        replace(with: rows.compactMapValues(Authorization.Role.init(rawValue:)))
    }

    /// Applies a transaction's changes, in order.
    func apply(_ updates: [RoleChange]) {
        guard !updates.isEmpty else { return }
        current.withLock { roles in
            for update in updates {
                switch update {
                case .grant(let group, let role): roles[group] = Authorization.Role(rawValue: role)
                case .revoke(let group): roles[group] = nil
                case .clear: roles.removeAll()
                }
            }
        }
        changes.add(1, ordering: .releasing)
    }

    /// The roles of `groups`, from the table itself: while the change feed is down, the copy
    /// may be behind.
    static let ofGroups = PreparedStatement(
        name: "group_roles_of", sql: "SELECT group_name, role FROM group_roles WHERE group_name = ANY($1::text[])")

    static func load(_ groups: [String], in db: Connection) throws(PGError) -> [String: Authorization.Role] {
        var roles: [String: Authorization.Role] = [:]
        guard !groups.isEmpty else { return roles }
        for row in try db.query(ofGroups, groups) {
            roles[try row.decode(String.self, at: 0)] = Authorization.Role(rawValue: try row.decode(String.self, at: 1))
        }
        return roles
    }

    /// One serving thread's copy.
    final class View {
        private let shared: GroupRoles
        private var roles: [String: Authorization.Role] = [:]
        private var seen = -1

        init(_ shared: GroupRoles) { self.shared = shared }

        var all: [String: Authorization.Role] {
            let changes = shared.changes.load(ordering: .acquiring)
            if changes != seen {
                roles = shared.current.withLock { $0 }
                seen = changes
            }
            return roles
        }
    }
}
