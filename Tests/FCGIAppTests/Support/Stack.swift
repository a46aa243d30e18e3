import Foundation
import Testing

/// The worker behind a real nginx, on a migrated database of its own: what `scripts/run`
/// starts, on free ports, with nginx configured by `scripts/nginx-conf` from the production site.
final class Stack: Service, @unchecked Sendable {
    enum Listen {
        /// `FCGI_LISTEN=unix:…`: the worker creates the socket.
        case unix
        /// `FCGI_LISTEN=127.0.0.1:PORT`.
        case tcp
        /// `systemd-socket-activate` holds the socket and starts the worker at the first
        /// connection, passing it through `LISTEN_FDS`.
        case socketActivated
    }

    let dir: String
    let database: TestDatabase
    let httpPort: Int
    /// The operations server's port: `/metrics` and `/internal/...`.
    let opsPort: Int
    let socketPath: String
    /// The worker's TCP port, with `.tcp`.
    let upstreamPort: Int?
    let worker: ChildProcess
    let nginx: ChildProcess

    /// Starts the stack and waits until `/healthz` answers 200, or with `healthy: false`, until
    /// it answers at all (through the worker, not nginx's 502), or with `wait: false`, only
    /// until the worker logs that it serves and nginx answers, whatever it answers.
    init(
        _ listen: Listen = .unix, database: TestDatabase? = nil, environment: [String: String] = [:],
        healthy: Bool = true, wait: Bool = true
    ) throws {
        dir = try TestEnvironment.scratchFolder("stack")
        self.database = try database ?? TestDatabase.migrated()
        httpPort = try TestEnvironment.freePort()
        opsPort = try TestEnvironment.freePort()
        socketPath = "\(dir)/fcgi.sock"
        var workerEnvironment = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
            "FCGI_THREADS": "4",
            "LOG_LEVEL": "debug",
        ]
        workerEnvironment.merge(try self.database.workerEnvironment()) { $1 }
        workerEnvironment.merge(try TestPool.environment(dir: dir)) { $1 }
        workerEnvironment.merge(environment) { $1 }
        let binary = try TestEnvironment.binary()
        let upstream: String
        var upstreamPort: Int?
        switch listen {
        case .unix:
            workerEnvironment["FCGI_LISTEN"] = "unix:\(socketPath)"
            upstream = "unix:\(socketPath)"
            worker = try ChildProcess(binary, ["serve"], environment: workerEnvironment, log: "\(dir)/worker.log")
        case .tcp:
            let port = try TestEnvironment.freePort()
            upstreamPort = port
            workerEnvironment["FCGI_LISTEN"] = "127.0.0.1:\(port)"
            upstream = "127.0.0.1:\(port)"
            worker = try ChildProcess(binary, ["serve"], environment: workerEnvironment, log: "\(dir)/worker.log")
        case .socketActivated:
            upstream = "unix:\(socketPath)"
            let passed = workerEnvironment.keys.sorted().flatMap { ["-E", "\($0)=\(workerEnvironment[$0]!)"] }
            worker = try ChildProcess(
                "/usr/bin/systemd-socket-activate", ["-l", socketPath] + passed + [binary, "serve"],
                environment: workerEnvironment, log: "\(dir)/worker.log")
        }
        self.upstreamPort = upstreamPort
        nginx = try Self.nginx(dir: dir, httpPort: httpPort, upstream: upstream, opsPort: opsPort)
        if wait {
            try waitUntilAnswering(healthy: healthy)
        } else {
            let deadline = Date().addingTimeInterval(20)
            while !worker.output.contains("msg=serving") || (try? get("/healthz")) == nil, Date() < deadline {
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
    }

    /// nginx configured by `scripts/nginx-conf` in `dir` from the production site, started on
    /// `httpPort` (and `opsPort`, the operations server) in front of `upstream`.
    static func nginx(dir: String, httpPort: Int, upstream: String, opsPort: Int? = nil) throws -> ChildProcess {
        let ops = try opsPort ?? TestEnvironment.freePort()
        let generated = try run(TestEnvironment.path("scripts/nginx-conf"), [dir, "127.0.0.1:\(httpPort)", upstream, "127.0.0.1:\(ops)"])
        guard generated.status == 0 else { throw HTTPClient.Failure(description: "nginx-conf: \(generated.output)") }
        return try ChildProcess(
            "/usr/sbin/nginx", ["-p", dir, "-c", "\(dir)/nginx.conf", "-e", "\(dir)/nginx-error.log", "-g", "daemon off;"],
            environment: [:], log: "\(dir)/nginx.log")
    }

    /// Waits up to 20 s for `/healthz` to answer 200 through nginx (or anything but 502).
    func waitUntilAnswering(healthy: Bool = true) throws {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let response = try? get("/healthz"), healthy ? response.status == 200 : response.status != 502 { return }
            if !worker.isRunning { throw HTTPClient.Failure(description: "the worker exited: \(worker.output)") }
            if !nginx.isRunning { throw HTTPClient.Failure(description: "nginx exited: \(nginx.output)") }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw HTTPClient.Failure(description: "the stack did not become healthy; worker log: \(worker.output)")
    }

    func request(_ method: String, _ path: String, headers: [(String, String)] = [], body: Data? = nil) throws -> HTTPResponse {
        try HTTPClient.request(port: httpPort, method: method, path: path, headers: headers, body: body)
    }

    /// A request to the operations server.
    func operations(_ method: String, _ path: String, headers: [(String, String)] = [], body: Data? = nil) throws -> HTTPResponse {
        try HTTPClient.request(port: opsPort, method: method, path: path, headers: headers, body: body)
    }

    /// A metric of the worker's `/metrics`, if it has it without labels.
    func metric(_ name: String) throws -> Double? {
        try operations("GET", "/metrics").text.split(separator: "\n")
            .first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
    }

    /// Waits until the worker's change feed is up: a feed that connects while another test's
    /// session holds a transaction open waits for it (a new slot waits for the transactions
    /// running), and what is committed before the feed is up is loaded, not streamed.
    func waitForChangeFeed(within seconds: Double = 15) throws {
        try waitFor("the change feed", within: seconds) { try metric("articles_fcgi_change_feed_up") == 1 }
    }

    deinit {
        // nginx first: a stopping worker waits for nginx to close the connections it keeps.
        nginx.stop()
        worker.stop()
    }
}
