@testable import Auth
@testable import FCGIApp
import Foundation
@testable import HTTP
import Logging
@testable import Stores
@testable import Support
import Synchronization
import Testing

@Suite(.lane()) struct KeyFetchTests {
    /// A stack whose worker fetches its keys from `url` (no JWKS file).
    private func stack(_ url: String, healthy: Bool = true, database: TestDatabase? = nil) throws -> Stack {
        try Stack(database: database, environment: ["COGNITO_JWKS_URL": url, "COGNITO_JWKS_FILE": ""], healthy: healthy)
    }

    /// An active user of `stack` and a valid ID token for it, signed by `key` under `kid`.
    private func token(_ stack: Stack, key: RSAPrivateKey = TestPool.key, kid: String = TestPool.kid) throws -> String {
        let email = "k\(UUID().uuidString.prefix(10).lowercased())@example.com"
        try stack.database.connect().query("INSERT INTO users (username, email) VALUES ($1, $1)", email)
        return TestPool.token(header: ["alg": "RS256", "kid": kid], claims: TestPool.idClaims(email: email), key: key)
    }

    private func status(_ stack: Stack, _ token: String) throws -> (Int, String?) {
        let response = try stack.get("/articles/", headers: [("Authorization", "Bearer \(token)")])
        return (response.status, response.json?["detail"])
    }

    @Test func unusableKeysAreSkippedAndTheRestLoad() throws {
        let server = try JWKSServer()
        try server.serve([
            TestPool.jwk(TestPool.key, kid: TestPool.kid),
            TestPool.jwk(TokenStack.smallKey, kid: "small"),
            TestPool.jwk(TestPool.otherKey, kid: "enc", extra: ["use": "enc"]),
            TestPool.jwk(TestPool.otherKey, kid: "hs", extra: ["alg": "HS256"]),
            TestPool.jwk(TestPool.otherKey, kid: "padded", extra: ["n": Base64URL.encode(TestPool.otherKey.publicKey.parameter("n")) + "=="]),
            ["kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"],
        ])
        let stack = try stack(server.url("/file/jwks.json"))
        #expect(try status(stack, token(stack)).0 == 200)
        for (kid, key) in [("small", TokenStack.smallKey), ("enc", TestPool.otherKey), ("hs", TestPool.otherKey), ("padded", TestPool.otherKey)] {
            #expect(try status(stack, token(stack, key: key, kid: kid)) == (401, "Token signed by an unknown key."), "\(kid)")
        }
        #expect(stack.worker.output.contains("key \\\"small\\\": 1024-bit modulus, under 2048") || stack.worker.output.contains("small"))
    }

    @Test(.lane(.waiting)) func aHangingServerIsAbandonedWithinFiveSeconds() throws {
        let server = try JWKSServer()
        let database = try TestDatabase.migrated()
        let started = Date()
        let stack = try stack(server.url("/hang"), healthy: false, database: database)
        #expect(Date().timeIntervalSince(started) < 8, "the worker answers once the 5 s fetch is abandoned")
        // Waiting costs no CPU: the fetch sleeps until the server answers or the time is up
        // (URLSession spun, about 4 s of CPU in those 5 s).
        let cpu = try stack.worker.cpuSeconds()
        #expect(cpu < 1, "the worker has used \(cpu) s of CPU")
        let health = try stack.get("/healthz")
        #expect(health.status == 503)
        #expect(health.json?["status"] == "unavailable")
        // Only what is wrong: the key source is named in the log, not to whoever asks.
        #expect(health.json == ["status": "unavailable", "detail": "signing keys could not be loaded"])
        #expect(stack.worker.output.contains("no answer within 5 s"))
        let refused = try stack.get("/articles/", headers: [("Authorization", try token(stack))])
        #expect(refused.status == 503)
        #expect(refused.json == ["detail": "Signing keys are not available; try again later."])
    }

    /// Certificates are verified: one that no CA the system trusts vouches for loads no keys.
    @Test func aServerWhoseCertificateIsNotTrustedLoadsNoKeys() throws {
        let server = try JWKSServer(tls: true)
        try server.serve([TestPool.jwk(TestPool.key, kid: TestPool.kid)])
        let stack = try stack(server.url("/file/jwks.json"), healthy: false)
        let health = try stack.get("/healthz")
        #expect(health.status == 503)
        #expect(health.json == ["status": "unavailable", "detail": "signing keys could not be loaded"])
        #expect(stack.worker.output.contains("SSL certificate problem: self-signed certificate"), "\(stack.worker.output)")
    }

    @Test(arguments: [
        ("/redirect", "HTTP status 302"), ("/big", "response larger than 262144 bytes"),
        ("/invalid", "cannot load the signing keys"), ("/file/missing.json", "HTTP status 404"),
    ])
    func badResponsesLoadNoKeys(path: String, reason: String) throws {
        let server = try JWKSServer()
        try server.serve([TestPool.jwk(TestPool.key, kid: TestPool.kid)])
        let stack = try stack(server.url(path), healthy: false)
        let health = try stack.get("/healthz")
        #expect(health.status == 503)
        #expect(health.json == ["status": "unavailable", "detail": "signing keys could not be loaded"])
        #expect(stack.worker.output.contains(reason), "\(stack.worker.output)")
        #expect(try server.hits("/file/jwks.json") == 0, "the redirect is not followed")
        #expect(try status(stack, token(stack)) == (503, "Signing keys are not available; try again later."))
    }
}

