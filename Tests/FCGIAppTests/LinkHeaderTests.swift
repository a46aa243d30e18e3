import Foundation
@testable import PG
import Testing

/// `Link` and `Location` through nginx: relative references, whatever `Host` and forwarded
/// scheme a client sends.
@Suite(.lane()) struct LinkHeaderTests {
    @Test func linksNeverRepeatTheHostHeaderOrTheScheme() throws {
        let stack = try Stack()
        let db = try stack.database.connect()
        try db.query("INSERT INTO users (username, email) VALUES ('linker', 'linker@example.com')")
        let token = TestPool.token(claims: TestPool.idClaims(email: "linker@example.com"))
        let headers = [
            ("Authorization", "Bearer \(token)"), ("Host", "evil.example"), ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.example"), ("Forwarded", "proto=https;host=evil.example"),
        ]
        let first = try stack.request(
            "POST", "/articles/", headers: headers + [("Content-Type", "application/json")], body: Data(#"{"name": "one"}"#.utf8))
        #expect(first.status == 201, "\(first.text)")
        let id = try db.query("SELECT id FROM articles WHERE name = 'one'").first!.decode(Int64.self, at: 0)
        #expect(first.header("Location") == "/articles/\(id)/")
        _ = try stack.request(
            "POST", "/articles/", headers: headers + [("Content-Type", "application/json")], body: Data(#"{"name": "two"}"#.utf8))
        let page = try stack.request("GET", "/articles/?limit=1", headers: headers)
        #expect(page.status == 200)
        #expect(page.header("Link") == "</articles/?after=\(id)&limit=1>; rel=\"next\"")
        for response in [first, page] {
            let everything = response.headers.map { "\($0.name): \($0.value)" }.joined(separator: "\n") + response.text
            #expect(!everything.contains("evil.example") && !everything.contains("https"), "\(everything)")
        }
    }
}
