@testable import FCGIApp
import Foundation
@testable import JSON
@testable import PG
import Testing

@Suite(.lane()) struct MetricsTests {
    /// `/metrics` through nginx's operations server, parsed by prometheus_client's parser: sample -> value.
    private func scrape(_ stack: Stack) throws -> [String: Double] {
        let response = try stack.operations("GET", "/metrics")
        try #require(response.status == 200)
        #expect(response.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8")
        let file = try TestEnvironment.scratchFolder("metrics") + "/metrics.txt"
        try response.body.write(to: URL(fileURLWithPath: file))
        let parsed = try run("/usr/bin/env", ["python3", TestEnvironment.path("Tests/Fixtures/parse-metrics.py"), file])
        try #require(parsed.status == 0, "\(parsed.output)")
        var samples: [String: Double] = [:]
        for line in parsed.output.split(separator: "\n") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            samples[String(line[..<space])] = value
        }
        return samples
    }

    @Test func countersMoveAsRequestsAreMade() throws {
        let stack = try Stack()
        try stack.database.connect().query("INSERT INTO users (username, email) VALUES ('counted', 'counted@example.com')")
        let token = TestPool.token(claims: TestPool.idClaims(email: "counted@example.com"))
        let before = try scrape(stack)
        for _ in 0..<3 { #expect(try stack.get("/articles/", headers: [("Authorization", token)]).status == 200) }
        #expect(try stack.get("/articles/", headers: [("Authorization", "Bearer x.y.z")]).status == 401)
        #expect(try stack.get("/nowhere").status == 404)
        let after = try scrape(stack)
        func moved(_ sample: String) -> Double { (after[sample] ?? 0) - (before[sample] ?? 0) }
        #expect(moved(#"articles_fcgi_requests_total{route="articles",status="200"}"#) == 3)
        #expect(moved(#"articles_fcgi_requests_total{route="articles",status="401"}"#) == 1)
        #expect(moved(#"articles_fcgi_requests_total{route="other",status="404"}"#) == 1)
        #expect(moved(#"articles_fcgi_refusals_total{reason="Malformed token."}"#) == 1)
        #expect(moved(#"articles_fcgi_request_duration_seconds_count{route="articles"}"#) == 4)
        #expect(moved(#"articles_fcgi_token_cache_total{result="miss"}"#) == 2, "the first use and the malformed one")
        #expect(moved(#"articles_fcgi_token_cache_total{result="hit"}"#) == 2)
        #expect(after[#"articles_fcgi_key_fetches_total{result="ok"}"#] == 1)
        #expect(after[#"articles_fcgi_key_fetches_total{result="failed"}"#] == 0)
        #expect(after[#"articles_fcgi_requests_in_flight{}"#] == 1, "the scrape itself")
        #expect(after[#"articles_fcgi_database_errors_total{}"#] == 0)
        #expect(after[#"articles_fcgi_database_reconnects_total{}"#] == 0)
        // The serving loops' sessions, as PostgreSQL counts them.
        let sessions = try stack.database.connect().query(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'articles-fcgi loop %'")
        #expect(after[#"articles_fcgi_database_sessions{}"#] == Double(try sessions.first!.decode(Int.self, at: 0)))
        #expect((after[#"articles_fcgi_database_sessions{}"#] ?? 0) >= 1)
        #expect(moved(#"articles_fcgi_requests_total{route="metrics",status="200"}"#) == 1, "the scrape before")
    }

    @Test func onlyTheOperationsServerServesMetricsAndOnlyToListedAddresses() throws {
        let stack = try Stack()
        #expect(try stack.operations("GET", "/metrics").status == 200)
        let refused = try HTTPClient.request(port: stack.opsPort, path: "/metrics", from: "127.0.0.2")
        #expect(refused.status == 403)
        #expect(refused.json == ["detail": "You do not have permission to perform this action."])
        // The public server has no /metrics, not even for this host (a proxy here may forward
        // the world to it), and its operations server nothing else.
        for from in ["127.0.0.1", "127.0.0.2"] {
            let hidden = try HTTPClient.request(port: stack.httpPort, path: "/metrics", from: from)
            #expect(hidden.status == 404 && hidden.json == ["detail": "Not found."])
        }
        let other = try stack.operations("GET", "/healthz")
        #expect(other.status == 404 && other.json == ["detail": "Not found."])
        // The API itself answers other addresses.
        #expect(try HTTPClient.request(port: stack.httpPort, path: "/healthz", from: "127.0.0.2").status == 200)
    }
}
