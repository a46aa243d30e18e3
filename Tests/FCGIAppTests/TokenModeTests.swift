@testable import Auth
@testable import FCGIApp
import Foundation
import Logging
import Synchronization
import Testing

/// Settings other than the defaults, in process: access tokens, several clients, no leeway.
@Suite(.lane()) struct TokenModeTests {
    private func get(_ stack: any Service, _ token: String) throws -> (Int, String?) {
        let response = try stack.get("/articles/", headers: [("Authorization", "Bearer \(token)")])
        return (response.status, response.json?["detail"])
    }

    @Test func accessTokensMapBySubAndCheckClientID() throws {
        let stack = try InProcess(environment: ["COGNITO_TOKEN_USE": "access", "AWS_APP_CLIENT_ID": "other-client, \(TestPool.clientID)"])
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

    @Test(.lane(.waiting)) func aCachedTokenIsRefusedOnceItExpires() throws {
        let stack = try InProcess(environment: ["COGNITO_LEEWAY_SECONDS": "0"])
        try stack.database.connect().query("INSERT INTO users (username, email) VALUES ('brief', 'brief@example.com')")
        let now = Date().timeIntervalSince1970
        var claims = TestPool.idClaims(email: "brief@example.com", now: Int(now))
        claims["exp"] = Int(now) + 2
        let token = TestPool.token(claims: claims)
        #expect(try get(stack, token).0 == 200)
        #expect(try get(stack, token).0 == 200)
        Thread.sleep(until: Date(timeIntervalSince1970: now + 3.2))  // past exp: the test is about time
        #expect(try get(stack, token) == (401, "Token has expired."))
    }
}

@Suite(.lane()) struct TokenCacheTests {
    private func entry(expiresAt: Double) -> TokenCache.Entry {
        TokenCache.Entry(
            claims: Claims(sub: "s", tokenUse: .id, email: nil, emailVerified: false, username: nil, groups: [], expiresAt: expiresAt),
            kid: KeyID("k"), key: TestPool.key.publicKey, keySetGeneration: 1)
    }

    @Test func staysWithinItsCapacity() {
        let cache = TokenCache(capacity: 3, shards: 1)
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

    @Test func shardsShareTheCapacity() {
        let cache = TokenCache(capacity: 1_000, shards: 16)
        let tokens = (0..<8_000).map { _ in "h.p." + Base64URL.encode((0..<256).map { _ in UInt8.random(in: 0...255) }) }
        for token in tokens { cache.insert(entry(expiresAt: 100), for: token, now: 0, leeway: 0) }
        #expect(cache.count <= 1_250)
        // Spread over the shards: the last token's shard still holds it, and many survive.
        #expect(cache.entry(for: tokens.last!) != nil)
        #expect(tokens.filter { cache.entry(for: $0) != nil }.count > 200)
        cache.remove(tokens.last!)
        #expect(cache.entry(for: tokens.last!) == nil)
        // As many tokens as the capacity, used again and again, all stay.
        let inUse = TokenCache(capacity: 8_000, shards: 16)
        for token in tokens { inUse.insert(entry(expiresAt: 100), for: token, now: 0, leeway: 0) }
        #expect(tokens.allSatisfy { inUse.entry(for: $0) != nil })
    }
}

@Suite(.lane()) struct RefusedTokenTests {
    /// A serving thread remembers a token whose signature was bad, but only for as long as the
    /// key set it was checked against: once the keys change, the token is checked anew.
    @Test func aRefusalLastsOnlyAsLongAsTheKeySet() throws {
        func jwks(_ key: RSAPrivateKey) throws -> [UInt8] {
            Array(try JSONSerialization.data(withJSONObject: ["keys": [TestPool.jwk(key, kid: TestPool.kid)]]))
        }
        let published = Mutex(try jwks(TestPool.key))
        let keys = KeyStore(source: .file("/jwks.json"), logger: Logger(label: "test")) { _ in published.withLock { $0 } }
        keys.reload(force: true)
        let verifier = TokenVerifier(
            config: CognitoConfig(
                poolID: TestPool.poolID, region: "us-test-1", clientIDs: [TestPool.clientID], tokenUses: [.id],
                keySource: .file("/jwks.json"), leewaySeconds: 0),
            keys: keys)
        let recent = TokenCache.Recent()
        // Signed by another key than the one its kid names in the published set.
        let token = TestPool.token(claims: TestPool.idClaims(email: "f@example.com"), key: TestPool.otherKey)
        for _ in 0..<3 {
            #expect(throws: AuthError.badSignature(KeyID(TestPool.kid))) { try verifier.verify(authorization: token, recent: recent) }
        }
        guard case .forged(let error, _, _) = recent[token] else { Issue.record("not remembered as forged"); return }
        #expect(error == .badSignature(KeyID(TestPool.kid)))
        // The pool now publishes that key under that kid.
        let rotated = try jwks(TestPool.otherKey)
        published.withLock { $0 = rotated }
        keys.reload(force: true)
        #expect(try verifier.verify(authorization: token, recent: recent).email == "f@example.com")
    }
}
