/// Who may do what with a verified token (docs/api.md, "Who may do what"): with
/// `COGNITO_RESOURCE_SERVER`, an access token's scopes; for any token, `COGNITO_ADMIN_GROUP`.
/// Decided from the claims alone, before the database is asked anything.
struct Authorization: Sendable, Equatable {
    /// What a request does with the articles.
    enum Action: String, Sendable {
        case read, write, admin
    }

    /// `COGNITO_ADMIN_GROUP`: members (by `cognito:groups`) may change any article.
    var adminGroup: String? = nil
    /// `COGNITO_RESOURCE_SERVER`: the resource server identifier (`articles`,
    /// `https://api.example.com`) whose `{id}/read`, `{id}/write` and `{id}/admin` scopes an
    /// access token needs; nil, scopes are not checked.
    var resourceServer: String? = nil

    /// The scope an access token needs for `action`.
    func scope(_ action: Action) -> String? { resourceServer.map { "\($0)/\(action.rawValue)" } }

    /// Whether `claims`' scopes allow `action`: reads need the read scope, writes the write or
    /// admin scope, changing another's article the admin scope. ID tokens carry no scopes
    /// (roles govern them), and without a resource server scopes are not checked.
    func scopesAllow(_ action: Action, _ claims: Claims) -> Bool {
        guard claims.tokenUse == .access, let needed = scope(action) else { return true }
        return claims.scopes.contains(needed) || (action == .write && claims.scopes.contains(scope(.admin)!))
    }

    /// Throws 403 `insufficient_scope` (RFC 6750 §3.1) naming the scope `action` needs.
    func require(_ action: Action, _ claims: Claims) throws(HTTPError) {
        guard scopesAllow(action, claims) else { throw insufficientScope(action) }
    }

    /// Throws 403 unless `claims` may change an article they do not own: with a resource
    /// server, an access token needs the admin scope; else a member of the admin group may.
    func requireChangingAnothers(_ claims: Claims) throws(HTTPError) {
        if claims.tokenUse == .access, resourceServer != nil {
            try require(.admin, claims)
            return
        }
        guard let adminGroup, claims.groups.contains(adminGroup) else { throw Self.forbidden }
    }

    static let forbidden = HTTPError(status: .forbidden, detail: "You do not have permission to perform this action.")

    private func insufficientScope(_ action: Action) -> HTTPError {
        let needed = scope(action)!
        return HTTPError(
            status: .forbidden, detail: "The token's scopes do not allow this: it needs \(needed).",
            headers: [("WWW-Authenticate", #"Bearer error="insufficient_scope", scope="\#(needed)""#)])
    }

    /// `COGNITO_RESOURCE_SERVER`: printable ASCII without spaces, quotes or backslashes (it is
    /// written into `WWW-Authenticate`), 1 to 256 characters, no trailing slash.
    static func resourceServer(_ text: String?) throws(ConfigError) -> String? {
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
