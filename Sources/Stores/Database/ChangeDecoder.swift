import Auth
import PG

/// Turns `pgoutput` messages into each transaction's `Change`s, revocations and group roles.
package struct ChangeDecoder {
    package struct Commit {
        package var changes: [Change]
        package var revocations: [SessionChange]
        package var roles: [RoleChange]
        package var pools: [PoolChange]
        package var xid: UInt32
        package var end: LSN
        package var commitTime: Int64
        /// A revocation or role the decoder could not read: the feed must load them again.
        package var unreadable: Bool
    }

    private enum Table { case users, articles, revokedSessions, groupRoles, trustedPools }
    private enum Operation { case insert, update, delete }
    /// Relations by id: which table, where its key column is, and its columns' names.
    private var relations: [UInt32: (table: Table, key: Int, columns: [String])] = [:]
    private var changes: [Change] = []
    private var revocations: [SessionChange] = []
    private var roles: [RoleChange] = []
    private var pools: [PoolChange] = []
    private var unreadable = false
    private var xid: UInt32 = 0
    package private(set) var inTransaction = false

    /// The transaction's changes once `message` commits it, else nil.
    package mutating func decode(_ message: PGOutputMessage) -> Commit? {
        switch message {
        case .begin(let xid):
            self.xid = xid
            inTransaction = true
            changes.removeAll(keepingCapacity: true)
            revocations.removeAll(keepingCapacity: true)
            roles.removeAll(keepingCapacity: true)
            pools.removeAll(keepingCapacity: true)
            unreadable = false
        case .relation(let id, _, let name, let columns):
            let table: Table? = switch name {
            case "users": .users
            case "articles": .articles
            case "revoked_sessions": .revokedSessions
            case "group_roles": .groupRoles
            case "trusted_pools": .trustedPools
            default: nil
            }
            let keyColumn = switch table {
            case .revokedSessions: "origin_jti"
            case .groupRoles: "group_name"
            case .trustedPools: "pool_id"
            default: "id"
            }
            let key = columns.firstIndex(of: keyColumn) ?? -1
            relations[id] = table.map { ($0, key, columns) }
        case .insert(let relation, let new):
            row(.insert, relation, old: nil, new: new)
        case .update(let relation, let old, let new):
            row(.update, relation, old: old, new: new)
        case .delete(let relation, let key):
            row(.delete, relation, old: key, new: nil)
        case .truncate(let truncated):
            for relation in truncated {
                switch relations[relation]?.table {
                case .revokedSessions: revocations.append(.clear)
                case .groupRoles: roles.append(.clear)
                case .trustedPools: pools.append(.clear)
                case .users, .articles: changes.append(.everything)
                case nil: break
                }
            }
        case .commit(let end, let commitTime):
            inTransaction = false
            // A transaction of many changes (a bulk load) empties the caches rather than
            // flooding the log.
            let collapsed = changes.count > ChangeLog.capacity / 4 ? [.everything] : changes
            return Commit(
                changes: collapsed, revocations: revocations, roles: roles, pools: pools, xid: xid, end: end, commitTime: commitTime,
                unreadable: unreadable)
        case .other:
            break
        }
        return nil
    }

    /// `old` is the key before the change (deletes; updates that changed it), `new` the row after.
    private mutating func row(
        _ operation: Operation, _ relation: UInt32, old: [PGOutputMessage.Value]?, new: [PGOutputMessage.Value]?
    ) {
        guard let (table, key, columns) = relations[relation] else { return }
        func text(_ values: [PGOutputMessage.Value]?, at column: Int = key) -> String? {
            guard let values, column >= 0, column < values.count, case .text(let value) = values[column] else { return nil }
            return value
        }
        func text(_ values: [PGOutputMessage.Value]?, _ name: String) -> String? {
            columns.firstIndex(of: name).flatMap { text(values, at: $0) }
        }
        let after = text(new)
        let before = text(old) ?? (operation == .update ? after : nil)
        switch table {
        case .groupRoles:
            // Keyed by pool and group name: an old key (deletes; updates that changed it)
            // carries both, as the row after does.
            func group(_ values: [PGOutputMessage.Value]?) -> Authorization.Group? {
                guard let name = text(values), let pool = text(values, "pool_id") else { return nil }
                return Authorization.Group(pool: pool, name: name)
            }
            let after = group(new)
            let before = group(old) ?? (operation == .update ? after : nil)
            if let before, before != after || operation == .delete { roles.append(.revoke(before)) }
            if let after {
                guard let role = text(new, "role") else {
                    unreadable = true
                    return
                }
                roles.append(.grant(after, role))
            }
            if before == nil && after == nil { unreadable = true }
            return
        case .trustedPools:
            if let before, before != after || operation == .delete { pools.append(.distrust(before)) }
            if let after {
                guard let clientIDs = text(new, "client_ids"), let tokenUse = text(new, "token_use") else {
                    unreadable = true
                    return
                }
                pools.append(.trust(after, PoolRow(clientIDs: clientIDs, tokenUse: tokenUse, jwksURL: text(new, "jwks_url"))))
            }
            if before == nil && after == nil { unreadable = true }
            return
        default:
            break
        }
        if table == .revokedSessions {
            if let before, before != after || operation == .delete { revocations.append(.unrevoke(before)) }
            if let after { revocations.append(.revoke(after)) }
            if before == nil && after == nil { unreadable = true }
            return
        }
        let beforeID = before.flatMap { Int64($0) }
        let afterID = after.flatMap { Int64($0) }
        guard (operation == .insert || beforeID != nil) && (operation == .delete || afterID != nil) else {
            // A key the decoder cannot read: nothing cached can be trusted.
            changes.append(.everything)
            return
        }
        switch (table, operation) {
        case (.users, .insert):
            break  // a new row changes no cached answer
        case (.users, _):
            changes.append(.userChanged(beforeID!))
            if let afterID, afterID != beforeID { changes.append(.userChanged(afterID)) }
        case (.articles, .insert):
            changes.append(.articleInserted(afterID!))
        case (.articles, .delete):
            changes.append(.articleDeleted(beforeID!))
        case (.articles, .update) where beforeID == afterID:
            changes.append(.articleUpdated(afterID!))
        case (.articles, .update):
            changes.append(.articleDeleted(beforeID!))
            changes.append(.articleInserted(afterID!))
        case (.revokedSessions, _), (.groupRoles, _), (.trustedPools, _):
            break
        }
    }
}
