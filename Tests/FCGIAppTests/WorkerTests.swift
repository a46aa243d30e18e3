import Foundation
@testable import HTTP
import Synchronization
import Testing

/// The worker behind a real nginx and PostgreSQL, over each way it can listen.
@Suite(.lane()) struct WorkerTests {
    @Test(arguments: [Stack.Listen.unix, .tcp, .socketActivated])
    func answersHealthAndNotFoundThroughNginx(listen: Stack.Listen) throws {
        let stack = try Stack(listen)
        let health = try stack.get("/healthz")
        #expect(health.status == 200)
        #expect(health.header("Content-Type") == "application/json")
        #expect(health.text == #"{"status":"ok"}"#)
        let missing = try stack.get("/nope")
        #expect(missing.status == 404)
        #expect(missing.header("Content-Type") == "application/json")
        #expect(missing.text == #"{"detail":"Not found."}"#)
        let post = try stack.request("POST", "/healthz", headers: [("Content-Type", "application/json")], body: Data("{}".utf8))
        #expect(post.status == 405)
        #expect(post.header("Allow") == "GET, HEAD, OPTIONS")
        #expect(post.json == ["detail": "Method \"POST\" not allowed."])
        let head = try stack.request("HEAD", "/healthz")
        #expect(head.status == 200)
        #expect(head.body.isEmpty)
    }

    @Test func overTCPOnlyTheAddressesFCGIWebServerAddrsListsAreServed() throws {
        let allowed = try Stack(.tcp, environment: ["FCGI_WEB_SERVER_ADDRS": "127.0.0.5, 127.0.0.1"])
        #expect(try allowed.get("/healthz").status == 200)
        let refused = try Stack(.tcp, environment: ["FCGI_WEB_SERVER_ADDRS": "127.0.0.5"], wait: false)
        let response = try refused.get("/healthz")
        #expect(response.status == 502 && response.json == ["detail": "The service is unavailable."])
        #expect(refused.worker.output.contains("refused a connection from an address FCGI_WEB_SERVER_ADDRS does not list"))
    }

    @Test func aBodyOverTheLimitIs413JSON() throws {
        let stack = try Stack()
        let big = Data(repeating: UInt8(ascii: "x"), count: 70_000)
        let response = try stack.request("POST", "/healthz", headers: [("Content-Type", "application/json")], body: big)
        #expect(response.status == 413)
        #expect(response.header("Content-Type") == "application/json")
        #expect(response.json == ["detail": "Request body is too large."])
        // The worker holds the same limit when something other than nginx sends the body.
        let client = try FastCGIClient(unixPath: stack.socketPath)
        try client.begin(["REQUEST_METHOD": "POST", "DOCUMENT_URI": "/healthz", "CONTENT_LENGTH": "70000"])
        try client.body(Array(big))
        let direct = try client.response()
        #expect(direct.hasPrefix("Status: 413 Content Too Large\r\n"))
        #expect(direct.hasSuffix(#"{"detail":"Request body is larger than 65536 bytes."}"#))
    }

    @Test func errorsNginxAnswersItselfAreJSON() throws {
        let stack = try Stack()
        let longURI = try stack.get("/" + String(repeating: "a", count: 40_000))
        #expect(longURI.status == 414)
        #expect(longURI.json == ["detail": "Request URI is too long."])
        let bigHeader = try stack.get("/healthz", headers: [("X-Big", String(repeating: "b", count: 40_000))])
        #expect(bigHeader.status == 400)
        #expect(bigHeader.json == ["detail": "Request header is too large."])
        let twoTokens = try stack.get("/healthz", headers: [("Authorization", "a"), ("Authorization", "b")])
        #expect(twoTokens.status == 400)
        #expect(twoTokens.header("Content-Type") == "application/json")
        #expect(twoTokens.json == ["detail": "Bad request."])
        let garbage = try HTTPClient.parse(HTTPClient.exchange(port: stack.httpPort, Data("NONSENSE\r\n\r\n".utf8)))
        #expect(garbage.status == 400)
        #expect(garbage.json == ["detail": "Bad request."])
        // A 20 KiB Authorization header gets through to the worker.
        let token = try stack.get("/nope", headers: [("Authorization", String(repeating: "t", count: 20 * 1024))])
        #expect(token.status == 404)
        #expect(token.json == ["detail": "Not found."])
        // Gone at once (a stop would wait for nginx to close the connection it keeps).
        stack.worker.signal(SIGKILL)
        _ = stack.worker.wait(timeout: 5)
        let down = try stack.get("/healthz")
        #expect(down.status == 502)
        #expect(down.header("Content-Type") == "application/json")
        #expect(down.json == ["detail": "The service is unavailable."])
    }

    @Test func sigtermFinishesTheRequestInFlightThenExits() throws {
        let stack = try Stack()
        let client = try FastCGIClient(unixPath: stack.socketPath)
        // Half a request: a thread has accepted it and waits for the rest.
        try client.begin(["REQUEST_METHOD": "GET", "DOCUMENT_URI": "/healthz"], finish: false)
        try waitFor("the worker to accept the connection", within: 5) { try acceptQueue(stack.socketPath) == 0 }
        stack.nginx.stop()  // else the worker waits for nginx to close the connection it keeps
        stack.worker.signal(SIGTERM)
        try waitFor("the worker to begin stopping", within: 5) { stack.worker.output.contains("msg=\"stopping:") }
        #expect(!stack.worker.output.contains("connections=0"), "ours is among the open connections")
        #expect(stack.worker.isRunning, "the worker exited with a request in flight")
        try client.finishParameters()
        try client.body([])
        let response = try client.response()
        #expect(response.hasPrefix("Status: 200 OK\r\n"))
        #expect(response.hasSuffix(#"{"status":"ok"}"#))
        #expect(stack.worker.wait(timeout: 5) == 0)
        #expect(!FileManager.default.fileExists(atPath: stack.socketPath), "the socket the worker created is removed")
        #expect(stack.worker.output.contains("stopped"))
    }

    @Test(.lane(.heavy)) func sigtermUnderTrafficFailsNoRequestItAccepted() throws {
        let stack = try Stack()
        let results = Results()
        let stopped = Mutex(false)
        let clients = (0..<8).map { _ in
            Thread {
                // Until a moment after the worker has exited.
                while !stopped.withLock({ $0 }) {
                    do {
                        let response = try HTTPClient.request(port: stack.httpPort, path: "/healthz")
                        results.add(response.status, response.text)
                    } catch {
                        results.add(-1, "\(error)")
                    }
                }
            }
        }
        for client in clients { client.start() }
        try waitFor("traffic", within: 10) { results.all.count >= 100 }
        stack.worker.signal(SIGTERM)
        #expect(stack.worker.wait(timeout: 5) == 0)
        let exited = results.all.count
        try waitFor("requests after the exit", within: 10) { results.all.count >= exited + 16 }
        stopped.withLock { $0 = true }
        try waitFor("the clients", within: 10) { clients.allSatisfy(\.isFinished) }
        let all = results.all
        #expect(all.filter { $0.status == 200 }.count > 50)
        // Served before the stop: 200 with its body; refused after it: nginx's 502 JSON.
        for (status, body) in all {
            #expect(
                (status == 200 && body == #"{"status":"ok"}"#)
                    || (status == 502 && body == "{\"detail\":\"The service is unavailable.\"}\n"),
                "\(status) \(body)")
        }
        #expect(!FileManager.default.fileExists(atPath: stack.socketPath))
    }

    @Test func moreConnectionsThanThreadsWaitTheirTurnAndAllSucceed() throws {
        let stack = try Stack(environment: ["FCGI_THREADS": "2"])
        let results = Results()
        let clients = (0..<16).map { _ in
            Thread {
                for _ in 0..<20 {
                    let response = try? HTTPClient.request(port: stack.httpPort, path: "/healthz", timeout: 10)
                    results.add(response?.status ?? -1, response?.text ?? "")
                }
            }
        }
        let started = Date()
        clients.forEach { $0.start() }
        while results.all.count < 16 * 20, Date().timeIntervalSince(started) < 30 { Thread.sleep(forTimeInterval: 0.02) }
        #expect(results.all.count == 320)
        #expect(results.all.allSatisfy { $0.status == 200 && $0.body == #"{"status":"ok"}"# })
        #expect(Date().timeIntervalSince(started) < 20, "2 threads served 320 requests from 16 clients without stalling")
    }

    @Test func anIdleKeptConnectionHoldsNoThread() throws {
        let stack = try Stack(environment: ["FCGI_THREADS": "1"])
        let health = ["REQUEST_METHOD": "GET", "DOCUMENT_URI": "/healthz"]
        let kept = try FastCGIClient(unixPath: stack.socketPath)
        try kept.begin(health, keep: true)
        try kept.body([])
        #expect(try kept.response().hasSuffix(#"{"status":"ok"}"#))
        // The only thread is free while the kept connection idles: another connection is served.
        let other = try FastCGIClient(unixPath: stack.socketPath)
        try other.begin(health)
        try other.body([])
        #expect(try other.response().hasSuffix(#"{"status":"ok"}"#))
        // And the kept connection still carries its next request.
        try kept.begin(health, keep: true)
        try kept.body([])
        #expect(try kept.response().hasSuffix(#"{"status":"ok"}"#))
    }

    @Test func aKeptConnectionSurvivesInputThatArrivesAfterTheParameters() throws {
        let stack = try Stack(environment: ["FCGI_THREADS": "1"])
        let kept = try FastCGIClient(unixPath: stack.socketPath)
        // The closing STDIN record comes well after the parameters, as it can from nginx under
        // load: the worker must read it with this request, not take it for part of the next one.
        for _ in 0..<3 {
            try kept.begin(["REQUEST_METHOD": "GET", "DOCUMENT_URI": "/healthz"], keep: true)
            Thread.sleep(forTimeInterval: 0.2)  // the delay is what this test is about
            try kept.body([])
            #expect(try kept.response().hasSuffix(#"{"status":"ok"}"#))
        }
        // A body the route does not read is drained too.
        try kept.begin(["REQUEST_METHOD": "GET", "DOCUMENT_URI": "/healthz", "CONTENT_LENGTH": "5"], keep: true)
        Thread.sleep(forTimeInterval: 0.2)  // as above
        try kept.body(Array("12345".utf8))
        #expect(try kept.response().hasSuffix(#"{"status":"ok"}"#))
        try kept.begin(["REQUEST_METHOD": "GET", "DOCUMENT_URI": "/healthz"], keep: true)
        try kept.body([])
        #expect(try kept.response().hasSuffix(#"{"status":"ok"}"#))
    }

    @Test func anInheritedSocketIsLeftForItsOwner() throws {
        let stack = try Stack(.socketActivated)
        #expect(try stack.get("/healthz").status == 200)
        stack.nginx.stop()  // else the worker waits for nginx to close the connection it keeps
        stack.worker.signal(SIGTERM)
        #expect(stack.worker.wait(timeout: 5) == 0)
        var info = stat()
        #expect(lstat(stack.socketPath, &info) == 0 && info.st_mode & S_IFMT == S_IFSOCK, "the socket file stays")
    }

    @Test func healthIs503WithinASecondWhilePostgreSQLIsDownAnd200AfterItReturns() throws {
        let cluster = try OwnCluster()
        defer { cluster.stopAtEnd() }
        let stack = try Stack(environment: ["DATABASE_URL": cluster.database, "DATABASE_FEED_URL": cluster.database])
        let worker = stack.worker.pid

        try cluster.stop()
        for _ in 0..<8 {
            let began = Date()
            let response = try stack.get("/healthz")
            #expect(Date().timeIntervalSince(began) < 1)
            #expect(response.status == 503)
            #expect(response.header("Content-Type") == "application/json")
            #expect(response.json == ["status": "unavailable", "detail": "database unavailable"])
        }
        // The same warning each time: written once per 5 s, not once per request.
        let warnings = stack.worker.output.components(separatedBy: "msg=\"health check: database unavailable\"").count - 1
        #expect((1...2).contains(warnings), "\(warnings) lines for 8 requests")

        try cluster.start()
        // Each loop tries again after its pause (at most 1 s), then every answer is 200.
        try waitFor("healthy again", within: 1.5) { try (0..<4).allSatisfy { _ in try stack.get("/healthz").status == 200 } }
        for _ in 0..<8 {
            let response = try stack.get("/healthz")
            #expect(response.status == 200)
            #expect(response.text == #"{"status":"ok"}"#)
        }
        #expect(stack.worker.pid == worker && stack.worker.isRunning)
    }

}
