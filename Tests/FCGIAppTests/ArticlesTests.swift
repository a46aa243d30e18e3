@testable import FCGIApp
import Foundation
@testable import JSON
@testable import PG
@testable import Stores
import Testing

/// One responder for the article tests, in process, with `COGNITO_ADMIN_GROUP=editors`.
final class ArticlesStack: @unchecked Sendable {
    static let shared = Result { try ArticlesStack() }
    let stack: any Service

    private init() throws {
        stack = try InProcess(environment: ["COGNITO_ADMIN_GROUP": "editors"])
    }

    /// A new user and a valid ID token for it (in `groups`).
    func caller(groups: [String] = []) throws -> (username: String, token: String) {
        let name = "a" + UUID().uuidString.prefix(12).lowercased()
        try stack.database.connect().query("INSERT INTO users (username, email) VALUES ($1, $1 || '@example.com')", name)
        var claims = TestPool.idClaims(email: "\(name)@example.com")
        if !groups.isEmpty { claims["cognito:groups"] = groups }
        return (name, TestPool.token(claims: claims))
    }
}

@Suite(.lane()) struct ArticlesTests {
    let shared: any Service
    init() throws { shared = try ArticlesStack.shared.get().stack }

    private func send(
        _ method: String, _ path: String, _ token: String, json: String? = nil, headers: [(String, String)] = []
    ) throws -> HTTPResponse {
        var all = [("Authorization", "Bearer \(token)")] + headers
        if json != nil, !headers.contains(where: { $0.0 == "Content-Type" }) { all.append(("Content-Type", "application/json")) }
        return try shared.request(method, path, headers: all, body: json.map { Data($0.utf8) })
    }

    private func article(_ response: HTTPResponse) throws -> Article {
        try JSONDecoder().decode(Article.self, from: response.body)
    }

    private func fieldErrors(_ response: HTTPResponse) -> [String: [String]]? {
        (try? JSONSerialization.jsonObject(with: response.body)) as? [String: [String]]
    }

    @Test func createReadAndTheArticleShape() throws {
        let (username, token) = try ArticlesStack.shared.get().caller()
        let created = try send("POST", "/articles/", token, json: #"{"name": "First"}"#)
        #expect(created.status == 201)
        let article = try article(created)
        #expect(created.header("Location") == "/articles/\(article.id)/")
        let keys = try #require(try JSONSerialization.jsonObject(with: created.body) as? [String: Any]).keys.sorted()
        #expect(keys == ["created_at", "id", "name", "owner", "updated_at"])
        #expect(article.owner == username)
        #expect(article.createdAt.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z/) != nil, "\(article.createdAt)")
        let stored = try #require(try shared.database.connect().query(
            #"SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') FROM articles WHERE id = $1"#,
            article.id).first)
        #expect(try stored.decode(String.self, at: 0) == article.createdAt)
        for path in ["/articles/\(article.id)/", "/articles/\(article.id)"] {
            let read = try send("GET", path, token)
            #expect(read.status == 200)
            #expect(try self.article(read) == article)
            #expect(read.header("ETag") == created.header("ETag"))
        }
        let other = try ArticlesStack.shared.get().caller()
        #expect(try send("GET", "/articles/\(article.id)/", other.token).status == 200, "anyone may read")
        let head = try send("HEAD", "/articles/\(article.id)/", token)
        #expect(head.status == 200 && head.body.isEmpty)
        #expect(try send("GET", "/articles/999999999/", token).json == ["detail": "Not found."])
        let malformed = try shared.get("/articles/abc/")
        #expect(malformed.status == 404 && malformed.json == ["detail": "Not found."])
    }

    @Test func methodsOutsideTheRouteAre405WithAllow() throws {
        let token = try ArticlesStack.shared.get().caller().token
        let onList = try send("PUT", "/articles/", token, json: "{}")
        #expect(onList.status == 405)
        #expect(onList.header("Allow") == "GET, HEAD, POST, OPTIONS")
        #expect(onList.json == ["detail": #"Method "PUT" not allowed."#])
        let onOne = try send("POST", "/articles/1/", token, json: "{}")
        #expect(onOne.status == 405)
        #expect(onOne.header("Allow") == "GET, HEAD, PUT, PATCH, DELETE, OPTIONS")
    }

    @Test func onlyTheOwnerOrAnEditorChangesAnArticle() throws {
        let stack = try ArticlesStack.shared.get()
        let owner = try stack.caller()
        let stranger = try stack.caller(groups: ["readers"])
        let editor = try stack.caller(groups: ["readers", "editors"])
        let id = try article(send("POST", "/articles/", owner.token, json: #"{"name": "Mine"}"#)).id
        let forbidden = ["detail": "You do not have permission to perform this action."]
        let patched = try send("PATCH", "/articles/\(id)/", owner.token, json: #"{"name": "Mine, edited"}"#)
        #expect(patched.status == 200)
        #expect(try article(patched).name == "Mine, edited")
        for (method, body) in [("PATCH", #"{"name": "Theirs"}"#), ("PUT", #"{"name": "Theirs"}"#), ("DELETE", nil)] {
            let response = try send(method, "/articles/\(id)/", stranger.token, json: body)
            #expect(response.status == 403, "\(method)")
            #expect(response.json == forbidden)
        }
        #expect(try article(send("GET", "/articles/\(id)/", owner.token)).name == "Mine, edited")
        let put = try send("PUT", "/articles/\(id)/", editor.token, json: #"{"name": "Edited by an editor"}"#)
        #expect(put.status == 200)
        #expect(try article(put).owner == owner.username, "the owner stays")
        let putWithoutName = try send("PUT", "/articles/\(id)/", owner.token, json: "{}")
        #expect(fieldErrors(putWithoutName) == ["name": ["This field is required."]])
        let emptyPatch = try send("PATCH", "/articles/\(id)/", owner.token, json: "{}")
        #expect(emptyPatch.status == 200)
        #expect(try article(emptyPatch).name == "Edited by an editor")
        let deleted = try send("DELETE", "/articles/\(id)/", editor.token)
        #expect(deleted.status == 204 && deleted.body.isEmpty)
        #expect(try send("GET", "/articles/\(id)/", owner.token).status == 404)
        #expect(try send("DELETE", "/articles/\(id)/", owner.token).status == 404)
    }

    @Test func etagsGuardConcurrentEdits() throws {
        let owner = try ArticlesStack.shared.get().caller()
        let created = try send("POST", "/articles/", owner.token, json: #"{"name": "v1"}"#)
        let id = try article(created).id
        let v1 = try #require(created.header("ETag"))
        let notModified = try send("GET", "/articles/\(id)/", owner.token, headers: [("If-None-Match", v1)])
        #expect(notModified.status == 304 && notModified.body.isEmpty)
        #expect(notModified.header("ETag") == v1)
        let updated = try send("PATCH", "/articles/\(id)/", owner.token, json: #"{"name": "v2"}"#, headers: [("If-Match", v1)])
        #expect(updated.status == 200)
        let v2 = try #require(updated.header("ETag"))
        #expect(v2 != v1)
        // A second editor still holding v1 is refused, and the row stays as v2.
        let stale = try send("PUT", "/articles/\(id)/", owner.token, json: #"{"name": "v3"}"#, headers: [("If-Match", v1)])
        #expect(stale.status == 412)
        #expect(stale.json?["detail"] != nil)
        #expect(try article(send("GET", "/articles/\(id)/", owner.token)).name == "v2")
        #expect(try send("DELETE", "/articles/\(id)/", owner.token, headers: [("If-Match", v1)]).status == 412)
        #expect(try send("GET", "/articles/\(id)/", owner.token, headers: [("If-None-Match", v1)]).status == 200)
        #expect(try send("DELETE", "/articles/\(id)/", owner.token, headers: [("If-Match", v2)]).status == 204)
    }

    @Test func bodiesAreValidatedAsDjangoRESTFrameworkDoes() throws {
        let token = try ArticlesStack.shared.get().caller().token
        for (body, message) in [
            ("{}", "This field is required."), (#"{"name": null}"#, "This field may not be null."),
            (#"{"name": " \t "}"#, "This field may not be blank."), (#"{"name": 5}"#, "Not a valid string."),
            (#"{"name": ["x"]}"#, "Not a valid string."),
            (#"{"name": "\#(String(repeating: "x", count: 51))"}"#, "Ensure this field has no more than 50 characters."),
            (#"{"name": "a\u0000b"}"#, "Null characters are not allowed."),
        ] {
            let response = try send("POST", "/articles/", token, json: body)
            #expect(response.status == 400, "\(body)")
            #expect(fieldErrors(response) == ["name": [message]], "\(body): \(response.text)")
        }
        let notJSON = try send("POST", "/articles/", token, json: "{nope")
        #expect(notJSON.status == 400 && notJSON.json?["detail"]?.hasPrefix("JSON parse error - ") == true)
        let list = try send("POST", "/articles/", token, json: "[1]")
        #expect(list.status == 400)
        #expect(fieldErrors(list) == ["non_field_errors": ["Invalid data. Expected a dictionary, but got list."]])
        for contentType in ["text/plain", "application/x-www-form-urlencoded", "application/jsonp"] {
            let response = try send("POST", "/articles/", token, json: #"{"name": "x"}"#, headers: [("Content-Type", contentType)])
            #expect(response.status == 415)
            #expect(response.json == ["detail": "Unsupported media type \"\(contentType)\" in request."])
        }
        let charset = try send("POST", "/articles/", token, json: #"{"name": "x"}"#, headers: [("Content-Type", "Application/JSON; charset=utf-8")])
        #expect(charset.status == 201)
        let noType = try shared.request("POST", "/articles/", headers: [("Authorization", token)], body: Data(#"{"name":"x"}"#.utf8))
        #expect(noType.status == 415)
        #expect(noType.json == ["detail": #"Unsupported media type "" in request."#])
    }

    @Test func namesRoundTripExactlyAndLengthCountsCodePoints() throws {
        let token = try ArticlesStack.shared.get().caller().token
        let names = [
            #"quote " and backslash \ "#.trimmingCharacters(in: .whitespaces), "tab\tnew\nline\u{7}bell",
            "emoji 😀👩‍👩‍👧 flags 🇳🇿", "שלום עולם right-to-left", "zero\u{200B}width",
            String(repeating: "e\u{301}", count: 25), String(repeating: "😀", count: 50),
        ]
        for name in names {
            let body = try JSONSerialization.data(withJSONObject: ["name": name])
            let created = try send("POST", "/articles/", token, json: String(decoding: body, as: UTF8.self))
            #expect(created.status == 201, "\(name): \(created.text)")
            let id = try article(created).id
            #expect(try article(send("GET", "/articles/\(id)/", token)).name == name)
        }
        let tooLong = String(repeating: "e\u{301}", count: 25) + "x"
        #expect(tooLong.count == 26 && tooLong.unicodeScalars.count == 51)
        let refused = try send("POST", "/articles/", token, json: String(decoding: try JSONSerialization.data(withJSONObject: ["name": tooLong]), as: UTF8.self))
        #expect(fieldErrors(refused) == ["name": ["Ensure this field has no more than 50 characters."]])
        let direct = try #require(throws: PGError.self) {
            try shared.database.connect().query("INSERT INTO articles (name, owner_id) SELECT $1, min(id) FROM users", tooLong)
        }
        #expect(direct.sqlState == .checkViolation)
        // And from psql, as an administrator would insert it.
        let script = try TestEnvironment.scratchFolder("psql") + "/insert.sql"
        try "INSERT INTO articles (name, owner_id) SELECT :'name', min(id) FROM users;\n".write(toFile: script, atomically: true, encoding: .utf8)
        for (name, accepted) in [(tooLong, false), (String(tooLong.dropLast()), true)] {
            let psql = try run("/usr/bin/psql", [
                "-X", "-v", "ON_ERROR_STOP=1", "-v", "name=\(name)", try shared.database.adminURI(), "-f", script,
            ])
            #expect((psql.status == 0) == accepted, "\(psql.output)")
            if !accepted { #expect(psql.output.contains("violates check constraint \"articles_name_length\"")) }
        }
    }

    @Test func pageParametersAreChecked() throws {
        let token = try ArticlesStack.shared.get().caller().token
        for query in ["limit=0", "limit=1001", "limit=-1", "limit=abc", "limit=", "limit=1.5", "limit=+5", "after=-1", "after=x", "after=99999999999999999999", "limit=5&limit=6"] {
            let response = try send("GET", "/articles/?\(query)", token)
            #expect(response.status == 400, "\(query)")
            #expect(response.json?["detail"] != nil, "\(query)")
        }
        #expect(try send("GET", "/articles/?limit=1000&after=0&other=x", token).status == 200)
    }
}
