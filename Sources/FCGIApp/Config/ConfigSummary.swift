import Auth
import FoundationEssentials

/// What `check-config` prints of a configuration, and what it and `serve` warn about.
extension Config {
    /// What `check-config` prints and `serve` logs at start: settings that work, but likely
    /// not as the operator meant.
    var warnings: [String] {
        var warnings = readTimeoutWarning.map { [$0] } ?? []
        if let server = cognito.authorization.resourceServer, cognito.tokenUses.contains(.id) {
            warnings.append(
                "COGNITO_TOKEN_USE=\(cognito.tokenUseText) with COGNITO_RESOURCE_SERVER=\(server): ID tokens carry no scopes and are "
                    + "not scope-checked (their principal's role alone decides), so any app client's ID tokens may do what "
                    + "\(server)/write allows; accept only access tokens (COGNITO_TOKEN_USE=access, the default with a resource server) "
                    + "to have every request scope-checked")
        }
        return warnings
    }

    /// What `check-config` prints: each setting as the worker will use it, secrets masked.
    var summary: [(name: String, value: String)] {
        [
            ("DATABASE_URL", databaseURL.map(Self.maskingPassword) ?? "(unset: libpq defaults from PGHOST, PGDATABASE, ...)"),
            ("DATABASE_FEED_URL", feedURL.map(Self.maskingPassword) ?? "(unset: DATABASE_URL)"),
            ("FCGI_LISTEN", listen?.description ?? "(unset: the socket inherited through LISTEN_FDS or on fd 0)"),
            ("FCGI_THREADS", String(threads)),
            ("FCGI_WEB_SERVER_ADDRS", allowedPeersSummary),
            ("FCGI_REQUEST_TIMEOUT_SECONDS", String(requestTimeoutSeconds)),
            ("DATABASE_STATEMENT_TIMEOUT_SECONDS", String(statementTimeoutSeconds)),
            ("DATABASE_LOCK_TIMEOUT_SECONDS", String(lockTimeoutSeconds)),
            ("LOG_LEVEL", logLevel.rawValue),
            ("LOG_REQUESTS", String(logRequests)),
            ("AWS_USER_POOLS_ID", cognito.poolID),
            ("AWS_APP_CLIENT_ID", cognito.clientIDs.joined(separator: ",")),
            ("COGNITO_TOKEN_USE", cognito.tokenUseText),
            ("COGNITO_ISSUER", cognito.issuerForm.rawValue),
            keySourceSummary,
            ("COGNITO_LEEWAY_SECONDS", String(cognito.leewaySeconds)),
            ("COGNITO_ADMIN_GROUP", cognito.adminGroup ?? "(unset: only owners, and members of groups granted the admin role, change their articles)"),
            ("COGNITO_DEFAULT_ROLE", cognito.authorization.defaultRole.rawValue),
            ("COGNITO_RESOURCE_SERVER", cognito.authorization.resourceServer ?? "(unset: access tokens' scopes are not checked)"),
            ("COGNITO_DOMAIN", signIn.domain ?? "(unset: the sign-in page says sign-in is not configured)"),
            ("COGNITO_SCOPES", signIn.scopes),
            ("CORS_ALLOWED_ORIGINS", cors.isEnabled ? cors.origins.sorted().joined(separator: ",") : "(unset: no cross-origin access)"),
            ("PROVISIONING_SECRET", provisioning?.description ?? "(unset: no provisioning endpoint)"),
            ("AUTO_PROVISION_USERS", String(autoProvisionUsers)),
            ("RATE_LIMIT_READS_PER_MINUTE", readsPerMinute == 0 ? "0 (no limit)" : String(readsPerMinute)),
            ("RATE_LIMIT_WRITES_PER_MINUTE", writesPerMinute == 0 ? "0 (no limit)" : String(writesPerMinute)),
            ("issuer", cognito.issuer),
        ]
    }

    private var keySourceSummary: (name: String, value: String) {
        switch cognito.keySource {
        case .url(let url): ("COGNITO_JWKS_URL", url)
        case .file(let path): ("COGNITO_JWKS_FILE", path)
        }
    }

    /// Replaces the password in a libpq URI (`user:secret@`, `?password=secret`) or keyword
    /// string (`password=secret`) with `***`.
    static func maskingPassword(_ conninfo: String) -> String {
        var text = conninfo
        if text.hasPrefix("postgresql://") || text.hasPrefix("postgres://") {
            let schemeEnd = text.firstRange(of: "://")!.upperBound
            let authorityEnd = text[schemeEnd...].firstIndex { $0 == "/" || $0 == "?" } ?? text.endIndex
            if let at = text[schemeEnd..<authorityEnd].lastIndex(of: "@"),
                let colon = text[schemeEnd..<at].firstIndex(of: ":")
            {
                text.replaceSubrange(text.index(after: colon)..<at, with: "***")
            }
        }
        // password=... as a keyword or a URI query parameter, up to the next space or &.
        var result = ""
        var rest = Substring(text)
        while let match = rest.firstRange(of: "password=") {
            let before = rest[..<match.lowerBound]
            let boundary = before.last
            result += rest[..<match.upperBound]
            rest = rest[match.upperBound...]
            guard boundary == nil || boundary == " " || boundary == "?" || boundary == "&" else { continue }
            var valueEnd = rest.startIndex
            if rest.first == "'" {
                // A quoted keyword value: up to the closing quote that is not escaped.
                var index = rest.index(after: rest.startIndex)
                while index < rest.endIndex, rest[index] != "'" {
                    if rest[index] == "\\" { index = rest.index(after: index) }
                    if index < rest.endIndex { index = rest.index(after: index) }
                }
                valueEnd = index < rest.endIndex ? rest.index(after: index) : index
            } else {
                valueEnd = rest.firstIndex { $0 == " " || $0 == "&" } ?? rest.endIndex
            }
            result += "***"
            rest = rest[valueEnd...]
        }
        return result + rest
    }
}
