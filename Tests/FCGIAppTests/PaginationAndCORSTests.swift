@testable import FCGIApp
import Foundation
@testable import HTTP
@testable import PG
@testable import Stores
@testable import Support
import Testing

/// The Link chain over a table larger than a page, in process.
@Suite(.lane()) struct PaginationTests {
    @Test func theLinkChainWalksEveryArticleExactlyOnce() throws {
        let stack = try InProcess()
        let db = try stack.database.connect()
        try db.query("INSERT INTO users (username, email) VALUES ('pager', 'pager@example.com')")
        try db.query("INSERT INTO articles (name, owner_id) SELECT 'a' || g, (SELECT id FROM users) FROM generate_series(1, 2500) g")
        let token = TestPool.token(claims: TestPool.idClaims(email: "pager@example.com"))
        let expected = try db.query("SELECT id FROM articles ORDER BY id").map { try $0.decode(Int64.self, at: 0) }

        for (limit, pages) in [(1000, 3), (100, 25)] {
            var seen: [Int64] = []
            var next: String? = "/articles/?limit=\(limit)"
            var count = 0
            while let path = next {
                let response = try stack.get(path, headers: [("Authorization", "Bearer \(token)")])
                #expect(response.status == 200)
                let page = try JSONDecoder().decode([Article].self, from: response.body)
                #expect(page.count <= limit)
                seen += page.map(\.id)
                count += 1
                next = try response.header("Link").map { link in
                    let url = try #require(link.firstMatch(of: /^<(\/articles\/\?after=\d+&limit=\d+)>; rel="next"$/))
                    return String(url.1)
                }
            }
            #expect(seen == expected)
            #expect(count == pages)
        }
        let one = try stack.get("/articles/?limit=1", headers: [("Authorization", token)])
        #expect(try JSONDecoder().decode([Article].self, from: one.body).map(\.id) == [expected[0]])
        let defaultPage = try stack.get("/articles/", headers: [("Authorization", token)])
        #expect(try JSONDecoder().decode([Article].self, from: defaultPage.body).count == 100)
        let last = try stack.get("/articles/?after=\(expected[2_499 - 5])", headers: [("Authorization", token)])
        #expect(try JSONDecoder().decode([Article].self, from: last.body).count == 5)
        #expect(last.header("Link") == nil)
    }
}

/// Cross-origin requests, in process: preflights and the headers of listed origins.
@Suite(.lane()) struct CORSTests {
    @Test func listedOriginsGetCORSHeadersAndOthersNone() throws {
        let stack = try InProcess(environment: ["CORS_ALLOWED_ORIGINS": "http://localhost:3000, https://app.example.com"])
        try stack.database.connect().query("INSERT INTO users (username, email) VALUES ('web', 'web@example.com')")
        let token = TestPool.token(claims: TestPool.idClaims(email: "web@example.com"))

        let preflight = try stack.request("OPTIONS", "/articles/", headers: [
            ("Origin", "http://localhost:3000"), ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "authorization, content-type"),
        ])
        #expect(preflight.status == 204)
        #expect(preflight.header("Access-Control-Allow-Origin") == "http://localhost:3000")
        #expect(preflight.header("Access-Control-Allow-Methods") == "GET, HEAD, POST, OPTIONS")
        #expect(preflight.header("Access-Control-Allow-Headers") == "Authorization, Content-Type, If-Match, If-None-Match")
        #expect(preflight.header("Vary") == "Origin")
        let id = try stack.database.connect().query(
            "INSERT INTO articles (name, owner_id) SELECT 'x', id FROM users RETURNING id").first!.decode(Int64.self, at: 0)
        let onOne = try stack.request("OPTIONS", "/articles/\(id)/", headers: [("Origin", "https://app.example.com"), ("Access-Control-Request-Method", "PATCH")])
        #expect(onOne.status == 204)
        #expect(onOne.header("Access-Control-Allow-Methods") == "GET, HEAD, PUT, PATCH, DELETE, OPTIONS")
        // A preflight reads no data: an id that does not exist gets the same answer, so it
        // tells nobody without a token which ids exist.
        let gone = try stack.request("OPTIONS", "/articles/\(id + 1)/", headers: [("Origin", "https://app.example.com"), ("Access-Control-Request-Method", "PATCH")])
        #expect(gone.status == 204)
        #expect(gone.headers.map { "\($0.name): \($0.value)" }.filter { !$0.hasPrefix("Date:") }
            == onOne.headers.map { "\($0.name): \($0.value)" }.filter { !$0.hasPrefix("Date:") })

        let refused = try stack.request("OPTIONS", "/articles/", headers: [("Origin", "https://evil.example"), ("Access-Control-Request-Method", "POST")])
        #expect(refused.status == 204)
        #expect(refused.headers.filter { $0.name.lowercased().hasPrefix("access-control-") }.isEmpty)

        let allowed = try stack.get("/articles/", headers: [("Origin", "https://app.example.com"), ("Authorization", token)])
        #expect(allowed.status == 200)
        #expect(allowed.header("Access-Control-Allow-Origin") == "https://app.example.com")
        #expect(allowed.header("Access-Control-Expose-Headers") == "ETag, Link, Location")
        #expect(allowed.header("Vary") == "Origin")
        let unauthenticated = try stack.get("/articles/", headers: [("Origin", "https://app.example.com")])
        #expect(unauthenticated.status == 401)
        #expect(unauthenticated.header("Access-Control-Allow-Origin") == "https://app.example.com")
        let other = try stack.get("/articles/", headers: [("Origin", "https://evil.example"), ("Authorization", token)])
        #expect(other.status == 200)
        #expect(other.headers.filter { $0.name.lowercased().hasPrefix("access-control-") }.isEmpty)
        #expect(other.header("Vary") == "Origin")
    }

    @Test func withoutListedOriginsThereAreNoCORSHeaders() throws {
        let stack = try ArticlesStack.shared.get().stack
        let response = try stack.get("/articles/", headers: [("Origin", "http://localhost:3000")])
        #expect(response.headers.filter { $0.name.lowercased().hasPrefix("access-control-") || $0.name == "Vary" }.isEmpty)
    }

    @Test(arguments: ["localhost:3000", "http://localhost:3000/", "https://app.example.com/path", "*"])
    func refusesNonOrigins(text: String) {
        #expect(throws: ConfigError.self) { try CORSPolicy(parsing: text) }
    }
}
