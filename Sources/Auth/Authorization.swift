import HTTP
import Support

/// Who may do what with a verified token (docs/api.md, "Who may do what"): for any token, its
/// principal's role (from its `cognito:groups`: the groups' roles, `COGNITO_ADMIN_GROUP`, else
/// `COGNITO_DEFAULT_ROLE`); with `COGNITO_RESOURCE_SERVER`, an access token's scopes too.
/// Decided from the claims and the groups' roles, before the database is asked about the caller.
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

    /// `COGNITO_ADMIN_GROUP`: members (by `cognito:groups`) have the admin role.
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

    /// The role of the principal `claims` name, `roles` being the groups' roles.
    package func role(_ claims: Claims, roles: [String: Role]) -> Role {
        var role: Role?
        for group in claims.groups {
            if group == adminGroup { return .admin }
            if let mapped = roles[group] { role = max(role ?? mapped, mapped) }
        }
        return role ?? defaultRole
    }

    /// Throws 403 unless the principal's role allows `action` (a reader may not write) and,
    /// for an access token, its scopes do (`insufficient_scope`, RFC 6750 §3.1, naming the
    /// scope it needs).
    package func require(_ action: Action, _ claims: Claims, roles: [String: Role]) throws(HTTPError) {
        if action != .read, role(claims, roles: roles) == .reader { throw Self.forbidden }
        guard scopesAllow(action, claims) else { throw insufficientScope(action) }
    }

    /// Throws 403 unless `claims` may change an article they do not own: with a resource
    /// server, an access token needs the admin scope; else the admin role.
    package func requireChangingAnothers(_ claims: Claims, roles: [String: Role]) throws(HTTPError) {
        if claims.tokenUse == .access, resourceServer != nil {
            guard scopesAllow(.admin, claims) else { throw insufficientScope(.admin) }
            return
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
