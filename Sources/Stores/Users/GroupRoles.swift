import Auth
import PG

/// The roles of Cognito groups (`group_roles`, sql/admin/grant_group_role.sql): the whole table
/// loaded by the change feed each time it connects, then kept current from the changes it
/// streams, as the revoked sessions are.
package final class GroupRoles: FeedState<[String: Authorization.Role]>, @unchecked Sendable {
    package init() { super.init([:]) }

    /// The table as the feed loaded it (a role the worker does not know counts as none).
    package func replace(with rows: [String: String]) {
        replace(with: rows.compactMapValues(Authorization.Role.init(rawValue:)))
    }

    /// Applies a transaction's changes, in order.
    package func apply(_ updates: [RoleChange]) {
        guard !updates.isEmpty else { return }
        update { roles in
            for update in updates {
                switch update {
                case .grant(let group, let role): roles[group] = Authorization.Role(rawValue: role)
                case .revoke(let group): roles[group] = nil
                case .clear: roles.removeAll()
                }
            }
        }
    }

    /// The roles of `groups`, from the table itself: while the change feed is down, the copy
    /// may be behind.
    package static let ofGroups = PreparedStatement(
        name: "group_roles_of", sql: "SELECT group_name, role FROM group_roles WHERE group_name = ANY($1::text[])")

    package static func load(_ groups: [String], in db: any Database) async throws(PGError) -> [String: Authorization.Role] {
        var roles: [String: Authorization.Role] = [:]
        guard !groups.isEmpty else { return roles }
        for row in try await db.query(ofGroups, groups) {
            roles[try row.decode(String.self, at: 0)] = Authorization.Role(rawValue: try row.decode(String.self, at: 1))
        }
        return roles
    }
}
