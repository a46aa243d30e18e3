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

    private func psql(_ database: TestDatabase, _ script: String, _ variables: [String: String]) throws -> String {
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

        let trusted = try psql(stack.database, "trust_pool.sql", [
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

        #expect(try psql(stack.database, "distrust_pool.sql", ["pool_id": Self.poolID]) == "pool \(Self.poolID) is not trusted now\n")
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
        _ = try psql(stack.database, "trust_pool.sql", ["pool_id": Self.poolID, "client_ids": Self.clientID])
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
            _ = try psql(stack.database, "trust_pool.sql", [
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
        _ = try psql(stack.database, "distrust_pool.sql", ["pool_id": Self.poolID])
        try waitFor("the pool distrusted", within: 1) { try status(kept) == [401] }
        try trust(Self.clientID, "id", "rotated.json")
        try waitFor("the pool trusted with the rotated keys", within: 1) { try status(rotated) == [200] }
        #expect(try status(kept) == [401])
    }


    /// A group name means nothing across pools: `COGNITO_ADMIN_GROUP` is the own pool's group,
    /// and a grant counts for the pool it names only.
    @Test func groupsAreThoseOfTheTokensOwnPool() throws {
        let keys = try JWKSServer()
        try keys.serve([TestPool.jwk(Self.key, kid: "second-kid")])
        let stack = try Stack(environment: ["COGNITO_ADMIN_GROUP": "admins", "COGNITO_DEFAULT_ROLE": "reader"])
        try stack.waitForChangeFeed()
        let db = try stack.database.connect()
        try db.query("""
            INSERT INTO users (username, email, cognito_sub, pool_id) VALUES
              ('owner', 'owner@example.com', 'owner-sub', NULL), ('tenant', 'tenant@example.com', 'tenant-sub', $1)
            """, Self.poolID)
        let owners = try db.query("INSERT INTO articles (name, owner_id) SELECT 'owners', id FROM users WHERE username = 'owner' RETURNING id")
            .first!.decode(Int64.self, at: 0)
        _ = try psql(stack.database, "trust_pool.sql", ["pool_id": Self.poolID, "client_ids": Self.clientID, "jwks_url": keys.url("/file/jwks.json")])
        _ = try psql(stack.database, "grant_group_role.sql", ["group": "staff", "role": "writer"])
        var claims = TestPool.idClaims(sub: "tenant-sub", email: "tenant@example.com")
        claims["iss"] = Self.issuer
        claims["aud"] = Self.clientID
        claims["cognito:groups"] = ["admins", "staff"]
        let tenant = TestPool.token(header: ["alg": "RS256", "kid": "second-kid"], claims: claims, key: Self.key)
        func send(_ method: String, _ path: String, _ token: String, _ body: String) throws -> HTTPResponse {
            try stack.request(method, path, headers: [("Authorization", token), ("Content-Type", "application/json")], body: Data(body.utf8))
        }
        try waitFor("the pool trusted", within: 1) { try stack.get("/articles/", headers: [("Authorization", tenant)]).status == 200 }
        let forbidden = ["detail": "You do not have permission to perform this action."]
        // Neither the own pool's admin group nor its staff grant: the default role, reader.
        for _ in 0..<8 {
            #expect(try send("PATCH", "/articles/\(owners)/", tenant, #"{"name": "taken"}"#).json == forbidden)
            #expect(try send("POST", "/articles/", tenant, #"{"name": "no"}"#).json == forbidden)
        }
        // The same group granted in the tenant's own pool.
        _ = try psql(stack.database, "grant_group_role.sql", ["group": "staff", "role": "writer", "pool_id": Self.poolID])
        try waitFor("the tenant pool's grant", within: 1) {
            try (0..<8).allSatisfy { n in try send("POST", "/articles/", tenant, #"{"name": "tenant \#(n)"}"#).status == 201 }
        }
        #expect(try send("PATCH", "/articles/\(owners)/", tenant, #"{"name": "taken"}"#).json == forbidden)
        // The own pool's member of admins changes anyone's.
        var ownClaims = TestPool.idClaims(sub: "owner-sub", email: "owner@example.com")
        ownClaims["cognito:groups"] = ["admins"]
        let tenantsArticle = try db.query("SELECT min(id) FROM articles WHERE name LIKE 'tenant %'").first!.decode(Int64.self, at: 0)
        #expect(try send("PATCH", "/articles/\(tenantsArticle)/", TestPool.token(claims: ownClaims), #"{"name": "moderated"}"#).status == 200)
        #expect(try db.query("SELECT name FROM articles WHERE id = $1", owners).first!.decode(String.self, at: 0) == "owners")
    }


    /// A row made by create_user.sql waits for a token of its own pool: another pool's
    /// verified token with its email does not bind it, nor does that pool's provisioning event.
    @Test func aRowWaitingForItsFirstSignInIsBoundOnlyFromItsPool() throws {
        let keys = try JWKSServer()
        try keys.serve([TestPool.jwk(Self.key, kid: "second-kid")])
        let stack = try Stack(environment: ["AUTO_PROVISION_USERS": "true"])
        try stack.waitForChangeFeed()
        _ = try psql(stack.database, "trust_pool.sql", ["pool_id": Self.poolID, "client_ids": Self.clientID, "jwks_url": keys.url("/file/jwks.json")])
        #expect(try psql(stack.database, "create_user.sql", ["username": "carol", "email": "carol@example.com"]).hasPrefix("created user carol"))
        #expect(try psql(stack.database, "create_user.sql", ["username": "dave", "email": "dave@example.com", "pool_id": Self.poolID])
            .hasSuffix(", pool \(Self.poolID))\n"))
        func secondPool(_ email: String) -> String {
            var claims = TestPool.idClaims(email: email)
            claims["iss"] = Self.issuer
            claims["aud"] = Self.clientID
            return TestPool.token(header: ["alg": "RS256", "kid": "second-kid"], claims: claims, key: Self.key)
        }
        try waitFor("the pool trusted", within: 1) {
            try stack.get("/articles/", headers: [("Authorization", secondPool("dave@example.com"))]).status == 200
        }
        // Another pool's token with carol's email: not carol (auto-provisioning cannot take her
        // address either), on every loop.
        for _ in 0..<8 {
            let claimed = try stack.get("/articles/", headers: [("Authorization", secondPool("carol@example.com"))])
            #expect(claimed.status == 401, "\(claimed.text)")
        }
        // The own pool's token with dave's email: not dave.
        #expect(try stack.get("/articles/", headers: [("Authorization", TestPool.token(claims: TestPool.idClaims(email: "dave@example.com")))])
            .status == 401)
        // Carol's own pool binds her.
        #expect(try stack.get("/articles/", headers: [("Authorization", TestPool.token(claims: TestPool.idClaims(email: "carol@example.com")))])
            .status == 200)
        let rows = try stack.database.connect().query(
            "SELECT username, coalesce(pool_id, '-'), cognito_sub IS NOT NULL FROM users ORDER BY id"
        ).map { "\(try $0.decode(String.self, at: 0)) \(try $0.decode(String.self, at: 1)) \(try $0.decode(Bool.self, at: 2))" }
        #expect(rows == ["carol - true", "dave \(Self.poolID) true"])
    }

}
