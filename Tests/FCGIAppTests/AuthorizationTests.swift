@testable import FCGIApp
import Foundation
@testable import HTTP
@testable import PG
@testable import Stores
@testable import Support
import Testing

/// Who may do what, through nginx: access tokens' scopes (`COGNITO_RESOURCE_SERVER`) and
/// per-principal rate limits.
@Suite(.lane()) struct AuthorizationTests {
    private func send(_ stack: Stack, _ method: String, _ path: String, _ token: String, json: String? = nil) throws -> HTTPResponse {
        try stack.request(
            method, path, headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")],
            body: json.map { Data($0.utf8) })
    }

    /// A user bound to a new sub, and an access token of its with `scope` (and `groups`).
    private func accessToken(_ stack: Stack, _ name: String, scope: Any?, groups: [String]? = nil) throws -> String {
        let sub = UUID().uuidString.lowercased()
        try stack.database.connect().query(
            "INSERT INTO users (username, email, cognito_sub) VALUES ($1, $1 || '@example.com', $2)", name, sub)
        var claims = TestPool.accessClaims(sub: sub)
        claims["scope"] = scope
        claims["cognito:groups"] = groups
        return TestPool.token(claims: claims)
    }

    @Test func accessTokensMayDoWhatTheirScopesSay() throws {
        let stack = try Stack(environment: [
            "COGNITO_TOKEN_USE": "id,access", "COGNITO_RESOURCE_SERVER": "articles", "COGNITO_ADMIN_GROUP": "editors",
        ])
        #expect(stack.worker.output.contains("ID tokens carry no scopes and are not scope-checked"), "the start-up warning")
        let reader = try accessToken(stack, "reader", scope: "articles/read")
        let writer = try accessToken(stack, "writer", scope: "openid articles/read articles/write")
        let admin = try accessToken(stack, "admin", scope: "articles/admin", groups: ["editors"])
        // Cognito grants scopes per app client: the admin scope alone makes no user an admin.
        let scopedWriter = try accessToken(stack, "scoped", scope: "articles/read articles/write articles/admin")
        let db = try stack.database.connect()
        let readersOwn = try db.query("INSERT INTO articles (name, owner_id) SELECT 'readers', id FROM users WHERE username = 'reader' RETURNING id")
            .first!.decode(Int64.self, at: 0)
        func refusedForScope(_ response: HTTPResponse, _ scope: String) {
            #expect(response.status == 403, "\(response.text)")
            #expect(response.json == ["detail": "The token's scopes do not allow this: it needs \(scope)."])
            #expect(response.header("WWW-Authenticate") == #"Bearer error="insufficient_scope", scope="\#(scope)""#)
        }

        // Read scope: reads, and nothing else. One principal's answers are kept by no cache.
        let listed = try send(stack, "GET", "/articles/", reader)
        #expect(listed.status == 200 && listed.header("Cache-Control") == "no-store" && listed.header("X-Content-Type-Options") == "nosniff")
        let health = try stack.get("/healthz")
        #expect(health.header("X-Content-Type-Options") == "nosniff" && health.header("Cache-Control") == nil)
        #expect(try send(stack, "GET", "/articles/\(readersOwn)/", reader).status == 200)
        refusedForScope(try send(stack, "POST", "/articles/", reader, json: #"{"name": "no"}"#), "articles/write")
        refusedForScope(try send(stack, "PATCH", "/articles/\(readersOwn)/", reader, json: #"{"name": "no"}"#), "articles/write")
        refusedForScope(try send(stack, "DELETE", "/articles/\(readersOwn)/", reader), "articles/write")
        // Write scope: creates and changes its own, not another's; without the read scope, no reads.
        let created = try send(stack, "POST", "/articles/", writer, json: #"{"name": "written"}"#)
        #expect(created.status == 201, "\(created.text)")
        let writersOwn = try JSONDecoder().decode(Article.self, from: created.body).id
        #expect(try send(stack, "PATCH", "/articles/\(writersOwn)/", writer, json: #"{"name": "rewritten"}"#).status == 200)
        refusedForScope(try send(stack, "PATCH", "/articles/\(readersOwn)/", writer, json: #"{"name": "taken"}"#), "articles/admin")
        refusedForScope(try send(stack, "DELETE", "/articles/\(readersOwn)/", writer), "articles/admin")
        refusedForScope(try send(stack, "GET", "/articles/", admin), "articles/read")
        // The admin scope without the admin role: the user's own only.
        let notAdmin = try send(stack, "PATCH", "/articles/\(readersOwn)/", scopedWriter, json: #"{"name": "taken"}"#)
        #expect(notAdmin.status == 403 && notAdmin.json == ["detail": "You do not have permission to perform this action."])
        #expect(try send(stack, "DELETE", "/articles/\(writersOwn)/", scopedWriter).status == 403)
        // Admin scope and the admin role: changes anyone's.
        #expect(try send(stack, "PATCH", "/articles/\(readersOwn)/", admin, json: #"{"name": "moderated"}"#).status == 200)
        #expect(try send(stack, "DELETE", "/articles/\(writersOwn)/", admin).status == 204)
        #expect(try db.query("SELECT name FROM articles ORDER BY id").map { try $0.decode(String.self, at: 0) } == ["moderated"])

        // ID tokens carry no scopes: their owner's role governs them, as without a resource server.
        try db.query("INSERT INTO users (username, email) VALUES ('idtoken', 'idtoken@example.com')")
        let idToken = TestPool.token(claims: TestPool.idClaims(email: "idtoken@example.com"))
        #expect(try send(stack, "POST", "/articles/", idToken, json: #"{"name": "by id token"}"#).status == 201)
        #expect(try send(stack, "PATCH", "/articles/\(readersOwn)/", idToken, json: #"{"name": "x"}"#).json
            == ["detail": "You do not have permission to perform this action."])
        // A scope claim of the wrong type is refused like any malformed claim.
        let malformed = try accessToken(stack, "malformed", scope: ["articles/read"])
        let refused = try send(stack, "GET", "/articles/", malformed)
        #expect(refused.status == 401 && refused.json == ["detail": "Malformed token claims."])
    }

    /// sql/admin/grant_group_role.sql and revoke_group_role.sql apply on every thread within a
    /// second: a reader may not write, an admin changes anyone's.
    @Test func rolesFromGroupsApplyWithinASecond() throws {
        let stack = try Stack()
        let db = try stack.database.connect()
        try db.query("INSERT INTO users (username, email) VALUES ('member', 'member@example.com'), ('other', 'other@example.com')")
        let ids = try db.query(
            "INSERT INTO articles (name, owner_id) SELECT username, id FROM users ORDER BY id RETURNING id").map { try $0.decode(Int64.self, at: 0) }
        var claims = TestPool.idClaims(email: "member@example.com")
        claims["cognito:groups"] = ["staff", "everyone"]
        let member = TestPool.token(claims: claims)
        /// PATCHes of the member's own article and of the other's, on every thread.
        func statuses() throws -> [Int] {
            try (0..<8).flatMap { _ in
                try [ids[0], ids[1]].map { try send(stack, "PATCH", "/articles/\($0)/", member, json: "{}").status }
            }
        }
        func after(_ script: String, _ variables: [String: String], _ expected: [Int]) throws {
            let result = try stack.database.admin(script, variables)
            try #require(result.status == 0, "\(result.output)")
            try waitFor("\(script) \(variables) to apply", within: 1) { try statuses() == Array(repeating: expected, count: 8).flatMap { $0 } }
        }
        // No group has a role: the default, writer, changes its own only.
        #expect(try statuses() == Array(repeating: [200, 403], count: 8).flatMap { $0 })
        try after("grant_group_role.sql", ["group": "staff", "role": "reader"], [403, 403])
        #expect(try send(stack, "GET", "/articles/", member).status == 200, "a reader reads")
        #expect(try send(stack, "POST", "/articles/", member, json: #"{"name": "no"}"#).json
            == ["detail": "You do not have permission to perform this action."])
        // The highest of the groups' roles.
        try after("grant_group_role.sql", ["group": "everyone", "role": "admin"], [200, 200])
        try after("revoke_group_role.sql", ["group": "everyone"], [403, 403])
        try after("revoke_group_role.sql", ["group": "staff"], [200, 403])
        #expect(try db.query("SELECT count(*) FROM articles").first!.decode(Int.self, at: 0) == 2)
    }

    @Test func theDefaultRoleMayBeReader() throws {
        let stack = try Stack(environment: ["COGNITO_DEFAULT_ROLE": "reader", "COGNITO_ADMIN_GROUP": "editors"])
        try stack.database.connect().query(
            "INSERT INTO users (username, email) VALUES ('plain', 'plain@example.com'), ('editor', 'editor@example.com')")
        let plain = TestPool.token(claims: TestPool.idClaims(email: "plain@example.com"))
        var editorClaims = TestPool.idClaims(email: "editor@example.com")
        editorClaims["cognito:groups"] = ["editors"]
        let editor = TestPool.token(claims: editorClaims)
        #expect(try send(stack, "POST", "/articles/", plain, json: #"{"name": "no"}"#).status == 403)
        #expect(try send(stack, "GET", "/articles/", plain).status == 200)
        #expect(try send(stack, "POST", "/articles/", editor, json: #"{"name": "yes"}"#).status == 201, "the admin group")
    }

    /// A machine client (client-credentials: an access token whose sub is its client id, with
    /// no username) acts as the principal sql/admin/create_client.sql registered.
    @Test func aRegisteredMachineClientWritesAsItsNameAndIsManagedLikeAUser() throws {
        let stack = try Stack(environment: ["COGNITO_TOKEN_USE": "id,access", "COGNITO_RESOURCE_SERVER": "articles"])
        func psql(_ script: String, _ variables: [String: String]) throws {
            let result = try stack.database.admin(script, variables)
            try #require(result.status == 0, "\(result.output)")
        }
        var claims = TestPool.accessClaims(sub: TestPool.clientID)
        claims["client_id"] = TestPool.clientID
        claims["username"] = nil
        claims["scope"] = "articles/read articles/write"
        let machine = TestPool.token(claims: claims)
        let unregistered = try send(stack, "POST", "/articles/", machine, json: #"{"name": "nobody's"}"#)
        #expect(unregistered.status == 401)
        #expect(unregistered.json == ["detail": "No machine client is registered for this token's client id."])
        try psql("create_client.sql", ["client_id": TestPool.clientID, "name": "robot"])
        let created = try send(stack, "POST", "/articles/", machine, json: #"{"name": "by a machine"}"#)
        #expect(created.status == 201, "\(created.text)")
        #expect(try JSONDecoder().decode(Article.self, from: created.body).owner == "robot")
        #expect(try send(stack, "GET", "/articles/", machine).status == 200)
        // Its scopes count as any access token's; with the admin scope it changes anyone's
        // (a machine client has no groups, so no role beside its scopes).
        claims["scope"] = "articles/read"
        #expect(try send(stack, "POST", "/articles/", TestPool.token(claims: claims), json: #"{"name": "x"}"#).status == 403)
        let db = try stack.database.connect()
        try db.query("INSERT INTO users (username, email) VALUES ('person', 'person@example.com')")
        let persons = try db.query("INSERT INTO articles (name, owner_id) SELECT 'persons', id FROM users WHERE username = 'person' RETURNING id")
            .first!.decode(Int64.self, at: 0)
        claims["scope"] = "articles/read articles/write"
        #expect(try send(stack, "PATCH", "/articles/\(persons)/", TestPool.token(claims: claims), json: #"{"name": "x"}"#).status == 403)
        claims["scope"] = "articles/admin"
        let moderated = try send(stack, "PATCH", "/articles/\(persons)/", TestPool.token(claims: claims), json: #"{"name": "moderated"}"#)
        #expect(moderated.status == 200, "\(moderated.text)")
        try db.query("DELETE FROM articles WHERE id = $1", persons)
        try psql("deactivate_user.sql", ["username": "robot"])
        try waitFor("the deactivation on every thread", within: 1) {
            try (0..<8).allSatisfy { _ in try send(stack, "GET", "/articles/", machine).status == 401 }
        }
        #expect(try stack.database.connect().query("SELECT name FROM articles").map { try $0.decode(String.self, at: 0) } == ["by a machine"])
    }

    @Test func aPrincipalOverItsWriteLimitIsThrottledAndOthersAreNot() throws {
        let stack = try Stack(environment: ["RATE_LIMIT_WRITES_PER_MINUTE": "60", "FCGI_THREADS": "8"])
        let db = try stack.database.connect()
        try db.query("INSERT INTO users (username, email) VALUES ('busy', 'busy@example.com'), ('calm', 'calm@example.com')")
        let busy = TestPool.token(claims: TestPool.idClaims(email: "busy@example.com"))
        let calm = TestPool.token(claims: TestPool.idClaims(email: "calm@example.com"))
        // 70 POSTs at once: a minute's 60, and those the bucket refilled meanwhile (one a second).
        let began = Date()
        let answers = Results()
        let senders = (0..<7).map { sender in
            Thread {
                for n in 0..<10 {
                    let response = try? send(stack, "POST", "/articles/", busy, json: #"{"name": "b\#(sender)-\#(n)"}"#)
                    answers.add(response?.status ?? -1, "\(response?.header("Retry-After") ?? "-") \(response?.text ?? "")")
                }
            }
        }
        senders.forEach { $0.start() }
        try waitFor("70 answers", within: 30) { answers.all.count == 70 }
        let elapsed = Date().timeIntervalSince(began)
        let created = answers.all.filter { $0.status == 201 }.count
        #expect(created >= 60 && created <= 60 + Int(elapsed.rounded(.up)), "\(created) in \(elapsed) s")
        let throttled = answers.all.filter { $0.status == 429 }
        #expect(throttled.count == 70 - created)
        for answer in throttled {
            #expect(answer.body == #"1 {"detail":"Request was throttled. Expected available in 1 seconds."}"#, "\(answer.body)")
        }
        #expect(try db.query("SELECT count(*) FROM articles").first!.decode(Int.self, at: 0) == created)
        let metrics = try stack.operations("GET", "/metrics").text
        #expect(metrics.contains(#"articles_fcgi_throttled_total{kind="write"} \#(throttled.count)"#), "\(metrics.prefix(200))")
        // Another principal, and the same one's reads, are not limited.
        #expect(try send(stack, "POST", "/articles/", calm, json: #"{"name": "calm"}"#).status == 201)
        #expect(try send(stack, "GET", "/articles/?limit=1", busy).status == 200)
        // After the wait it names, the principal writes again.
        Thread.sleep(forTimeInterval: 1)  // Retry-After: 1, the refill time: about time
        #expect(try send(stack, "POST", "/articles/", busy, json: #"{"name": "again"}"#).status == 201)
    }
}
