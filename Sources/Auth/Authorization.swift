import HTTP
import Support

/// Who may do what with a verified token (docs/api.md, "Who may do what"): for any token, its
/// principal's role (from its `cognito:groups`: the roles of its own pool's groups,
/// `COGNITO_ADMIN_GROUP` for the worker's own pool, else `COGNITO_DEFAULT_ROLE`); with
/// `COGNITO_RESOURCE_SERVER`, an access token's scopes too. Decided from the claims and the
/// groups' roles, before the database is asked about the caller.
package struct Authorization: Sendable, Equatable {
    /// What a request does with the articles.
    package enum Action: String, Sendable {
        case read, write, admin
    }

    /// A principal's role: the highest of its groups' (`group_roles`), else `defaultRole`.
    package enum Role: String, Sendable, Comparable, CaseIterable {
        /// Reads only.
        case reader
        /// Also creates, and changes its own.
        case writer
        /// Also changes anyone's.
        case admin

        package static func < (a: Role, b: Role) -> Bool { allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)! }
    }

    /// A Cognito group of one pool (`group_roles` rows name both): a group name means nothing
    /// across pools, since each pool's administrators name their own groups.
    package struct Group: Hashable, Sendable {
        /// The pool as the `users` table keys it (`Claims.poolKey`: empty for the worker's own).
        package var pool: String
        package var name: String

        package init(pool: String, name: String) {
            self.pool = pool
            self.name = name
        }
    }

    /// `COGNITO_ADMIN_GROUP`: members (by `cognito:groups`) of the worker's own pool have the
    /// admin role.
    package var adminGroup: String? = nil
    /// `COGNITO_DEFAULT_ROLE`: the role of a principal none of whose groups has one.
    package var defaultRole = Role.writer
    /// `COGNITO_RESOURCE_SERVER`: the resource server identifier (`articles`,
    /// `https://api.example.com`) whose `{id}/read`, `{id}/write` and `{id}/admin` scopes an
    /// access token needs; nil, scopes are not checked.
    package var resourceServer: String? = nil

    /// The scope an access token needs for `action`.
    package func scope(_ action: Action) -> String? { resourceServer.map { "\($0)/\(action.rawValue)" } }

    /// Whether `claims`' scopes allow `action`: reads need the read scope, writes the write or
    /// admin scope, changing another's article the admin scope. ID tokens carry no scopes
    /// (roles govern them), and without a resource server scopes are not checked.
    package func scopesAllow(_ action: Action, _ claims: Claims) -> Bool {
        guard claims.tokenUse == .access, let needed = scope(action) else { return true }
        return claims.scopes.contains(needed) || (action == .write && claims.scopes.contains(scope(.admin)!))
    }

    /// The role of the principal `claims` name, `roles` being the groups' roles: only the
    /// roles of groups of the token's own pool count.
    package func role(_ claims: Claims, roles: [Group: Role]) -> Role {
        var role: Role?
        let pool = claims.poolKey
        for group in claims.groups {
            if claims.poolID == nil, group == adminGroup { return .admin }
            if let mapped = roles[Group(pool: pool, name: group)] { role = max(role ?? mapped, mapped) }
        }
        return role ?? defaultRole
    }

    /// Throws 403 unless the principal's role allows `action` (a reader may not write) and,
    /// for an access token, its scopes do (`insufficient_scope`, RFC 6750 §3.1, naming the
    /// scope it needs).
    package func require(_ action: Action, _ claims: Claims, roles: [Group: Role]) throws(HTTPError) {
        if action != .read, role(claims, roles: roles) == .reader { throw Self.forbidden }
        guard scopesAllow(action, claims) else { throw insufficientScope(action) }
    }

    /// Throws 403 unless `claims` may change an article they do not own. A user needs the
    /// admin role (Cognito grants scopes per app client, so every user of a client allowed the
    /// admin scope has it) and, with a resource server, an access token also the admin scope.
    /// A machine client has no groups: with a resource server, the admin scope is what it needs.
    package func requireChangingAnothers(_ claims: Claims, roles: [Group: Role]) throws(HTTPError) {
        let scoped = claims.tokenUse == .access && resourceServer != nil
        if scoped {
            guard scopesAllow(.admin, claims) else { throw insufficientScope(.admin) }
            if claims.isMachineClient { return }
        }
        guard role(claims, roles: roles) == .admin else { throw Self.forbidden }
    }

    package static let forbidden = HTTPError(status: .forbidden, detail: "You do not have permission to perform this action.")

    private func insufficientScope(_ action: Action) -> HTTPError {
        let needed = scope(action)!
        return HTTPError(
            status: .forbidden, detail: "The token's scopes do not allow this: it needs \(needed).",
            headers: [("WWW-Authenticate", #"Bearer error="insufficient_scope", scope="\#(needed)""#)])
    }

    /// `COGNITO_DEFAULT_ROLE`: `writer` (the default) or `reader`.
    package static func defaultRole(_ text: String?) throws(ConfigError) -> Role {
        guard let text else { return .writer }
        guard let role = Role(rawValue: text), role != .admin else {
            throw ConfigError("COGNITO_DEFAULT_ROLE must be writer or reader, got \"\(text)\"")
        }
        return role
    }

    /// `COGNITO_RESOURCE_SERVER`: printable ASCII without spaces, quotes or backslashes (it is
    /// written into `WWW-Authenticate`), 1 to 256 characters, no trailing slash.
    package static func resourceServer(_ text: String?) throws(ConfigError) -> String? {
        guard let text else { return nil }
        guard (1...256).contains(text.utf8.count), !text.hasSuffix("/"),
            text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") })
        else {
            throw ConfigError(
                "COGNITO_RESOURCE_SERVER must be a resource server identifier (e.g. articles or https://api.example.com: "
                    + "printable, no spaces, quotes or trailing slash), got \"\(text)\"")
        }
        return text
    }
}
