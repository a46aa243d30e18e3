@testable import Auth
@testable import FCGIApp
import Foundation
@testable import PG
import Testing

/// Several pools kept apart: a group, and a row waiting for its first sign-in, belong to one
/// pool (the second pool TrustedPoolTests trusts, through nginx).
@Suite(.lane()) struct PoolSeparationTests {
    /// A group name means nothing across pools: `COGNITO_ADMIN_GROUP` is the own pool's group,
    /// and a grant counts for the pool it names only.
    @Test func groupsAreThoseOfTheTokensOwnPool() throws {
        let keys = try JWKSServer()
        try keys.serve([TestPool.jwk(TrustedPoolTests.key, kid: "second-kid")])
        let stack = try Stack(environment: ["COGNITO_ADMIN_GROUP": "admins", "COGNITO_DEFAULT_ROLE": "reader"])
        try stack.waitForChangeFeed()
        let db = try stack.database.connect()
        try db.query("""
            INSERT INTO users (username, email, cognito_sub, pool_id) VALUES
              ('owner', 'owner@example.com', 'owner-sub', NULL), ('tenant', 'tenant@example.com', 'tenant-sub', $1)
            """, TrustedPoolTests.poolID)
        let owners = try db.query("INSERT INTO articles (name, owner_id) SELECT 'owners', id FROM users WHERE username = 'owner' RETURNING id")
            .first!.decode(Int64.self, at: 0)
        _ = try TrustedPoolTests.psql(stack.database, "trust_pool.sql", ["pool_id": TrustedPoolTests.poolID, "client_ids": TrustedPoolTests.clientID, "jwks_url": keys.url("/file/jwks.json")])
        _ = try TrustedPoolTests.psql(stack.database, "grant_group_role.sql", ["group": "staff", "role": "writer"])
        var claims = TestPool.idClaims(sub: "tenant-sub", email: "tenant@example.com")
        claims["iss"] = TrustedPoolTests.issuer
        claims["aud"] = TrustedPoolTests.clientID
        claims["cognito:groups"] = ["admins", "staff"]
        let tenant = TestPool.token(header: ["alg": "RS256", "kid": "second-kid"], claims: claims, key: TrustedPoolTests.key)
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
        _ = try TrustedPoolTests.psql(stack.database, "grant_group_role.sql", ["group": "staff", "role": "writer", "pool_id": TrustedPoolTests.poolID])
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
        try keys.serve([TestPool.jwk(TrustedPoolTests.key, kid: "second-kid")])
        let stack = try Stack(environment: ["AUTO_PROVISION_USERS": "true", "PROVISIONING_SECRET": ProvisioningTests.secret])
        try stack.waitForChangeFeed()
        _ = try TrustedPoolTests.psql(stack.database, "trust_pool.sql", ["pool_id": TrustedPoolTests.poolID, "client_ids": TrustedPoolTests.clientID, "jwks_url": keys.url("/file/jwks.json")])
        #expect(try TrustedPoolTests.psql(stack.database, "create_user.sql", ["username": "carol", "email": "carol@example.com"]).hasPrefix("created user carol"))
        #expect(try TrustedPoolTests.psql(stack.database, "create_user.sql", ["username": "dave", "email": "dave@example.com", "pool_id": TrustedPoolTests.poolID])
            .hasSuffix(", pool \(TrustedPoolTests.poolID))\n"))
        func secondPool(_ email: String) -> String {
            var claims = TestPool.idClaims(email: email)
            claims["iss"] = TrustedPoolTests.issuer
            claims["aud"] = TrustedPoolTests.clientID
            return TestPool.token(header: ["alg": "RS256", "kid": "second-kid"], claims: claims, key: TrustedPoolTests.key)
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
        // Nor the other pool's provisioning event with her address.
        let provisioning = ProvisioningTests()
        let event = provisioning.event(sub: "sub-carol-2", userName: "carol2", email: "carol@example.com", pool: TrustedPoolTests.poolID)
        #expect(try provisioning.post(stack, event).json == ["detail": "A user with this email waits for a sign-in from another user pool."])
        // The own pool's token with dave's email: not dave.
        #expect(try stack.get("/articles/", headers: [("Authorization", TestPool.token(claims: TestPool.idClaims(email: "dave@example.com")))])
            .status == 401)
        // Carol's own pool binds her.
        #expect(try stack.get("/articles/", headers: [("Authorization", TestPool.token(claims: TestPool.idClaims(email: "carol@example.com")))])
            .status == 200)
        let rows = try stack.database.connect().query(
            "SELECT username, coalesce(pool_id, '-'), cognito_sub IS NOT NULL FROM users ORDER BY id"
        ).map { "\(try $0.decode(String.self, at: 0)) \(try $0.decode(String.self, at: 1)) \(try $0.decode(Bool.self, at: 2))" }
        #expect(rows == ["carol - true", "dave \(TrustedPoolTests.poolID) true"])
    }
}
