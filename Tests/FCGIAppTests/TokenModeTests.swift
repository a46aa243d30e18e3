import Foundation
import PG
import Testing

@testable import FCGIApp

/// Settings other than the defaults: access tokens, several clients, no leeway.
@Suite struct TokenModeTests {
    private func get(_ stack: Stack, _ token: String) throws -> (Int, String?) {
        let response = try stack.get("/articles/", headers: [("Authorization", "Bearer \(token)")])
        return (response.status, response.json?["detail"])
    }

    @Test func accessTokensMapBySubAndCheckClientID() throws {
        let stack = try Stack(environment: ["COGNITO_TOKEN_USE": "access", "AWS_APP_CLIENT_ID": "other-client, \(TestPool.clientID)"])
        let db = try stack.database.connect()
        try db.query("INSERT INTO users (username, email, cognito_sub) VALUES ('bound', 'bound@example.com', 'sub-bound')")
        try db.query("INSERT INTO users (username, email) VALUES ('unbound', 'unbound@example.com')")
        #expect(try get(stack, TestPool.token(claims: TestPool.accessClaims(sub: "sub-bound"))).0 == 200)
        var otherClient = TestPool.accessClaims(sub: "sub-bound")
        otherClient["client_id"] = "other-client"
        #expect(try get(stack, TestPool.token(claims: otherClient)).0 == 200, "any configured client")
        otherClient["client_id"] = "third-client"
        #expect(try get(stack, TestPool.token(claims: otherClient)) == (401, "Token was not issued for this client."))
        // An access token never binds by email, even one that carries a verified email.
        var withEmail = TestPool.accessClaims(sub: "sub-new")
        withEmail["email"] = "unbound@example.com"
        withEmail["email_verified"] = true
        #expect(try get(stack, TestPool.token(claims: withEmail)) == (401, "No user matches this token."))
        #expect(try db.query("SELECT cognito_sub FROM users WHERE username = 'unbound'").first?["cognito_sub"] == nil)
        // ID tokens are not accepted here.
        #expect(try get(stack, TestPool.token(claims: TestPool.idClaims(sub: "sub-bound", email: "bound@example.com")))
            == (401, "Tokens of this kind are not accepted."))
    }

    @Test func aCachedTokenIsRefusedOnceItExpires() throws {
        let stack = try Stack(environment: ["COGNITO_LEEWAY_SECONDS": "0"])
        try stack.database.connect().query("INSERT INTO users (username, email) VALUES ('brief', 'brief@example.com')")
        let now = Date().timeIntervalSince1970
        var claims = TestPool.idClaims(email: "brief@example.com", now: Int(now))
        claims["exp"] = Int(now) + 2
        let token = TestPool.token(claims: claims)
        #expect(try get(stack, token).0 == 200)
        #expect(try get(stack, token).0 == 200)
        Thread.sleep(until: Date(timeIntervalSince1970: now + 3.2))
        #expect(try get(stack, token) == (401, "Token has expired."))
    }
}

@Suite struct TokenCacheTests {
    private func entry(expiresAt: Double) -> TokenCache.Entry {
        TokenCache.Entry(
            claims: Claims(sub: "s", tokenUse: .id, email: nil, emailVerified: false, username: nil, groups: [], expiresAt: expiresAt),
            kid: KeyID("k"), key: TestPool.key.publicKey)
    }

    @Test func staysWithinItsCapacity() {
        let cache = TokenCache(capacity: 3)
        cache.insert(entry(expiresAt: 100), for: "a", now: 0, leeway: 0)
        cache.insert(entry(expiresAt: 5), for: "b", now: 0, leeway: 0)
        cache.insert(entry(expiresAt: 100), for: "c", now: 0, leeway: 0)
        // Full: the expired entry goes first.
        cache.insert(entry(expiresAt: 100), for: "d", now: 10, leeway: 0)
        #expect(cache.count == 3)
        #expect(cache.entry(for: "b") == nil)
        #expect(cache.entry(for: "a") != nil)
        // Full of live entries: all go.
        cache.insert(entry(expiresAt: 100), for: "e", now: 10, leeway: 0)
        #expect(cache.count == 1)
        #expect(cache.entry(for: "e") != nil)
    }
}
