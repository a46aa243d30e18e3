@testable import FCGIApp
import Foundation
@testable import JSON
@testable import Support
import Synchronization
import Testing

/// The units in systemd/ and what the worker does for systemd: there is no running systemd
/// here, so the units are checked by `systemd-analyze verify` and the notifications are
/// received on a socket the test holds, with the worker under `systemd-socket-activate`.
@Suite(.lane()) struct SystemdTests {
    @Test func theUnitsPassSystemdAnalyzeVerify() throws {
        let dir = try TestEnvironment.scratchFolder("units")
        for unit in ["articles-fcgi.socket", "articles-fcgi.service"] {
            var text = try String(contentsOfFile: TestEnvironment.path("systemd/\(unit)"), encoding: .utf8)
            // verify insists that ExecStart's binary exists: point it at the one built here.
            text = text.replacingOccurrences(of: "ExecStart=/usr/bin/articles-fcgi", with: "ExecStart=\(try TestEnvironment.binary())")
            try text.write(toFile: "\(dir)/\(unit)", atomically: true, encoding: .utf8)
        }
        let verified = try run("/usr/bin/systemd-analyze", ["verify", "\(dir)/articles-fcgi.socket", "\(dir)/articles-fcgi.service"])
        #expect(verified.status == 0)
        #expect(verified.output == "", "systemd-analyze complains even where it exits 0 (a bad value is ignored)")

        let service = try String(contentsOfFile: TestEnvironment.path("systemd/articles-fcgi.service"), encoding: .utf8)
        for line in [
            "Type=notify", "ExecStart=/usr/bin/articles-fcgi serve", "ExecReload=/bin/kill -HUP $MAINPID",
            "EnvironmentFile=/etc/articles-fcgi/env", "User=articles-fcgi", "Restart=on-failure", "NoNewPrivileges=yes",
            "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "SystemCallFilter=@system-service", "LimitCORE=0",
            "Environment=LOG_REQUESTS=false",
        ] {
            #expect(service.split(separator: "\n").contains(Substring(line)), "\(line)")
        }
        let socket = try String(contentsOfFile: TestEnvironment.path("systemd/articles-fcgi.socket"), encoding: .utf8)
        for line in ["ListenStream=/run/articles-fcgi.sock", "SocketGroup=www-data", "SocketMode=0660"] {
            #expect(socket.split(separator: "\n").contains(Substring(line)), "\(line)")
        }
        // The socket outlives the service's restarts (scripts/systemd-check shows what PartOf= did).
        #expect(!socket.split(separator: "\n").contains { $0.hasPrefix("PartOf=") || $0.hasPrefix("BindsTo=") })
    }

    @Test func tellsSystemdReadyWatchdogAndStopping() throws {
        let notifications = try NotifySocket()
        let stack = try Stack(.socketActivated, environment: ["NOTIFY_SOCKET": notifications.path, "WATCHDOG_USEC": "300000"])
        let ready = try #require(notifications.next(within: 5))
        #expect(ready == "READY=1\nSTATUS=serving on inherited socket (LISTEN_FDS, fd 3) with 4 threads")
        // WatchdogSec 0.3 s: pings at half of it.
        let started = Date()
        for _ in 0..<4 { #expect(notifications.next(within: 1) == "WATCHDOG=1") }
        #expect(Date().timeIntervalSince(started) < 1.2)
        stack.nginx.stop()  // else the worker waits for nginx to close the connection it keeps
        stack.worker.signal(SIGTERM)
        var last: String?
        while let message = notifications.next(within: 2) {
            last = message
            if message != "WATCHDOG=1" { break }
        }
        #expect(last == "STOPPING=1")
        #expect(stack.worker.wait(timeout: 5) == 0)
    }

    /// A request waiting for a lock is parked: the one serving loop goes on answering, and the
    /// watchdog goes on being pinged.
    @Test func aRequestWaitingForALockStopsNeitherTheLoopNorTheWatchdog() throws {
        let notifications = try NotifySocket()
        let stack = try Stack(.socketActivated, environment: [
            "NOTIFY_SOCKET": notifications.path, "WATCHDOG_USEC": "300000", "FCGI_THREADS": "1",
            "DATABASE_LOCK_TIMEOUT_SECONDS": "30", "DATABASE_STATEMENT_TIMEOUT_SECONDS": "30",
        ])
        try stack.database.connect().query("INSERT INTO users (username, email) VALUES ('stuck', 'stuck@example.com')")
        let token = TestPool.token(claims: TestPool.idClaims(email: "stuck@example.com"))
        #expect(notifications.next(within: 5)?.hasPrefix("READY=1") == true)
        #expect(notifications.next(within: 1) == "WATCHDOG=1")
        // A request waits for a lock that a psql session holds.
        let psql = try stack.database.connect()
        try psql.query("BEGIN")
        try psql.query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        let answer = Results()
        let request = Thread {
            let response = try? stack.get("/articles/", headers: [("Authorization", token)])
            answer.add(response?.status ?? -1, response?.text ?? "")
        }
        request.start()
        try stack.database.waitForALockWait()
        // Meanwhile the loop answers (the health check's own statement on another connection),
        // and the pings go on: four in a second.
        let health = try stack.get("/healthz")
        #expect(health.status == 200 && health.text == #"{"status":"ok"}"#)
        while notifications.next(within: 0) != nil {}
        let started = Date()
        for _ in 0..<4 { #expect(notifications.next(within: 1) == "WATCHDOG=1") }
        #expect(Date().timeIntervalSince(started) < 1.2)
        #expect(answer.all.isEmpty, "still waiting for the lock")
        try psql.query("ROLLBACK")
        try waitFor("the answer", within: 5) { !answer.all.isEmpty }
        #expect(answer.all.map(\.status) == [200])
    }

    /// A loop that runs without waiting for events is what stops the pings: how long it has.
    @Test(.lane(.waiting)) func aLoopBusyWithoutWaitingCountsAsStuck() throws {
        let loop = try TestLoop()
        #expect(loop.loop.busyFor < .milliseconds(100))
        loop.loop.execute { Thread.sleep(forTimeInterval: 0.5) }
        try waitFor("the loop to be busy for 300 ms", within: 2) { loop.loop.busyFor > .milliseconds(300) }
        try waitFor("the loop to wait again", within: 2) { loop.loop.busyFor < .milliseconds(100) }
    }

    @Test func sighupLoadsARotatedKeyFileWithoutAFailedRequest() throws {
        let stack = try Stack()
        let claims = TestPool.idClaims(email: "rotate@example.com")
        try stack.database.connect().query("INSERT INTO users (username, email) VALUES ('rotate', 'rotate@example.com')")
        let old = TestPool.token(claims: claims)
        let fresh = TestPool.token(header: ["alg": "RS256", "kid": "rotated"], claims: claims, key: TestPool.otherKey)
        @Sendable func status(_ token: String) throws -> Int { try stack.get("/articles/", headers: [("Authorization", token)]).status }
        #expect(try status(old) == 200)
        // The pool adds a key: unknown to the worker, and its key set was fetched less than
        // 10 s ago, so a token signed with the new key is refused until something reloads.
        try TestPool.writeJWKS([TestPool.jwk(TestPool.key, kid: TestPool.kid), TestPool.jwk(TestPool.otherKey, kid: "rotated")], to: "\(stack.dir)/jwks.json")
        #expect(try status(fresh) == 401)

        let results = Results()
        let stop = Mutex(false)
        let load = Thread {
            while !stop.withLock({ $0 }) { results.add((try? status(old)) ?? -1, "") }
        }
        load.start()
        try waitFor("requests", within: 10) { results.all.count >= 10 }
        let loaded = stack.worker.output.components(separatedBy: "msg=\"signing keys loaded\"").count
        stack.worker.signal(SIGHUP)
        try waitFor("the keys to load again", within: 5) {
            stack.worker.output.components(separatedBy: "msg=\"signing keys loaded\"").count > loaded
        }
        #expect(try status(fresh) == 200)
        let reloaded = results.all.count
        try waitFor("requests after the reload", within: 10) { results.all.count >= reloaded + 10 }
        stop.withLock { $0 = true }
        while !load.isFinished { Thread.sleep(forTimeInterval: 0.01) }
        #expect(results.all.count > 20)
        #expect(results.all.allSatisfy { $0.status == 200 }, "\(Set(results.all.map(\.status)))")
        #expect(stack.worker.isRunning)
        #expect(stack.worker.output.contains("msg=reloading signal=SIGHUP"))
    }
}

/// A unix datagram socket standing in for systemd's `NOTIFY_SOCKET`.
final class NotifySocket {
    let path: String
    private let fd: Int32

    init() throws {
        path = try TestEnvironment.scratchFolder("notify") + "/notify.sock"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard withUnixAddress(path, { bind(fd, $0, $1) }) == 0 else { throw HTTPClient.Failure(description: "bind \(path): errno \(errno)") }
    }

    deinit { close(fd) }

    /// The next datagram, or nil if none arrives within `seconds`.
    func next(within seconds: TimeInterval) -> String? {
        var pollfd = Glibc.pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pollfd, 1, Int32(seconds * 1000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, 0)
        return count < 0 ? nil : String(decoding: buffer.prefix(count), as: UTF8.self)
    }
}
