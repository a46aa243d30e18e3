@testable import Auth
@testable import FCGIApp
import Foundation
@testable import PG
@testable import Stores
import Testing

// Kept whole (about 280 lines): the token rules are one table, read best in one place, and
// every row goes through the same responder and the same check of the refusal it must get.

/// The token tables, in process: the responder's JWKS holds the pool's key, a 1024-bit key and
/// an encryption key (both unusable, so tokens naming them are refused). What needs nginx and the
/// worker's log is in `TokenEndToEndTests`.
final class TokenStack: @unchecked Sendable {
    static let shared = Result { try TokenStack() }
    static let smallKey = try! RSAPrivateKey(generatingBits: 1024)

    let stack: any Service

    private init() throws {
        let dir = try TestEnvironment.scratchFolder("keys")
        let keys = [
            TestPool.jwk(TestPool.key, kid: TestPool.kid),
            TestPool.jwk(Self.smallKey, kid: "small-1024"),
            TestPool.jwk(TestPool.otherKey, kid: "enc-key", extra: ["use": "enc"]),
        ]
        stack = try InProcess(environment: try TestPool.environment(dir: dir, keys: keys))
    }

    /// A user with a unique name; bound to `sub` when given.
    func user(sub: String? = nil, active: Bool = true) throws -> (username: String, email: String) {
        let name = "u" + UUID().uuidString.prefix(12).lowercased()
        let email = "\(name)@Example.com"
        try stack.database.connect().query(
            "INSERT INTO users (username, email, cognito_sub, is_active) VALUES ($1, $2, $3, $4)", name, email, sub, active)
        return (name, email)
    }

    func get(_ authorization: String?) throws -> HTTPResponse {
        try stack.get("/articles/", headers: authorization.map { [("Authorization", $0)] } ?? [])
    }
}

