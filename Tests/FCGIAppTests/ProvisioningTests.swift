@testable import Auth
@testable import FCGIApp
import Foundation
@testable import JSON
@testable import PG
import Testing

/// The endpoint Cognito's Post Confirmation trigger reaches through its Lambda function.
@Suite(.lane()) struct ProvisioningTests {
    static let secret = "0123456789abcdef0123456789abcdef-test-secret"

    func event(sub: String, userName: String, email: String, verified: String = "true", pool: String = TestPool.poolID) -> Data {
        let object: [String: Any] = [
            "version": "1", "region": "us-test-1", "userPoolId": pool, "userName": userName,
            "triggerSource": "PostConfirmation_ConfirmSignUp", "callerContext": ["clientId": TestPool.clientID],
            "request": ["userAttributes": ["sub": sub, "email": email, "email_verified": verified, "cognito:user_status": "CONFIRMED"]],
            "response": [:] as [String: Any],
        ]
        return try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    }

    /// POSTs `body` signed with `secret` at `timestamp` (now by default).
    func post(
        _ stack: Stack, _ body: Data, secret: String = Self.secret, timestamp: Int = Int(Date().timeIntervalSince1970),
        signedBody: Data? = nil
    ) throws -> HTTPResponse {
        let signed = Array("\(timestamp).".utf8) + [UInt8](signedBody ?? body)
        let mac = hmacSHA256(key: Array(secret.utf8), data: signed).map { String(format: "%02x", $0) }.joined()
        return try stack.operations(
            "POST", "/internal/cognito/post-confirmation",
            headers: [("Content-Type", "application/json"), ("X-Signature-Timestamp", String(timestamp)), ("X-Signature", "sha256=\(mac)")],
            body: body)
    }

    func users(_ stack: Stack) throws -> [String] {
        try stack.database.connect().query("SELECT username, coalesce(email, '-'), coalesce(cognito_sub, '-') FROM users ORDER BY id").map {
            "\(try $0.decode(String.self, at: 0)) \(try $0.decode(String.self, at: 1)) \(try $0.decode(String.self, at: 2))"
        }
    }

    @Test func aSignedEventCreatesTheUserOnceAndItsTokenWorks() throws {
        let stack = try Stack(environment: ["PROVISIONING_SECRET": Self.secret])
        let sub = UUID().uuidString.lowercased()
        let body = event(sub: sub, userName: "carol", email: "carol@example.com")
        let signedAt = Int(Date().timeIntervalSince1970)
        let first = try post(stack, body, timestamp: signedAt)
        #expect(first.status == 200)
        let created = try #require(try JSONSerialization.jsonObject(with: first.body) as? [String: Any])
        #expect(created["username"] as? String == "carol" && created["email"] as? String == "carol@example.com")
        #expect(Set(created.keys) == ["id", "username", "email"])
        // The same event signed again (Cognito may run the trigger again): the same answer, still one row.
        let again = try post(stack, body, timestamp: signedAt - 1)
        #expect(again.status == 200 && again.body == first.body)
        #expect(try users(stack) == ["carol carol@example.com \(sub)"])
        // A token for that sub works at once, without any psql step.
        let token = TestPool.token(claims: TestPool.idClaims(sub: sub, email: "carol@example.com"))
        #expect(try stack.get("/articles/", headers: [("Authorization", "Bearer \(token)")]).status == 200)
        // The user's name and email follow Cognito's, by sub.
        let renamed = try post(stack, event(sub: sub, userName: "caroline", email: "caroline@example.com"))
        #expect(renamed.status == 200)
        #expect(try users(stack) == ["caroline caroline@example.com \(sub)"])
    }

    @Test func refusalsCreateNothing() throws {
        let stack = try Stack(environment: ["PROVISIONING_SECRET": Self.secret])
        let body = event(sub: UUID().uuidString, userName: "mallory", email: "mallory@example.com")
        func detail(_ response: HTTPResponse) -> String? { response.json?["detail"] }
        let wrongSecret = try post(stack, body, secret: Self.secret + "x")
        #expect(wrongSecret.status == 401 && detail(wrongSecret) == "Invalid request signature.")
        let stale = try post(stack, body, timestamp: Int(Date().timeIntervalSince1970) - 301)
        #expect(stale.status == 401 && detail(stale) == "The request's timestamp is more than 5 minutes off.")
        let future = try post(stack, body, timestamp: Int(Date().timeIntervalSince1970) + 301)
        #expect(future.status == 401)
        let altered = try post(stack, body, signedBody: event(sub: UUID().uuidString, userName: "other", email: "o@example.com"))
        #expect(altered.status == 401 && detail(altered) == "Invalid request signature.")
        let unsigned = try stack.operations("POST", "/internal/cognito/post-confirmation", headers: [("Content-Type", "application/json")], body: body)
        #expect(unsigned.status == 401 && detail(unsigned) == "Missing or malformed request signature.")
        let otherPool = try post(stack, event(sub: UUID().uuidString, userName: "eve", email: "eve@example.com", pool: "us-test-1_Other"))
        #expect(otherPool.status == 403 && detail(otherPool) == "The event is for another user pool.")
        let malformed = try post(stack, Data(#"{"userPoolId": "\#(TestPool.poolID)"}"#.utf8))
        #expect(malformed.status == 400 && detail(malformed)?.hasPrefix("Malformed event:") == true)
        let notJSON = try post(stack, Data("not json".utf8))
        #expect(notJSON.status == 400)
        #expect(try users(stack) == [])
        #expect(try stack.operations("GET", "/internal/cognito/post-confirmation").status == 405)
        // The public server never passes it on.
        let publicly = try stack.request("POST", "/internal/cognito/post-confirmation", headers: [("Content-Type", "application/json")], body: body)
        #expect(publicly.status == 404 && publicly.json == ["detail": "Not found."])
    }

    @Test func withoutASecretTheRouteDoesNotExist() throws {
        let stack = try Stack()
        let response = try post(stack, event(sub: UUID().uuidString, userName: "nobody", email: "nobody@example.com"))
        #expect(response.status == 404)
        #expect(response.json == ["detail": "Not found."])
        #expect(try users(stack) == [])
    }

    @Test func existingRowsAreBoundOrRefused() throws {
        let stack = try Stack(environment: ["PROVISIONING_SECRET": Self.secret])
        let db = try stack.database.connect()
        try db.query("INSERT INTO users (username, email) VALUES ('dave', 'Dave@Example.com'), ('taken', 'taken@example.com')")
        try db.query("INSERT INTO users (username, email, cognito_sub) VALUES ('bound', 'bound@example.com', 'sub-of-bound')")
        // An unverified email neither binds the row an administrator made nor is stored.
        let unverified = try post(stack, event(sub: "sub-eve", userName: "dave2", email: "dave@example.com", verified: "false"))
        #expect(unverified.status == 200 && unverified.text.contains(#""email":null"#), "\(unverified.text)")
        // A verified one does (any case), keeping the row and its username.
        let bound = try post(stack, event(sub: "sub-dave", userName: "dave2", email: "dave@example.com"))
        #expect(bound.status == 200)
        let row = try #require(try JSONSerialization.jsonObject(with: bound.body) as? [String: Any])
        let daveID = try db.query("SELECT id FROM users WHERE username = 'dave'").first!.decode(Int64.self, at: 0)
        #expect((row["id"] as? NSNumber)?.int64Value == daveID && row["username"] as? String == "dave" && row["email"] as? String == "Dave@Example.com")
        // A row bound to another sub, or a username that is taken: 409.
        #expect(try post(stack, event(sub: "sub-x", userName: "x", email: "bound@example.com")).status == 409)
        let taken = try post(stack, event(sub: "sub-y", userName: "taken", email: "new@example.com"))
        #expect(taken.status == 409 && taken.json?["detail"] == "The username is taken by another user.")
        // An address lower() folds onto an ASCII one (İ to i) is another address: never bound.
        try db.query("INSERT INTO users (username, email) VALUES ('iris', 'iris@example.com')")
        let lookalike = try post(stack, event(sub: "sub-iris", userName: "iris2", email: "İris@example.com"))
        #expect(lookalike.status == 409 && lookalike.json?["detail"] == "A user with a similar email exists; an administrator must bind it.")
        #expect(try users(stack) == [
            "dave Dave@Example.com sub-dave", "taken taken@example.com -", "bound bound@example.com sub-of-bound",
            "dave2 - sub-eve", "iris iris@example.com -",
        ])
    }

    /// Nobody takes an address first with an unverified claim: the owner's verified event gets
    /// it, and an unverified rename changes no address.
    @Test func anUnverifiedEmailIsNeverStored() throws {
        let stack = try Stack(environment: ["PROVISIONING_SECRET": Self.secret])
        let squatter = try post(stack, event(sub: "sub-squatter", userName: "squatter", email: "Victim@Corp.example", verified: "false"))
        #expect(squatter.status == 200, "\(squatter.text)")
        let owner = try post(stack, event(sub: "sub-owner", userName: "victim", email: "Victim@Corp.example"))
        #expect(owner.status == 200, "\(owner.text)")
        #expect(try users(stack) == ["squatter - sub-squatter", "victim Victim@Corp.example sub-owner"])
        let renamed = try post(stack, event(sub: "sub-owner", userName: "victim2", email: "other@corp.example", verified: "false"))
        #expect(renamed.status == 200)
        #expect(try users(stack) == ["squatter - sub-squatter", "victim2 Victim@Corp.example sub-owner"])
        // An administrator can still create a user with an address only an unverified claim named.
        try stack.database.connect().query("INSERT INTO users (username, email) VALUES ('admin-made', 'other@corp.example')")
    }

    /// A signed request is accepted once, whichever worker it reaches: a replay cannot bring
    /// back a user an administrator deleted; the same event signed again still can.
    @Test func aSignedRequestIsAcceptedOnce() throws {
        let stack = try Stack(environment: ["PROVISIONING_SECRET": Self.secret])
        let second = try Stack(database: stack.database, environment: ["PROVISIONING_SECRET": Self.secret])
        let body = event(sub: "sub-frank", userName: "frank", email: "frank@example.com")
        let signedAt = Int(Date().timeIntervalSince1970)
        #expect(try post(stack, body, timestamp: signedAt).status == 200)
        let delete = try stack.database.admin("delete_user.sql", ["username": "frank"])
        #expect(delete.status == 0, "\(delete.output)")
        for target in [stack, second] {
            let replay = try post(target, body, timestamp: signedAt)
            #expect(replay.status == 401)
            #expect(replay.json == ["detail": "This signed request was received before; sign it again to resend it."])
        }
        #expect(try users(stack) == [])
        #expect(try post(second, body, timestamp: signedAt + 1).status == 200)
        #expect(try users(stack) == ["frank frank@example.com sub-frank"])
    }

    @Test func aSecretFileMustBePrivate() throws {
        let dir = try TestEnvironment.scratchFolder("secret")
        let path = "\(dir)/secret"
        try (Self.secret + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o644)
        let open = try run(TestEnvironment.binary(), ["check-config"], environment: [
            "AWS_USER_POOLS_ID": TestPool.poolID, "AWS_APP_CLIENT_ID": "c", "PROVISIONING_SECRET_FILE": path,
        ])
        #expect(open.status != 0)
        #expect(open.output.contains("has mode 644: others may read it"))
        chmod(path, 0o600)
        let ok = try run(TestEnvironment.binary(), ["check-config"], environment: [
            "AWS_USER_POOLS_ID": TestPool.poolID, "AWS_APP_CLIENT_ID": "c", "PROVISIONING_SECRET_FILE": path,
        ])
        #expect(ok.status == 0, "\(ok.output)")
        #expect(ok.output.contains("PROVISIONING_SECRET") && ok.output.contains("*** (from \(path))") && !ok.output.contains(Self.secret))
        let short = try run(TestEnvironment.binary(), ["check-config"], environment: [
            "AWS_USER_POOLS_ID": TestPool.poolID, "AWS_APP_CLIENT_ID": "c", "PROVISIONING_SECRET": "short",
        ])
        #expect(short.status != 0 && short.output.contains("at least 32 bytes"))
    }
}

