@testable import FCGIApp
import Foundation
import Logging
@testable import Observability
@testable import PG
import Synchronization
import Testing

@Suite(.lane()) struct LoggingTests {
    @Test func linesAreLogfmtWithQuotingWhereNeeded() {
        let line = LogfmtHandler.line(
            time: "2026-11-27T12:40:00.123Z", level: .info, message: "request refused",
            metadata: ["status": "401", "reason": #"bad "kid" = x"#, "path": "/articles/", "empty": "", "multi": "a\nb\u{1}é"])
        #expect(String(decoding: line, as: UTF8.self) == #"time=2026-11-27T12:40:00.123Z level=info msg="request refused" empty="" multi="a\nb\u{1}é" path=/articles/ reason="bad \"kid\" = x" status=401"# + "\n")
    }

    @Test func aRepeatedWarningIsWrittenOncePerIntervalWithTheCountHeldBack() {
        let clock = Mutex<Int64>(0)
        let filter = RepeatFilter(interval: .seconds(5)) { clock.withLock { $0 } }
        #expect(filter.admit("database unavailable") == 0)
        #expect(filter.admit("database unavailable") == nil)
        #expect(filter.admit("database unavailable") == nil)
        #expect(filter.admit("request failed") == 0, "another message is not held back")
        clock.withLock { $0 = 4_999_999_999 }
        #expect(filter.admit("database unavailable") == nil)
        clock.withLock { $0 = 5_000_000_000 }
        #expect(filter.admit("database unavailable") == 3)
        #expect(filter.admit("database unavailable") == nil)
        clock.withLock { $0 = 20_000_000_000 }
        #expect(filter.admit("database unavailable") == 1)
        #expect(filter.admit("request failed") == 0)
    }

    @Test func timesAreUTCWithMilliseconds() {
        let start = String(decoding: LogfmtHandler.start(level: .warning, message: "m"), as: UTF8.self)
        #expect(start.wholeMatch(of: /time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=warning msg=m/) != nil, "\(start)")
    }
}

@Suite(.lane()) struct RequestLogTests {
    @Test func everyRequestHasOneLineAndNoTokenIsEverLogged() throws {
        let stack = try Stack(environment: ["LOG_LEVEL": "info"])
        let db = try stack.database.connect()
        let id = try db.query("INSERT INTO users (username, email) VALUES ('logged', 'logged@example.com') RETURNING id")
            .first!.decode(Int64.self, at: 0)
        let token = TestPool.token(claims: TestPool.idClaims(email: "logged@example.com"))
        let forged = String(token.dropLast(4)) + (token.hasSuffix("AAAA") ? "BBBB" : "AAAA")
        let bearer = { (token: String) in [("Authorization", "Bearer \(token)")] }
        #expect(try stack.get("/articles/?limit=3", headers: bearer(token)).status == 200)
        #expect(try stack.request("POST", "/articles/", headers: bearer(token) + [("Content-Type", "application/json")],
                                  body: Data(#"{"name": "x"}"#.utf8)).status == 201)
        #expect(try stack.get("/articles/", headers: bearer(forged)).status == 401)
        #expect(try stack.get("/articles/").status == 401)
        // Request lines are gathered and written within half a second or so, while serving.
        let asked = Date()
        while stack.worker.output.components(separatedBy: "path=/articles/").count < 5, Date().timeIntervalSince(asked) < 3 {
            Thread.sleep(forTimeInterval: 0.05)
        }
        #expect(Date().timeIntervalSince(asked) < 1.5)
        stack.nginx.stop()
        stack.worker.stop()

        let lines = stack.worker.output.split(separator: "\n").filter { $0.contains(" msg=request ") && $0.contains("path=/articles/") }
        let fields = lines.map { line in
            line.split(separator: " ").compactMap { pair -> (String, String)? in
                let parts = pair.split(separator: "=", maxSplits: 1)
                return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
            }.filter { ["method", "status", "user"].contains($0.0) }.map { "\($0.0)=\($0.1)" }.joined(separator: " ")
        }
        // Each serving thread gathers its lines, so threads' lines may come out of order.
        #expect(fields.sorted() == [
            "method=GET status=200 user=\(id)", "method=POST status=201 user=\(id)", "method=GET status=401", "method=GET status=401",
        ].sorted())
        #expect(lines.allSatisfy { $0.contains("level=info") && $0.firstMatch(of: /duration_ms=\d+\.\d{3}( |$)/) != nil })
        #expect(lines.filter { $0.contains(#"reason="bad signature for kid "#) }.count == 1)
        #expect(lines.filter { $0.contains(#"reason="no credentials""#) }.count == 1)
        for secret in token.split(separator: ".") + forged.split(separator: ".") {
            #expect(!stack.worker.output.contains(secret))
        }
    }

    /// `LOG_REQUESTS=false` (the systemd unit's setting): the worker's events, and no line per request.
    @Test func withoutRequestLinesEveryEventIsStillLogged() throws {
        let stack = try Stack(environment: ["LOG_LEVEL": "info", "LOG_REQUESTS": "false"])
        try stack.database.connect().query("INSERT INTO users (username, email) VALUES ('quiet', 'quiet@example.com')")
        let token = TestPool.token(claims: TestPool.idClaims(email: "quiet@example.com"))
        for _ in 0..<20 {
            #expect(try stack.get("/articles/", headers: [("Authorization", token)]).status == 200)
        }
        #expect(try stack.get("/articles/").status == 401)
        // The feed connects beside serving; its line comes once it follows.
        try waitFor("the change feed's line", within: 10) { stack.worker.output.contains("following database changes") }
        stack.nginx.stop()
        stack.worker.stop()
        let output = stack.worker.output
        for event in ["msg=\"database reachable\"", "msg=\"signing keys loaded\"", "msg=serving", "msg=\"following database changes\"", "msg=stopped"] {
            #expect(output.contains(event), "\(event)")
        }
        #expect(!output.contains(" msg=request "), "\(output)")
    }
}
