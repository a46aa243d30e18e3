import Auth
import PG

/// The roles of Cognito groups, each of one pool (`group_roles`, sql/admin/grant_group_role.sql):
/// the whole table loaded by the change feed each time it connects, then kept current from the
/// changes it streams, as the revoked sessions are. A row that names the worker's own pool by
/// its id counts as the own pool's (`Claims.poolKey`, the empty key).
package final class GroupRoles: FeedState<[Authorization.Group: Authorization.Role]>, @unchecked Sendable {
    private let ownPoolID: String

    package init(ownPoolID: String) {
        self.ownPoolID = ownPoolID
        super.init([:])
    }

    /// `group` with the own pool's id as the empty key, as tokens of the own pool look it up.
    private func keyed(_ group: Authorization.Group) -> Authorization.Group {
        group.pool == ownPoolID ? Authorization.Group(pool: "", name: group.name) : group
    }

    /// The table as the feed loaded it (a role the worker does not know counts as none).
    package func replace(with rows: [Authorization.Group: String]) {
        var roles: [Authorization.Group: Authorization.Role] = [:]
        for (group, role) in rows { roles[keyed(group)] = Authorization.Role(rawValue: role) }
        replace(with: roles)
    }

    /// Applies a transaction's changes, in order.
    package func apply(_ updates: [RoleChange]) {
        guard !updates.isEmpty else { return }
        update { roles in
            for update in updates {
                switch update {
                case .grant(let group, let role): roles[keyed(group)] = Authorization.Role(rawValue: role)
                case .revoke(let group): roles[keyed(group)] = nil
                case .clear: roles.removeAll()
                }
            }
        }
    }

    /// The roles of `groups` of a pool (its key and, for the own pool, its id), from the table
    /// itself: while the change feed is down, the copy may be behind.
    package static let ofGroups = PreparedStatement(
        name: "group_roles_of",
        sql: "SELECT group_name, role FROM group_roles WHERE group_name = ANY($1::text[]) AND pool_id = ANY($2::text[])")

    /// The roles of the groups `claims` name, in their pool.
    package func load(_ claims: Claims, in db: any Database) async throws(PGError) -> [Authorization.Group: Authorization.Role] {
        var roles: [Authorization.Group: Authorization.Role] = [:]
        guard !claims.groups.isEmpty else { return roles }
        let pools = claims.poolID == nil ? ["", ownPoolID] : [claims.poolKey]
        for row in try await db.query(Self.ofGroups, claims.groups, pools) {
            let group = Authorization.Group(pool: claims.poolKey, name: try row.decode(String.self, at: 0))
            guard let role = Authorization.Role(rawValue: try row.decode(String.self, at: 1)) else { continue }
            roles[group] = max(roles[group] ?? role, role)
        }
        return roles
    }
}