/// examples/post-confirmation-lambda: the function's own tests, against a running worker.
@Suite(.lane()) struct LambdaExampleTests {
    @Test func theFunctionsTestsPassAgainstTheWorker() throws {
        let stack = try Stack(environment: ["PROVISIONING_SECRET": ProvisioningTests.secret])
        var environment = ProcessInfo.processInfo.environment
        environment["PROVISIONING_URL"] = "http://127.0.0.1:\(stack.opsPort)/internal/cognito/post-confirmation"
        environment["PROVISIONING_SECRET"] = ProvisioningTests.secret
        environment["TEST_USER_POOL_ID"] = TestPool.poolID
        environment["PYTHONDONTWRITEBYTECODE"] = "1"
        let tests = try run(
            "/usr/bin/env", ["python3", "-m", "unittest", "discover", "-v", "-s", TestEnvironment.path("examples/post-confirmation-lambda")],
            environment: environment)
        #expect(tests.status == 0, "\(tests.output)")
        #expect(tests.output.contains("Ran 5 tests"))
        // What the function sent is in the table: one user, created once.
        let rows = try stack.database.connect().query("SELECT username FROM users WHERE username LIKE 'lambda-%'")
        #expect(rows.count == 1)
    }
}

@Suite(.lane()) struct AutoProvisionTests {
    @Test func aFirstTokenCreatesItsUserOnceEvenWhenRequestsRace() throws {
        let stack = try Stack(environment: ["AUTO_PROVISION_USERS": "true"])
        let sub = UUID().uuidString.lowercased()
        let token = TestPool.token(claims: TestPool.idClaims(sub: sub, email: "first@example.com"))
        let results = Results()
        let racers = (0..<8).map { _ in
            Thread { results.add((try? stack.get("/articles/", headers: [("Authorization", "Bearer \(token)")]).status) ?? -1, "") }
        }
        racers.forEach { $0.start() }
        while results.all.count < racers.count { Thread.sleep(forTimeInterval: 0.01) }
        #expect(results.all.map(\.status) == Array(repeating: 200, count: 8))
        let rows = try stack.database.connect().query("SELECT username, email, cognito_sub FROM users").map {
            "\(try $0.decode(String.self, at: 0)) \(try $0.decode(String.self, at: 1)) \(try $0.decode(String.self, at: 2))"
        }
        #expect(rows == ["first first@example.com \(sub)"])

        // Only ID tokens with a verified email.
        var unverified = TestPool.idClaims(email: "unverified@example.com")
        unverified["email_verified"] = false
        #expect(try stack.get("/articles/", headers: [("Authorization", TestPool.token(claims: unverified))]).status == 401)
        #expect(try stack.database.connect().query("SELECT 1 FROM users").count == 1)
    }

    @Test func offByDefault() throws {
        let stack = try Stack()
        let token = TestPool.token(claims: TestPool.idClaims(email: "nobody@example.com"))
        let response = try stack.get("/articles/", headers: [("Authorization", "Bearer \(token)")])
        #expect(response.status == 401 && response.json == ["detail": "No user matches this token."])
        #expect(try stack.database.connect().query("SELECT 1 FROM users").count == 0)
    }
}
