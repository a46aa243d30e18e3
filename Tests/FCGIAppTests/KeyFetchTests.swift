import Foundation
import PG
import Testing

@testable import FCGIApp

/// A JWKS server the tests control (Tests/Fixtures/jwks-server.py).
final class JWKSServer: @unchecked Sendable {
    let dir: String
    let port: Int
    private let process: ChildProcess

    init() throws {
        dir = try TestEnvironment.scratchFolder("jwks")
        process = try ChildProcess(
            "/usr/bin/python3", [TestEnvironment.path("Tests/Fixtures/jwks-server.py"), dir],
            environment: ["PATH": "/usr/bin:/bin"], log: "\(dir)/server.log")
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let line = process.output.split(separator: "\n").first, line.hasPrefix("port "), let port = Int(line.dropFirst(5)) {
                self.port = port
                return
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw HTTPClient.Failure(description: "the JWKS server did not start: \(process.output)")
    }

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    func hits(_ path: String) throws -> Int {
        let stats = try HTTPClient.request(port: port, path: "/stats")
        return ((try JSONSerialization.jsonObject(with: stats.body)) as? [String: Int])?[path] ?? 0
    }

    func serve(_ keys: [[String: Any]], as name: String = "jwks.json") throws {
        try TestPool.writeJWKS(keys, to: "\(dir)/\(name)")
    }

    func remove(_ name: String) throws { try FileManager.default.removeItem(atPath: "\(dir)/\(name)") }
}

@Suite struct KeyFetchTests {
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

    @Test func rotationIsPickedUpWithAtMostOneFetchPer10Seconds() throws {
        let server = try JWKSServer()
        try server.serve([TestPool.jwk(TestPool.key, kid: TestPool.kid)])
        let started = Date()
        let stack = try stack(server.url("/file/jwks.json"))
        let path = "/file/jwks.json"
        let first = try token(stack)
        // Used again and again, so that it sits in the serving threads' own caches too.
        for _ in 0..<16 { #expect(try status(stack, first).0 == 200) }
        #expect(try server.hits(path) == 1)
        for _ in 0..<3 {
            #expect(try status(stack, token(stack, kid: UUID().uuidString)) == (401, "Token signed by an unknown key."))
        }
        #expect(try server.hits(path) == 1, "no refetch within 10 s of the last")

        // The pool rotates: a new key, the old one gone.
        let rotated = try RSAPrivateKey(generatingBits: 2048)
        try server.serve([TestPool.jwk(rotated, kid: "rotated")])
        Thread.sleep(until: started.addingTimeInterval(10.5))
        let tokens = try (0..<4).map { _ in try token(stack, key: rotated, kid: "rotated") }
        let results = Results()
        let threads = tokens.map { token in
            Thread { results.add((try? HTTPClient.request(port: stack.httpPort, path: "/articles/", headers: [("Authorization", token)]).status) ?? -1, "") }
        }
        threads.forEach { $0.start() }
        while results.all.count < tokens.count { Thread.sleep(forTimeInterval: 0.01) }
        #expect(results.all.map(\.status) == [200, 200, 200, 200])
        #expect(try server.hits(path) == 2, "simultaneous misses share one fetch")
        // The first token is cached, but its key is gone.
        for _ in 0..<16 { #expect(try status(stack, first) == (401, "Token signed by an unknown key.")) }
        #expect(try server.hits(path) == 2)
    }

    @Test func aFailedRefetchKeepsTheLastGoodKeys() throws {
        let server = try JWKSServer()
        try server.serve([TestPool.jwk(TestPool.key, kid: TestPool.kid)])
        let started = Date()
        let stack = try stack(server.url("/file/jwks.json"))
        try server.remove("jwks.json")
        Thread.sleep(until: started.addingTimeInterval(10.5))
        #expect(try status(stack, token(stack, kid: "unknown")) == (401, "Token signed by an unknown key."))
        #expect(try server.hits("/file/jwks.json") == 2)
        #expect(try status(stack, token(stack)).0 == 200)
        #expect(try stack.get("/healthz").status == 200)
    }

    @Test func aHangingRefetchHoldsNoRequestPastASecond() throws {
        let server = try JWKSServer()
        try server.serve([TestPool.jwk(TestPool.key, kid: TestPool.kid)])
        let started = Date()
        let stack = try stack(server.url("/file/jwks.json"))
        let known = try token(stack)
        #expect(try status(stack, known).0 == 200)
        // The key server stops answering; past the 10 s since the last fetch, unknown kids
        // start a refetch that hangs.
        FileManager.default.createFile(atPath: "\(server.dir)/jwks.json.hang", contents: Data())
        Thread.sleep(until: started.addingTimeInterval(10.5))
        let unknown = try (0..<8).map { _ in try token(stack, kid: UUID().uuidString) }
        let results = Results()
        let clients = unknown.map { token in
            Thread {
                let began = Date()
                let response = try? HTTPClient.request(port: stack.httpPort, path: "/articles/", headers: [("Authorization", token)])
                results.add(response?.status ?? -1, "\(Date().timeIntervalSince(began)) \(response?.json?["detail"] ?? "")")
            }
        }
        clients.forEach { $0.start() }
        // Meanwhile a token of a known key and the health check wait a second at most.
        let began = Date()
        #expect(try status(stack, known).0 == 200)
        #expect(try stack.get("/healthz").status == 200)
        #expect(Date().timeIntervalSince(began) < 1.5)
        let deadline = Date().addingTimeInterval(10)
        while results.all.count < unknown.count, Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        #expect(results.all.count == unknown.count)
        for (status, text) in results.all {
            let took = Double(text.prefix { $0 != " " }) ?? 99
            #expect(status == 401 && text.hasSuffix(" Token signed by an unknown key.") && took < 2, "\(status) \(text)")
        }
        #expect(try server.hits("/file/jwks.json") == 2, "one refetch for all of them")
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

    @Test func aHangingServerIsAbandonedWithinFiveSeconds() throws {
        let server = try JWKSServer()
        let database = try TestDatabase.migrated()
        let started = Date()
        let stack = try stack(server.url("/hang"), healthy: false, database: database)
        #expect(Date().timeIntervalSince(started) < 8, "the worker answers once the 5 s fetch is abandoned")
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
