@testable import FCGIApp
import Foundation
@testable import PG
@testable import Support
import Synchronization
import Testing

/// A worker restarted under load, with the listening socket held outside it (as systemd's
/// socket unit holds it; here the test process holds it and starts each worker on it, as
/// spawn-fcgi does), behind nginx with the production site's settings.
@Suite(.lane()) struct RestartTests {
    @Test(.lane(.heavy)) func aRestartUnderLoadFailsNoRequestAndLosesNoArticle() throws {
        let dir = try TestEnvironment.scratchFolder("restart")
        let database = try TestDatabase.migrated()
        try database.connect().query("INSERT INTO users (username, email) VALUES ('restart', 'restart@example.com')")
        let token = TestPool.token(claims: TestPool.idClaims(email: "restart@example.com"))

        let socketPath = "\(dir)/fcgi.sock"
        let listening = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listening) }
        try #require(withUnixAddress(socketPath, { bind(listening, $0, $1) }) == 0 && listen(listening, 1024) == 0)

        var environment = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "FCGI_THREADS": "4"]
        environment.merge(try database.workerEnvironment()) { $1 }
        environment.merge(try TestPool.environment(dir: dir)) { $1 }
        func startWorker(_ name: String) throws -> ChildProcess {
            try ChildProcess(try TestEnvironment.binary(), ["serve"], environment: environment, log: "\(dir)/\(name).log", stdin: listening)
        }
        let first = try startWorker("first")
        let httpPort = try TestEnvironment.freePort()
        let nginx = try Stack.nginx(dir: dir, httpPort: httpPort, upstream: "unix:\(socketPath)")
        defer { nginx.stop() }
        let ready = Date()
        while (try? HTTPClient.request(port: httpPort, path: "/healthz").status) != 200, Date().timeIntervalSince(ready) < 20 {
            Thread.sleep(forTimeInterval: 0.05)
        }

        // Clients post and list until a second and a half after the new worker started.
        let results = Results()
        let until = Mutex<Date?>(nil)
        let clients = (0..<8).map { client in
            Thread {
                var sent = 0
                while until.withLock({ $0.map { Date() < $0 } ?? true }) {
                    let name = "c\(client)-\(sent)"
                    sent += 1
                    let headers = [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")]
                    do {
                        let posted = try HTTPClient.request(
                            port: httpPort, method: "POST", path: "/articles/", headers: headers, body: Data(#"{"name": "\#(name)"}"#.utf8))
                        results.add(posted.status, name)
                        let listed = try HTTPClient.request(port: httpPort, path: "/articles/?limit=5", headers: headers)
                        results.add(listed.status, "list")
                    } catch {
                        results.add(-1, "\(name): \(error)")
                    }
                }
            }
        }
        clients.forEach { $0.start() }
        try waitFor("load", within: 10) { results.all.count >= 200 }
        // What systemctl restart does: stop, wait for the old worker to exit, start a new one.
        first.signal(SIGTERM)
        #expect(first.wait(timeout: 15) == 0, "the old worker exits once nginx has closed its connections")
        let second = try startWorker("second")
        // nginx first: a stopping worker waits for nginx to close the connections it keeps.
        defer { nginx.stop(); second.stop() }
        until.withLock { $0 = Date().addingTimeInterval(1.5) }
        while clients.contains(where: { !$0.isFinished }) { Thread.sleep(forTimeInterval: 0.05) }

        let all = results.all
        let failed = all.filter { $0.status != ($0.body == "list" ? 200 : 201) }
        #expect(failed.isEmpty, "\(failed.prefix(5))")
        let created = all.filter { $0.status == 201 }.map(\.body)
        #expect(created.count > 50, "load ran across the restart")
        let stored = try database.connect().query("SELECT name FROM articles").map { try $0.decode(String.self, at: 0) }
        #expect(stored.count == Set(stored).count, "no article was created twice")
        #expect(Set(stored) == Set(created), "every 201 is in the table, and nothing else is")
        #expect(first.output.contains("msg=stopped"))
        // Both workers served: requests before and after the restart.
        #expect(second.output.contains("msg=serving"))
        #expect(second.isRunning)
    }
}