/// The key store's refetch rules, in process: its keys come over HTTP from a JWKS server of
/// the test's own, and its clock is the test's, so the 10 s between refetches pass at once.
@Suite(.lane()) struct KeyStoreTests {
    /// A clock that moves only when told to.
    final class TestClock: Sendable {
        private let offset = Mutex<Duration>(.zero)
        private let start = monotonicNanoseconds()
        var now: Int64 { start + offset.withLock { $0 }.nanoseconds }
        func advance(by duration: Duration) { offset.withLock { $0 += duration } }
    }

    /// `KeyStore.missWait` in seconds.
    private static let missWait = Double(KeyStore.missWait.components.seconds)

    private let server: JWKSServer
    private let clock = TestClock()
    private let keys: KeyStore
    private let verifier: TokenVerifier
    private let path = "/file/jwks.json"

    init() throws {
        server = try JWKSServer()
        try server.serve([TestPool.jwk(TestPool.key, kid: TestPool.kid)])
        let source = CognitoConfig.KeySource.url(server.url(path))
        keys = KeyStore(source: source, logger: Logger(label: "test"), now: { [clock] in clock.now })
        verifier = TokenVerifier(
            config: CognitoConfig(
                poolID: TestPool.poolID, region: "us-test-1", clientIDs: [TestPool.clientID], tokenUses: [.id],
                keySource: source, leewaySeconds: 0),
            keys: keys)
        keys.reload(force: true)
    }

    private func token(key: RSAPrivateKey = TestPool.key, kid: String = TestPool.kid) -> String {
        TestPool.token(header: ["alg": "RS256", "kid": kid], claims: TestPool.idClaims(email: "k@example.com"), key: key)
    }

    /// What verifying `token` on a thread with its own recent-token cache comes to.
    private func outcome(_ token: String, recent: TokenCache.Recent? = nil) -> String {
        do throws(AuthError) {
            return try verifier.verify(authorization: token, recent: recent).email ?? "verified"
        } catch {
            return error.detail
        }
    }

    /// Runs `body` on `count` threads at once and returns what each returned, with how long it took.
    private func concurrently(_ count: Int, _ body: @escaping @Sendable (Int) -> String) throws -> [(String, Double)] {
        let results = Mutex<[(String, Double)]>([])
        let threads = (0..<count).map { index in
            Thread {
                let began = Date()
                let result = body(index)
                results.withLock { $0.append((result, Date().timeIntervalSince(began))) }
            }
        }
        threads.forEach { $0.start() }
        try waitFor("\(count) threads' answers", within: 10) { results.withLock { $0.count } == count }
        return results.withLock { $0 }
    }

    @Test func rotationIsPickedUpWithAtMostOneFetchPer10Seconds() throws {
        let recent = TokenCache.Recent()
        let first = token()
        #expect(outcome(first, recent: recent) == "k@example.com")
        #expect(try server.hits(path) == 1)
        for _ in 0..<3 { #expect(outcome(token(kid: UUID().uuidString)) == "Token signed by an unknown key.") }
        clock.advance(by: .seconds(9.9))
        #expect(outcome(token(kid: UUID().uuidString)) == "Token signed by an unknown key.")
        #expect(try server.hits(path) == 1, "no refetch within 10 s of the last")

        // The pool rotates: a new key, the old one gone.
        let rotated = try RSAPrivateKey(generatingBits: 2048)
        try server.serve([TestPool.jwk(rotated, kid: "rotated")])
        clock.advance(by: .seconds(0.2))
        let results = try concurrently(4) { [self] _ in outcome(token(key: rotated, kid: "rotated")) }
        #expect(results.map(\.0) == Array(repeating: "k@example.com", count: 4))
        #expect(try server.hits(path) == 2, "simultaneous misses share one fetch")
        // The first token is in this thread's cache, but its key is gone.
        for _ in 0..<3 { #expect(outcome(first, recent: recent) == "Token signed by an unknown key.") }
        #expect(try server.hits(path) == 2)
    }

    @Test func aFailedRefetchKeepsTheLastGoodKeys() throws {
        try server.remove("jwks.json")
        clock.advance(by: .seconds(10))
        #expect(outcome(token(kid: "unknown")) == "Token signed by an unknown key.")
        #expect(try server.hits(path) == 2)
        #expect(outcome(token()) == "k@example.com")
        #expect(keys.unavailableSummary == nil)
    }

    @Test func aHangingRefetchHoldsNoCallerPastASecond() throws {
        // The key server stops answering; past the 10 s since the last fetch, unknown kids
        // start a refetch that hangs (until KeyFetcher's 5 s timeout).
        FileManager.default.createFile(atPath: "\(server.dir)/jwks.json.hang", contents: Data())
        clock.advance(by: .seconds(10))
        // Eight threads miss and wait for the refetch, at most KeyStore.missWait (a time bound
        // of the store's own); once it has reached the server, a known kid is answered at once.
        let misses = Mutex<[(String, Double)]>([])
        let waiting = Thread { [self] in
            misses.withLock { $0 = (try? concurrently(8) { [self] _ in outcome(token(kid: UUID().uuidString)) }) ?? [] }
        }
        waiting.start()
        try waitFor("the refetch", within: 5) { try server.hits(path) == 2 }
        let began = Date()
        #expect(outcome(token()) == "k@example.com")
        #expect(Date().timeIntervalSince(began) < 0.5)
        try waitFor("the misses' answers", within: 10) { misses.withLock { $0.count } == 8 }
        for (result, took) in misses.withLock({ $0 }) {
            #expect(result == "Token signed by an unknown key." && took < Self.missWait + 0.5, "\(result) after \(took) s")
        }
        #expect(try server.hits(path) == 2, "one refetch for all of them")
    }

    /// On a serving loop a miss is parked, not waited for: the loop verifies other tokens
    /// meanwhile, and the miss is answered once the refetch has run for a second.
    @Test func aMissOnALoopIsParkedWhileTheLoopGoesOn() throws {
        FileManager.default.createFile(atPath: "\(server.dir)/jwks.json.hang", contents: Data())
        clock.advance(by: .seconds(10))
        let loop = try TestLoop()
        let authenticator = Authenticator(verifier: verifier, revoked: RevokedSessions(), autoProvision: false)
        func request(_ token: String) -> Request { Request(method: "GET", path: "/articles/", headers: ["authorization": token]) }
        let miss = Mutex<(String, Double)?>(nil)
        let began = Date()
        let unknown = request(token(kid: UUID().uuidString))
        loop.start {
            let detail: String
            do throws(AuthError) {
                detail = try await authenticator.claims(unknown).email ?? "verified"
            } catch {
                detail = error.detail
            }
            miss.withLock { $0 = (detail, Date().timeIntervalSince(began)) }
        }
        try waitFor("the refetch", within: 5) { try server.hits(path) == 2 }
        let known = request(token())
        let answered = try loop.run { try await authenticator.claims(known).email }
        #expect(answered == "k@example.com")
        #expect(Date().timeIntervalSince(began) < 0.5)
        #expect(miss.withLock { $0 } == nil, "the miss is still parked")
        clock.advance(by: KeyStore.missWait)  // the store's own time, as the loop's passes
        try waitFor("the miss's answer", within: 5) { miss.withLock { $0 } != nil }
        let (detail, took) = try #require(miss.withLock { $0 })
        #expect(detail == "Token signed by an unknown key." && took >= Self.missWait - 0.05 && took < Self.missWait + 0.5)
    }
}
