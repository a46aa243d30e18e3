import JSON
import Support

/// What the sign-in page needs to send a user through the pool's managed login
/// (`COGNITO_DOMAIN`, `COGNITO_SCOPES`), served to it as `GET /app-config.json`.
struct SignInConfig: Sendable, Equatable {
    /// `COGNITO_DOMAIN`: the managed login's origin, e.g.
    /// `https://myapp.auth.us-east-1.amazoncognito.com`; nil when sign-in is not configured.
    var domain: String?
    /// `COGNITO_SCOPES`, space-separated.
    var scopes = defaultScopes

    static let defaultScopes = "openid email"
    /// Plain `http://` is for a managed login on this machine only (the local stand-in).
    static let loopbackHosts: Set<String> = ["127.0.0.1", "localhost", "[::1]"]

    static func fromEnvironment(_ value: (String) -> String?) throws(ConfigError) -> SignInConfig {
        var config = SignInConfig()
        if let text = value("COGNITO_DOMAIN") {
            config.domain = try origin(text)
        }
        if let text = value("COGNITO_SCOPES") {
            let scopes = text.split(separator: " ")
            // RFC 6749 §3.3: a scope token is printable ASCII without space, '"' or '\'.
            guard !scopes.isEmpty,
                scopes.allSatisfy({ $0.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x5C } })
            else {
                throw ConfigError("COGNITO_SCOPES must be space-separated scope names, e.g. \"openid email\", got \"\(text)\"")
            }
            guard scopes.contains("openid") else {
                throw ConfigError("COGNITO_SCOPES must include openid: the sign-in page needs the ID token, got \"\(text)\"")
            }
            config.scopes = scopes.joined(separator: " ")
        }
        return config
    }

    /// `https://HOST[:PORT]` (or `http://` on a loopback host), without a path: the managed
    /// login's endpoints are `{domain}/oauth2/authorize`, `{domain}/oauth2/token` and
    /// `{domain}/logout`. One trailing slash is dropped.
    private static func origin(_ text: String) throws(ConfigError) -> String {
        let trimmed = text.hasSuffix("/") ? String(text.dropLast()) : text
        let scheme = trimmed.hasPrefix("https://") ? "https://" : trimmed.hasPrefix("http://") ? "http://" : nil
        let authority = scheme.map { trimmed.dropFirst($0.count) } ?? ""
        let host = authority.hasPrefix("[")
            ? String(authority.prefix { $0 != "]" }) + "]"
            : String(authority.prefix { $0 != ":" })
        let port = authority.dropFirst(host.count)
        guard let scheme, !host.isEmpty, host != "]",
            authority.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }),
            !authority.contains(where: { "/?#@\\".contains($0) }),
            port.isEmpty || (port.first == ":" && Int(port.dropFirst()).map { (1...65535).contains($0) } == true)
        else {
            throw ConfigError(
                "COGNITO_DOMAIN must be the managed login's origin, e.g. https://myapp.auth.us-east-1.amazoncognito.com, got \"\(text)\"")
        }
        guard scheme == "https://" || loopbackHosts.contains(host.lowercased()) else {
            throw ConfigError("COGNITO_DOMAIN must use https:// (plain http:// only on this machine: 127.0.0.1, localhost), got \"\(text)\"")
        }
        return trimmed
    }
}

/// `GET /app-config.json`: what the sign-in page (or any client) needs to sign a user in, from
/// the worker's environment.
struct AppConfig: JSONWritable {
    let domain: String?
    let clientID: String
    let scopes: String
    let tokenUse: String
    /// `COGNITO_ADMIN_GROUP`, only when set: whose members the page offers every article's
    /// buttons to.
    let adminGroup: String?

    init(_ config: Config) {
        domain = config.signIn.domain
        clientID = config.cognito.clientIDs[0]
        scopes = config.signIn.scopes
        tokenUse = config.cognito.tokenUseText
        adminGroup = config.cognito.adminGroup
    }

    func write(to json: inout JSONWriter) {
        json.beginObject()
        json.member("domain", domain)
        json.member("client_id", clientID)
        json.member("scopes", scopes)
        json.member("token_use", tokenUse)
        if let adminGroup { json.member("admin_group", adminGroup) }
        json.endObject()
    }
}
