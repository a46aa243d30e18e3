@testable import Auth
@testable import FCGIApp
import Foundation
@testable import PG
@testable import Stores
@testable import Support
import Testing

/// A second user pool trusted with sql/admin/trust_pool.sql, its keys from a JWKS server of the
/// test's own, through nginx.
@Suite(.lane()) struct TrustedPoolTests {
    static let poolID = "us-test-2_Second"
    static let clientID = "second-client"
    static let issuer = "https://cognito-idp.us-test-2.amazonaws.com/\(poolID)"
    static let key = try! RSAPrivateKey(generatingBits: 2048)

    static func psql(_ database: TestDatabase, _ script: String, _ variables: [String: String]) throws -> String {
        let result = try database.admin(script, variables)
        try #require(result.status == 0, "\(result.output)")
        return result.output
    }

    @Test func aTrustedPoolsTokensAreAcceptedWithinASecondAndRefusedOnceDistrusted() throws {
        let keys = try JWKSServer()
        try keys.serve([TestPool.jwk(Self.key, kid: "second-kid")])
        let stack = try Stack()
        // Trusted "within a second" of the psql command by a worker that follows the database.
        try stack.waitForChangeFeed()
        let db = try stack.database.connect()
        // The same sub in both pools: two principals.
        let sub = UUID().uuidString.lowercased()
        try db.query("""
            INSERT INTO users (username, email, cognito_sub, pool_id) VALUES
              ('first', 'first@example.com', $1, NULL), ('second', 'second@example.com', $1, $2)
            """, sub, Self.poolID)
        let first = TestPool.token(claims: TestPool.idClaims(sub: sub, email: "first@example.com"))
        var claims = TestPool.idClaims(sub: sub, email: "second@example.com")
        claims["iss"] = Self.issuer
        claims["aud"] = Self.clientID
        let second = TestPool.token(header: ["alg": "RS256", "kid": "second-kid"], claims: claims, key: Self.key)
        func post(_ token: String, _ name: String) throws -> HTTPResponse {
            try stack.request(
                "POST", "/articles/", headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")],
                body: Data(#"{"name": "\#(name)"}"#.utf8))
        }
        /// The second pool's token on every thread.
        func statuses() throws -> Set<Int> {
            Set(try (0..<8).map { _ in try stack.get("/articles/?limit=1", headers: [("Authorization", second)]).status })
        }
        let untrusted = try stack.get("/articles/", headers: [("Authorization", second)])
        #expect(untrusted.status == 401 && untrusted.json == ["detail": "Token signed by an unknown key."], "\(untrusted.text)")

        let trusted = try Self.psql(stack.database, "trust_pool.sql", [
            "pool_id": Self.poolID, "client_ids": "other-client,\(Self.clientID)", "jwks_url": keys.url("/file/jwks.json"),
        ])
        #expect(trusted == "trusted pool \(Self.poolID) for other-client,\(Self.clientID) (id tokens, keys from \(keys.url("/file/jwks.json")))\n")
        try waitFor("the pool to be trusted on every thread", within: 1) { try statuses() == [200] }
        #expect(try keys.hits("/file/jwks.json") == 1, "fetched at the first token")
        let byFirst = try post(first, "by first")
        let bySecond = try post(second, "by second")
        #expect(byFirst.status == 201 && bySecond.status == 201, "\(bySecond.text)")
        #expect(try JSONDecoder().decode(Article.self, from: byFirst.body).owner == "first")
        #expect(try JSONDecoder().decode(Article.self, from: bySecond.body).owner == "second")
        // Its rules are the same: another app client's token is refused.
        claims["aud"] = "unlisted-client"
        let unlisted = TestPool.token(header: ["alg": "RS256", "kid": "second-kid"], claims: claims, key: Self.key)
        #expect(try stack.get("/articles/", headers: [("Authorization", unlisted)]).json == ["detail": "Token was not issued for this client."])

        #expect(try Self.psql(stack.database, "distrust_pool.sql", ["pool_id": Self.poolID]) == "pool \(Self.poolID) is not trusted now\n")
        try waitFor("the pool's tokens refused on every thread", within: 1) { try statuses() == [401] }
        #expect(try post(second, "refused").status == 401)
        #expect(try db.query("SELECT name FROM articles ORDER BY id").map { try $0.decode(String.self, at: 0) } == ["by first", "by second"])
    }

    @Test func provisioningTakesEventsOfATrustedPool() throws {
        let stack = try Stack(environment: ["PROVISIONING_SECRET": ProvisioningTests.secret])
        try stack.waitForChangeFeed()
        let body = try JSONSerialization.data(withJSONObject: [
            "userPoolId": Self.poolID, "userName": "from-second",
            "request": ["userAttributes": ["sub": "sub-second", "email": "from-second@example.com", "email_verified": "true"]],
        ] as [String: Any])
        var attempts = 0
        func post() throws -> HTTPResponse {
            // Each attempt signed with a second of its own: a signature is accepted once.
            attempts += 1
            let timestamp = Int(Date().timeIntervalSince1970) - attempts
            let mac = hmacSHA256(key: Array(ProvisioningTests.secret.utf8), data: Array("\(timestamp).".utf8) + [UInt8](body))
            return try stack.operations(
                "POST", "/internal/cognito/post-confirmation",
                headers: [("Content-Type", "application/json"), ("X-Signature-Timestamp", String(timestamp)),
                          ("X-Signature", "sha256=" + Hex.encode(mac))],
                body: body)
        }
        let refused = try post()
        #expect(refused.status == 403 && refused.json == ["detail": "The event is for another user pool."])
        _ = try Self.psql(stack.database, "trust_pool.sql", ["pool_id": Self.poolID, "client_ids": Self.clientID])
        try waitFor("the pool to be trusted", within: 1) { try post().status == 200 }
        let row = try stack.database.connect().query("SELECT username, pool_id, cognito_sub FROM users").map {
            "\(try $0.decode(String.self, at: 0)) \(try $0.decode(String.self, at: 1)) \(try $0.decode(String.self, at: 2))"
        }
        #expect(row == ["from-second \(Self.poolID) sub-second"])
    }

    /// A second pool's token signed by `key` under `kid`, for `client` (an ID token's `aud`,
    /// an access token's `client_id`).
    static func token(
        _ use: String, client: String, sub: String = UUID().uuidString.lowercased(), kid: String = "second-kid", key: RSAPrivateKey = key
    ) -> String {
        var claims = use == "id" ? TestPool.idClaims(sub: sub, email: "\(sub.prefix(8))@example.com") : TestPool.accessClaims(sub: sub)
        claims["iss"] = issuer
        if use == "id" { claims["aud"] = client } else { claims["client_id"] = client }
        return TestPool.token(header: ["alg": "RS256", "kid": kid], claims: claims, key: key)
    }

    /// Trusting a pool again with fewer clients or token kinds, or with keys that no longer
    /// hold a token's key, applies to tokens the worker verified before as to new ones.
    @Test func narrowingATrustedPoolAppliesToTokensAlreadyVerified() throws {
        let keys = try JWKSServer()
        let otherKey = try RSAPrivateKey(generatingBits: 2048)
        try keys.serve([TestPool.jwk(Self.key, kid: "second-kid")])
        try keys.serve([TestPool.jwk(otherKey, kid: "other-kid")], as: "rotated.json")
        let stack = try Stack(environment: ["AUTO_PROVISION_USERS": "true"])
        try stack.waitForChangeFeed()
        func trust(_ clients: String, _ use: String, _ jwks: String) throws {
            _ = try Self.psql(stack.database, "trust_pool.sql", [
                "pool_id": Self.poolID, "client_ids": clients, "token_use": use, "jwks_url": keys.url("/file/\(jwks)"),
            ])
        }
        /// The token's status on every loop (four requests a loop at least, in turn).
        func status(_ token: String) throws -> Set<Int> {
            Set(try (0..<8).map { _ in try stack.get("/articles/?limit=1", headers: [("Authorization", token)]).status })
        }
        let removedClient = Self.token("id", client: "removed-client")
        let access = Self.token("access", client: Self.clientID, sub: "access-user")
        try stack.database.connect().query(
            "INSERT INTO users (username, email, cognito_sub, pool_id) VALUES ('access-user', 'a@example.com', 'access-user', $1)", Self.poolID)
        let kept = Self.token("id", client: Self.clientID)
        try trust("removed-client,\(Self.clientID)", "id,access", "jwks.json")
        try waitFor("the pool to be trusted", within: 1) { try status(kept) == [200] }
        #expect(try status(removedClient) == [200])
        #expect(try status(access) == [200])

        try trust(Self.clientID, "id", "jwks.json")
        try waitFor("the removed client's and the access token refused", within: 1) {
            try status(removedClient) == [401] && status(access) == [401]
        }
        #expect(try status(kept) == [200])
        #expect(try stack.get("/articles/", headers: [("Authorization", access)]).json == ["detail": "Tokens of this kind are not accepted."])

        // Keys that no longer hold the token's key: once they are loaded (by a token signed
        // with the new key), the token verified under the old ones is refused.
        let rotated = Self.token("id", client: Self.clientID, kid: "other-kid", key: otherKey)
        try trust(Self.clientID, "id", "rotated.json")
        try waitFor("the rotated keys in use", within: 1) { try status(rotated) == [200] }
        #expect(try status(kept) == [401])
        // Distrusted, then trusted again with those keys: the same.
        try trust(Self.clientID, "id", "jwks.json")
        try waitFor("the first keys in use again", within: 1) { try status(kept) == [200] }
        _ = try Self.psql(stack.database, "distrust_pool.sql", ["pool_id": Self.poolID])
        try waitFor("the pool distrusted", within: 1) { try status(kept) == [401] }
        try trust(Self.clientID, "id", "rotated.json")
        try waitFor("the pool trusted with the rotated keys", within: 1) { try status(rotated) == [200] }
        #expect(try status(kept) == [401])
    }
}