@Suite(.lane()) struct TokenTests {
    let shared: TokenStack
    init() throws { shared = try TokenStack.shared.get() }

    private func expectRefused(
        _ authorization: String?, _ detail: String, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let response = try shared.get(authorization)
        #expect(response.status == 401, "\(response.text)", sourceLocation: sourceLocation)
        #expect(response.header("Content-Type") == "application/json", sourceLocation: sourceLocation)
        #expect(response.json == ["detail": detail], sourceLocation: sourceLocation)
        #expect(
            response.header("WWW-Authenticate")
                == #"Bearer realm="articles", error="invalid_token", error_description="\#(detail)""#,
            sourceLocation: sourceLocation)
    }

    private func validToken(email: String? = nil) throws -> String {
        let user = try shared.user()
        return TestPool.token(claims: TestPool.idClaims(email: email ?? user.email))
    }

    @Test func aValidTokenReadsAndWritesArticlesBothWays() throws {
        let user = try shared.user()
        let token = TestPool.token(claims: TestPool.idClaims(email: user.email.uppercased()))
        let created = try shared.stack.request(
            "POST", "/articles/", headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")],
            body: Data(#"{"name": "  Hello, world  ", "ignored": 1}"#.utf8))
        #expect(created.status == 201)
        let article = try JSONDecoder().decode(Article.self, from: created.body)
        #expect(article.name == "Hello, world")
        for authorization in ["Bearer \(token)", "bearer \(token)", "BEARER \(token)", token] {
            let list = try shared.get(authorization)
            #expect(list.status == 200)
            #expect(try JSONDecoder().decode([Article].self, from: list.body).contains(article))
        }
        let owner = try shared.stack.database.connect().query(
            "SELECT u.username FROM articles a JOIN users u ON u.id = a.owner_id WHERE a.id = $1", article.id)
        #expect(owner.first?["username"] == user.username)
    }

    @Test func missingOrMalformedHeadersAre401() throws {
        let none = try shared.get(nil)
        #expect(none.status == 401)
        #expect(none.json == ["detail": "Authentication credentials were not provided."])
        #expect(none.header("WWW-Authenticate") == #"Bearer realm="articles""#)
        let empty = try shared.get("")
        #expect(empty.status == 401)
        #expect(empty.header("WWW-Authenticate") == #"Bearer realm="articles""#)
        let token = try validToken()
        try expectRefused("Bearer", #"No token after "Bearer"."#)
        let badHeader = #"Invalid Authorization header: expected "Bearer <token>"."#
        for value in ["Bearer  \(token)", "Bearer\t\(token)", "Basic \(token)", "Bearer \(token) \(token)", "Bearer \(token) x", "\(token),\(token)"] {
            try expectRefused(value, badHeader)
        }
        for value in ["garbage", "a.b", "a.b.c.d", "...", "Bearer x.y.z"] {
            try expectRefused(value, "Malformed token.")
        }
    }

    @Test func structuralDefectsAre401() throws {
        let email = try shared.user().email
        let claims = TestPool.idClaims(email: email)
        let token = TestPool.token(claims: claims)
        let parts = token.split(separator: ".").map(String.init)
        let header = #"{"alg":"RS256","kid":"\#(TestPool.kid)"}"#
        let payload = String(decoding: try JSONSerialization.data(withJSONObject: claims), as: UTF8.self)
        func raw(_ header: String, _ payload: String) -> String {
            TestPool.token(headerBytes: Array(header.utf8), payloadBytes: Array(payload.utf8))
        }
        try expectRefused("Bearer !!.\(parts[1]).\(parts[2])", badHeaderMessage)
        try expectRefused("Bearer A.\(parts[1]).\(parts[2])", "Malformed token.")
        try expectRefused("Bearer \(parts[0]).A.\(parts[2])", "Malformed token.")
        try expectRefused("Bearer \(parts[0]).\(parts[1]).A", "Invalid token signature.")
        try expectRefused("Bearer \(Base64URL.encode(Array("not json".utf8))).\(parts[1]).\(parts[2])", "Malformed token.")
        try expectRefused("Bearer \(parts[0]).\(Base64URL.encode(Array("[1,2]".utf8))).\(parts[2])", "Malformed token.")
        // Strict JSON: duplicate members and invalid UTF-8, even when validly signed.
        try expectRefused(raw(header, payload.replacingOccurrences(of: "{", with: #"{"exp":1,"#)), "Malformed token.")
        try expectRefused(raw(header, payload.replacingOccurrences(of: "{", with: #"{"iss":"https://evil.example","#)), "Malformed token.")
        try expectRefused(raw(#"{"alg":"RS256","alg":"RS256","kid":"\#(TestPool.kid)"}"#, payload), "Malformed token.")
        let badUTF8Header = Array(#"{"alg":"RS256","kid":"\#(TestPool.kid)","x":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        try expectRefused(TestPool.token(headerBytes: badUTF8Header, payloadBytes: Array(payload.utf8)), "Malformed token.")
        let badUTF8Payload = Array(payload.dropLast().utf8) + Array(#","x":""#.utf8) + [0xFF] + Array(#""}"#.utf8)
        try expectRefused(TestPool.token(headerBytes: Array(header.utf8), payloadBytes: badUTF8Payload), "Malformed token.")
        // A 17 KiB token gets through nginx and is refused by the worker.
        try expectRefused("Bearer \(parts[0]).\(String(repeating: "A", count: 17 * 1024)).\(parts[2])", "Token is too large.")
    }

    private var badHeaderMessage: String { #"Invalid Authorization header: expected "Bearer <token>"."# }

    @Test func headerRulesAre401() throws {
        let claims = TestPool.idClaims(email: try shared.user().email)
        try expectRefused(TestPool.token(header: ["alg": "none", "kid": TestPool.kid], claims: claims), "Unsupported token algorithm.")
        try expectRefused(TestPool.token(header: ["alg": "RS512", "kid": TestPool.kid], claims: claims), "Unsupported token algorithm.")
        try expectRefused(TestPool.token(header: ["kid": TestPool.kid], claims: claims), "Malformed token.")
        try expectRefused(TestPool.token(header: ["alg": "RS256"], claims: claims), "Malformed token.")
        try expectRefused(TestPool.token(header: ["alg": "RS256", "kid": TestPool.kid, "crit": ["exp"]], claims: claims), "Unsupported token header.")
        try expectRefused(TestPool.token(header: ["alg": "RS256", "kid": "no-such-kid"], claims: claims), "Token signed by an unknown key.")
        try expectRefused(TestPool.token(header: ["alg": "RS256", "kid": TestPool.kid + "\u{0}"], claims: claims), "Token signed by an unknown key.")
        // Keys the JWKS lists but that must not be used: 1024 bits, use "enc".
        try expectRefused(TestPool.token(header: ["alg": "RS256", "kid": "small-1024"], claims: claims, key: TokenStack.smallKey), "Token signed by an unknown key.")
        try expectRefused(TestPool.token(header: ["alg": "RS256", "kid": "enc-key"], claims: claims, key: TestPool.otherKey), "Token signed by an unknown key.")
        // HS256 with the public key's bytes as the HMAC secret (the classic key confusion),
        // both as the JWK's modulus and as the JWKS entry's JSON.
        let headerPart = Base64URL.encode(Array(#"{"alg":"HS256","kid":"\#(TestPool.kid)"}"#.utf8))
        let payloadPart = Base64URL.encode(try JSONSerialization.data(withJSONObject: claims))
        let signingInput = Array("\(headerPart).\(payloadPart)".utf8)
        let jwkJSON = try JSONSerialization.data(withJSONObject: TestPool.jwk(TestPool.key, kid: TestPool.kid), options: [.sortedKeys])
        for secret in [TestPool.key.publicKey.parameter("n"), Array(jwkJSON)] {
            let mac = hmacSHA256(key: secret, data: signingInput)
            try expectRefused("\(headerPart).\(payloadPart).\(Base64URL.encode(mac))", "Unsupported token algorithm.")
        }
        // jku/x5u/jwk headers are ignored: the token still needs the pool's key.
        let jku = TestPool.token(header: ["alg": "RS256", "kid": TestPool.kid, "jku": "http://127.0.0.1:1/jwks"], claims: claims)
        #expect(try shared.get(jku).status == 200)
    }

    @Test func signatureDefectsAre401() throws {
        let claims = TestPool.idClaims(email: try shared.user().email)
        let token = TestPool.token(claims: claims)
        let parts = token.split(separator: ".").map(String.init)
        var flipped = Base64URL.decode(parts[2].utf8)!
        flipped[100] ^= 0x01
        let invalid = "Invalid token signature."
        try expectRefused("\(parts[0]).\(parts[1]).\(Base64URL.encode(flipped))", invalid)
        try expectRefused("\(parts[0]).\(parts[1]).\(Base64URL.encode(flipped.prefix(200)))", invalid)
        try expectRefused("\(parts[0]).\(parts[1]).", invalid)
        try expectRefused(TestPool.token(claims: claims, key: TestPool.otherKey), invalid)
        var altered = claims
        altered["sub"] = "someone-else"
        let alteredPayload = Base64URL.encode(try JSONSerialization.data(withJSONObject: altered))
        try expectRefused("\(parts[0]).\(alteredPayload).\(parts[2])", invalid)
        // python-jose accepts these; a strict verifier does not.
        try expectRefused("\(parts[0]).\(parts[1]).\(parts[2])==", badHeaderMessage)
        try expectRefused("\(parts[0]).\(parts[1]).\(parts[2])A", invalid)
        try expectRefused("\(parts[0]).\(parts[1]).\(parts[2].dropLast())", invalid)
        #expect(try shared.get(token).status == 200)
    }

    @Test func claimRulesAre401() throws {
        let user = try shared.user()
        let sub = UUID().uuidString.lowercased()
        let now = Int(Date().timeIntervalSince1970)
        func with(_ changes: [String: Any?]) -> String {
            var claims = TestPool.idClaims(sub: sub, email: user.email)
            for (name, value) in changes { claims[name] = value }
            return TestPool.token(claims: claims)
        }
        try expectRefused(with(["exp": now - 61]), "Token has expired.")
        #expect(try shared.get(with(["exp": now - 30])).status == 200, "expired within the leeway")
        try expectRefused(with(["exp": nil]), "Malformed token claims.")
        try expectRefused(with(["exp": "\(now + 3600)"]), "Malformed token claims.")
        try expectRefused(with(["iat": now + 120]), "Token was issued in the future.")
        try expectRefused(with(["nbf": now + 120]), "Token is not valid yet.")
        let notBefore = try shared.get(with(["nbf": now - 10]))
        #expect(notBefore.status == 200, "\(notBefore.text)")
        let notThisPool = "Token was not issued by this user pool."
        try expectRefused(with(["iss": "https://cognito-idp.us-test-1.amazonaws.com/us-test-1_OtherPool"]), notThisPool)
        try expectRefused(with(["iss": "https://cognito-idp.eu-west-1.amazonaws.com/\(TestPool.poolID)"]), notThisPool)
        try expectRefused(with(["iss": TestPool.issuer + "/"]), notThisPool)
        try expectRefused(with(["iss": nil]), notThisPool)
        // The pool's UPDATED issuer is accepted too, and only it: no other region, pool, prefix
        // or suffix, nor the issuer. form Cognito does not mint.
        let updated = "https://issuer-cognito-idp.us-test-1.amazonaws.com/\(TestPool.poolID)"
        #expect(try shared.get(with(["iss": updated])).status == 200)
        for nearMiss in [
            "https://issuer.cognito-idp.us-test-1.amazonaws.com/\(TestPool.poolID)",
            "https://issuer-cognito-idp.eu-west-1.amazonaws.com/\(TestPool.poolID)",
            "https://issuer-cognito-idp.us-test-1.amazonaws.com/us-test-1_OtherPool",
            "https://xissuer-cognito-idp.us-test-1.amazonaws.com/\(TestPool.poolID)",
            "https://issuer-cognito-idp.us-test-1.amazonaws.com/\(TestPool.poolID)/",
            "https://issuer-cognito-idp.us-test-1.amazonaws.com/\(TestPool.poolID) ",
            "http://issuer-cognito-idp.us-test-1.amazonaws.com/\(TestPool.poolID)",
            "https://ISSUER-cognito-idp.us-test-1.amazonaws.com/\(TestPool.poolID)",
            "https://issuer-cognito-idp.us-test-1.amazonaws.com.evil/\(TestPool.poolID)",
        ] {
            try expectRefused(with(["iss": nearMiss]), notThisPool)
        }
        // JSON escapes decode first: an escaped form of the issuer is that issuer.
        var escaped = TestPool.idClaims(sub: sub, email: user.email)
        escaped["iss"] = "ISSUER_PLACEHOLDER"
        let escapedPayload = String(decoding: try JSONSerialization.data(withJSONObject: escaped, options: [.sortedKeys]), as: UTF8.self)
            .replacingOccurrences(of: "ISSUER_PLACEHOLDER", with: #"https:\/\/issuer-cognito-idp.us-test-1.amazonaws.com\/\#(TestPool.poolID)"#)
        let escapedToken = TestPool.token(headerBytes: Array(#"{"alg":"RS256","kid":"\#(TestPool.kid)"}"#.utf8), payloadBytes: Array(escapedPayload.utf8))
        #expect(try shared.get(escapedToken).status == 200)
        try expectRefused(with(["auth_time": "\(now)"]), "Malformed token claims.")
        try expectRefused(with(["aud": "another-client"]), "Token was not issued for this client.")
        try expectRefused(with(["aud": [TestPool.clientID]]), "Malformed token claims.")
        try expectRefused(with(["sub": 42]), "Malformed token claims.")
        try expectRefused(with(["token_use": "access"]), "Tokens of this kind are not accepted.")
        try expectRefused(TestPool.token(claims: TestPool.accessClaims(sub: "x")), "Tokens of this kind are not accepted.")
    }

    @Test func userMappingRules() throws {
        let noUser = "No user matches this token."
        // Unknown user.
        try expectRefused(TestPool.token(claims: TestPool.idClaims(email: "nobody-\(UUID())@example.com")), noUser)
        // An unverified email never maps; "true" as a string counts as verified.
        let unverified = try shared.user()
        for value in [false, "false", "yes", 1] as [Any] {
            var claims = TestPool.idClaims(email: unverified.email)
            claims["email_verified"] = value
            try expectRefused(TestPool.token(claims: claims), noUser)
        }
        var stringTrue = TestPool.idClaims(email: unverified.email)
        stringTrue["email_verified"] = "true"
        #expect(try shared.get(TestPool.token(claims: stringTrue)).status == 200)
        // A row bound to another sub never matches by email.
        let bound = try shared.user(sub: "already-bound-\(UUID())")
        try expectRefused(TestPool.token(claims: TestPool.idClaims(email: bound.email)), noUser)
        // Binding by email happens once, then the sub maps whatever the email says.
        let fresh = try shared.user()
        let sub = UUID().uuidString.lowercased()
        #expect(try shared.get(TestPool.token(claims: TestPool.idClaims(sub: sub, email: fresh.email))).status == 200)
        let row = try shared.stack.database.connect().query("SELECT cognito_sub FROM users WHERE username = $1", fresh.username)
        #expect(row.first?["cognito_sub"] == sub)
        var unverifiedSameSub = TestPool.idClaims(sub: sub, email: "changed@example.com")
        unverifiedSameSub["email_verified"] = false
        #expect(try shared.get(TestPool.token(claims: unverifiedSameSub)).status == 200)
        // Binding compares ASCII letters in any case, and never binds another address: under
        // glibc, lower('İ') is 'i'.
        let ascii = try shared.user()
        let shouted = TestPool.idClaims(sub: "upper-\(UUID())", email: ascii.email.uppercased())
        #expect(try shared.get(TestPool.token(claims: shouted)).status == 200)
        let dotless = "i" + UUID().uuidString.prefix(8).lowercased() + "@example.com"
        try shared.stack.database.connect().query("INSERT INTO users (username, email) VALUES ($1, $1)", dotless)
        for lookalike in ["İ" + dotless.dropFirst(), "I\u{307}" + dotless.dropFirst()] {
            try expectRefused(TestPool.token(claims: TestPool.idClaims(sub: "lookalike-\(UUID())", email: lookalike)), noUser)
        }
        let unbound = try shared.stack.database.connect().query("SELECT cognito_sub FROM users WHERE email = $1", dotless)
        #expect(unbound.first?.isNull(0) == true, "the row stays unbound")
        // Inactive users are refused, by sub and by email.
        let inactive = try shared.user(sub: "inactive-\(UUID())", active: false)
        try expectRefused(TestPool.token(claims: TestPool.idClaims(sub: "inactive-x", email: inactive.email)), noUser)
        let inactiveBySub = try shared.stack.database.connect().query("SELECT cognito_sub FROM users WHERE username = $1", inactive.username)
        try expectRefused(TestPool.token(claims: TestPool.idClaims(sub: inactiveBySub.first!["cognito_sub"]!, email: inactive.email)), "User is inactive.")
    }
}
