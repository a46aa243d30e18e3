import Auth
import FoundationEssentials
import Support

/// The local stand-in for a Cognito user pool that `scripts/run` sets up when no
/// `AWS_USER_POOLS_ID` is given: these ids, and the key in `$RUN_DIR/keys`.
package enum LocalDevelopment {
    package static let poolID = "local-1_ArticlesDev"
    package static let clientID = "articles-local"
    package static let region = "local-1"

    /// `$RUN_DIR/keys`' signing key and its kid in the JWKS beside it (RUN_DIR defaults to
    /// `.run`, as scripts/run's does).
    package static func signingKey(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> (RSAPrivateKey, kid: String) {
        let runDir = environment["RUN_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? ".run"
        let keyPath = "\(runDir)/keys/signing-key.pem"
        guard let pem = FileManager.default.contents(atPath: keyPath),
            let jwks = FileManager.default.contents(atPath: "\(runDir)/keys/jwks.json")
        else {
            throw ConfigError(
                "no local development key at \(keyPath): start the local stack with scripts/run (without AWS_USER_POOLS_ID) first, or set RUN_DIR")
        }
        let key = try RSAPrivateKey(pem: Array(pem))
        let modulus = key.publicKey.parameter("n")
        guard let kid = try KeySet.parse(Array(jwks)).keys.first(where: { $0.value.parameter("n") == modulus })?.key else {
            throw ConfigError("\(runDir)/keys/jwks.json does not publish the key in \(keyPath)")
        }
        return (key, kid.description)
    }

    /// Which token the local pool issues.
    package enum TokenUse: String, CaseIterable {
        case id, access
    }

    /// A UUID-shaped `sub` derived from the email, as Cognito's subs look.
    package static func sub(forEmail email: String) -> String {
        let hex = Hex.encode(sha256(Array("articles-dev-token:\(email.lowercased())".utf8)).prefix(16))
        var parts: [Substring] = []
        var rest = Substring(hex)
        for length in [8, 4, 4, 4, 12] {
            parts.append(rest.prefix(length))
            rest = rest.dropFirst(length)
        }
        return parts.joined(separator: "-")
    }

    /// The Cognito user name of the local pool's user with this email: its local part.
    package static func username(forEmail email: String) -> String { String(email.prefix { $0 != "@" }) }

    /// A token shaped as Cognito issues them for the local pool: an ID token with the sign-in's
    /// `nonce` if there was one, an access token with the granted `scope`; with `client`, a
    /// machine client's access token (the client-credentials grant: its `sub` is the app
    /// client's id, and it has no username or email).
    package static func token(
        key: RSAPrivateKey, kid: String, email: String, sub: String, use: TokenUse, issuedAt: Int, expiresIn: Int,
        issuer form: CognitoConfig.IssuerForm = .original, nonce: String? = nil, scope: String = "aws.cognito.signin.user.admin",
        groups: [String] = [], client: String? = nil
    ) throws -> String {
        let issuer = form.issuer(region: LocalDevelopment.region, poolID: LocalDevelopment.poolID)
        let username = username(forEmail: email)
        var claims: [String: ClaimValue] = [
            "sub": .string(sub), "iss": .string(issuer), "token_use": .string(use.rawValue),
            "auth_time": .int(issuedAt), "iat": .int(issuedAt), "exp": .int(issuedAt + expiresIn),
            "jti": .string(UUID().uuidString.lowercased()), "origin_jti": .string(UUID().uuidString.lowercased()),
        ]
        if !groups.isEmpty { claims["cognito:groups"] = .strings(groups) }
        switch use {
        case .id:
            claims["aud"] = .string(LocalDevelopment.clientID)
            claims["email"] = .string(email)
            claims["email_verified"] = .bool(true)
            claims["cognito:username"] = .string(username)
            if let nonce { claims["nonce"] = .string(nonce) }
        case .access:
            claims["client_id"] = .string(client ?? LocalDevelopment.clientID)
            claims["scope"] = .string(scope)
            if client == nil { claims["username"] = .string(username) }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let header = Base64URL.encode(try encoder.encode(["alg": "RS256", "kid": kid]))
        let payload = Base64URL.encode(try encoder.encode(claims))
        let signature = try key.signRS256(Array("\(header).\(payload)".utf8))
        return "\(header).\(payload).\(Base64URL.encode(signature))"
    }

    package enum ClaimValue: Encodable {
        case string(String), int(Int), bool(Bool), strings([String])

        package func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .string(let value): try container.encode(value)
            case .int(let value): try container.encode(value)
            case .bool(let value): try container.encode(value)
            case .strings(let value): try container.encode(value)
            }
        }
    }
}
