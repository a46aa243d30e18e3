import ArgumentParser
import FoundationEssentials

extension CognitoConfig.IssuerForm: ExpressibleByArgument {}

/// The local stand-in for a Cognito user pool that `scripts/run` sets up when no
/// `AWS_USER_POOLS_ID` is given: these ids, and the key in `$RUN_DIR/keys`.
enum LocalDevelopment {
    static let poolID = "local-1_ArticlesDev"
    static let clientID = "articles-local"
    static let region = "local-1"

    /// `$RUN_DIR/keys`' signing key and its kid in the JWKS beside it (RUN_DIR defaults to
    /// `.run`, as scripts/run's does).
    static func signingKey(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> (RSAPrivateKey, kid: String) {
        let runDir = environment["RUN_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? ".run"
        let keyPath = "\(runDir)/keys/signing-key.pem"
        guard let pem = FileManager.default.contents(atPath: keyPath),
            let jwks = FileManager.default.contents(atPath: "\(runDir)/keys/jwks.json")
        else {
            throw ValidationError(
                "no local development key at \(keyPath): start the local stack with scripts/run (without AWS_USER_POOLS_ID) first, or set RUN_DIR")
        }
        let key = try RSAPrivateKey(pem: Array(pem))
        let modulus = key.publicKey.parameter("n")
        guard let kid = try KeySet.parse(Array(jwks)).keys.first(where: { $0.value.parameter("n") == modulus })?.key else {
            throw ValidationError("\(runDir)/keys/jwks.json does not publish the key in \(keyPath)")
        }
        return (key, kid.description)
    }
}

struct DevToken: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev-token",
        abstract: "Print a token signed with the local development key that scripts/run makes.",
        discussion: """
            For calling a local stack without AWS. The key is found through RUN_DIR (default: .run); \
            without it the command refuses to run. A worker accepts such a token only if its \
            configured JWKS holds the local key, as the local stack's does.
            """)

    enum Use: String, ExpressibleByArgument, CaseIterable {
        case id, access
    }

    @Option(help: "The user's email (claims email and, with --use id, cognito:username from its local part).")
    var email: String

    @Option(help: "The token's sub (default: derived from the email, so repeated tokens map to the same user).")
    var sub: String?

    @Option(help: "id or access.")
    var use: Use = .id

    @Option(name: .customLong("expires-in"), help: "Seconds until the token expires.")
    var expiresIn: Int = 3600

    @Option(help: "How many tokens to print, one a line, each distinct (its own jti).")
    var count: Int = 1

    @Option(help: "The pool's issuer the token names: original (cognito-idp.) or updated (issuer-cognito-idp.).")
    var issuer: CognitoConfig.IssuerForm = .original

    @Option(help: "An access token's scopes, space-separated (e.g. \"articles/read articles/write\").")
    var scope: String = "aws.cognito.signin.user.admin"

    @Option(name: .customLong("group"), help: "A Cognito group the user is in (cognito:groups); repeat for several.")
    var groups: [String] = []

    func validate() throws {
        guard email.contains("@") else { throw ValidationError("--email must be an email address") }
        guard expiresIn > 0 else { throw ValidationError("--expires-in must be positive") }
        guard count > 0 else { throw ValidationError("--count must be positive") }
    }

    func run() throws {
        let (key, kid) = try LocalDevelopment.signingKey()
        let now = Int(wallSeconds())
        var output = ""
        for _ in 0..<count {
            output += try Self.token(
                key: key, kid: kid, email: email, sub: sub ?? Self.sub(forEmail: email), use: use,
                issuedAt: now, expiresIn: expiresIn, issuer: issuer, scope: scope, groups: groups) + "\n"
        }
        print(output, terminator: "")
    }

    /// A UUID-shaped `sub` derived from the email, as Cognito's subs look.
    static func sub(forEmail email: String) -> String {
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
    static func username(forEmail email: String) -> String { String(email.prefix { $0 != "@" }) }

    /// A token shaped as Cognito issues them for the local pool: an ID token with the sign-in's
    /// `nonce` if there was one, an access token with the granted `scope`.
    static func token(
        key: RSAPrivateKey, kid: String, email: String, sub: String, use: Use, issuedAt: Int, expiresIn: Int,
        issuer form: CognitoConfig.IssuerForm = .original, nonce: String? = nil, scope: String = "aws.cognito.signin.user.admin",
        groups: [String] = []
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
            claims["client_id"] = .string(LocalDevelopment.clientID)
            claims["scope"] = .string(scope)
            claims["username"] = .string(username)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let header = Base64URL.encode(try encoder.encode(["alg": "RS256", "kid": kid]))
        let payload = Base64URL.encode(try encoder.encode(claims))
        let signature = try key.signRS256(Array("\(header).\(payload)".utf8))
        return "\(header).\(payload).\(Base64URL.encode(signature))"
    }

    enum ClaimValue: Encodable {
        case string(String), int(Int), bool(Bool), strings([String])

        func encode(to encoder: any Encoder) throws {
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
