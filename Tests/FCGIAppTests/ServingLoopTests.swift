@testable import FCGIApp
import Foundation
import Glibc
@testable import PG
@testable import Stores
@testable import Support
import Synchronization
import Testing

/// A request that waits is parked in its serving loop, which goes on serving its other
/// connections: through FastCGI connections of the test's own, each on a loop it knows.
@Suite(.lane(.long)) struct ServingLoopTests {
    /// A kept FastCGI connection to the worker, and the loop serving it.
    final class LoopClient: @unchecked Sendable {
        let client: FastCGIClient
        let loop: Int

        /// A new connection, on whichever loop the worker puts it: found from the request log
        /// line of a path of its own.
        init(_ stack: Stack) throws {
            client = try FastCGIClient(unixPath: stack.socketPath)
            let probe = "/probe-\(UUID().uuidString)"
            do {
                try client.begin(Self.parameters("GET", probe), keep: true)
                try client.body([])
                _ = try client.response()
            }
            var line: Substring?
            try waitFor("the probe's log line", within: 5) {
                line = stack.worker.output.split(separator: "\n").first { $0.contains("path=\(probe) ") }
                return line != nil
            }
            loop = try #require(line?.split(separator: " ").first { $0.hasPrefix("loop=") }.flatMap { Int($0.dropFirst(5)) })
        }

        static func parameters(_ method: String, _ path: String, token: String? = nil, length: Int = 0) -> [String: String] {
            var parameters = [
                "REQUEST_METHOD": method, "SCRIPT_NAME": path, "REQUEST_URI": path, "QUERY_STRING": "",
                "HTTP_HOST": "127.0.0.1", "CONTENT_LENGTH": String(length),
            ]
            if length > 0 { parameters["CONTENT_TYPE"] = "application/json" }
            if let token { parameters["HTTP_AUTHORIZATION"] = token }
            return parameters
        }

        /// The response's status line (`Status: ...`), its body, and how long it took.
        func send(_ method: String, _ path: String, token: String? = nil, body: String = "") throws -> (status: String, body: String, seconds: Double) {
            let started = Date()
            try client.begin(Self.parameters(method, path, token: token, length: body.utf8.count), keep: true)
            try client.body(Array(body.utf8))
            let response = try client.response()
            let seconds = Date().timeIntervalSince(started)
            let parts = response.components(separatedBy: "\r\n\r\n")
            let status = parts[0].split(separator: "\r\n").first { $0.hasPrefix("Status: ") }.map(String.init) ?? ""
            return (status, parts.dropFirst().joined(separator: "\r\n\r\n"), seconds)
        }
    }

    /// Connections until one is on each of `loops` (as many as asked per loop). The others stay
    /// open meanwhile: the worker gives a new connection to the loop with the fewest.
    static func clients(_ stack: Stack, on loops: [Int]) throws -> [LoopClient] {
        var wanted = loops
        var found: [LoopClient] = []
        var others: [LoopClient] = []
        defer { others.removeAll() }
        for _ in 0..<(4 * loops.count) where !wanted.isEmpty {
            let client = try LoopClient(stack)
            if let index = wanted.firstIndex(of: client.loop) {
                wanted.remove(at: index)
                found.append(client)
            } else {
                others.append(client)
            }
        }
        guard wanted.isEmpty else { throw HTTPClient.Failure(description: "no connection landed on loops \(wanted)") }
        return loops.map { loop in found.remove(at: found.firstIndex { $0.loop == loop }!) }
    }

    static func p99(_ samples: [Double]) -> Double {
        let sorted = samples.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * 0.99))]
    }

    @Test func aStoppedBackendHoldsUpNeitherItsLoopsLivenessNorTheOtherLoopsReads() throws {
        let stack = try Stack(environment: ["FCGI_THREADS": "2"])
        let admin = try stack.database.connect()
        try admin.query("INSERT INTO users (username, email) VALUES ('reader', 'reader@example.com')")
        try admin.query("INSERT INTO articles (name, owner_id) SELECT 'kept', id FROM users WHERE username = 'reader'")
        let token = TestPool.token(claims: TestPool.idClaims(email: "reader@example.com"))
        try stack.waitForChangeFeed()
        let clients = try Self.clients(stack, on: [0, 1])
        let (stopped, other) = (clients[0], clients[1])
        // Both loops read once (connecting), then from their caches.
        let page = try other.send("GET", "/articles/", token: token)
        #expect(page.status == "Status: 200 OK" && page.body.contains(#""name":"kept""#))
        #expect(try stopped.send("GET", "/articles/", token: token).body == page.body)
        // Stopped while idle: a backend stopped inside a statement (the loop's request for a WAL
        // flush, say) could hold a lock of PostgreSQL's own that every session waits for.
        var backends: [Int32] = []
        try waitFor("loop 0's sessions to be idle", within: 5) {
            let sessions = try admin.query(
                "SELECT pid, state FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'articles-fcgi loop 0'")
            backends = try sessions.map { try $0.decode(Int32.self, at: 0) }
            return try !sessions.isEmpty && sessions.allSatisfy { try $0.decode(String?.self, at: 1) == "idle" }
        }
        for pid in backends { kill(pid, SIGSTOP) }
        defer { for pid in backends { kill(pid, SIGCONT) } }
        let until = Date().addingTimeInterval(2)
        var live: [Double] = [], reads: [Double] = []
        while Date() < until {
            let answer = try stopped.send("GET", "/livez")
            #expect(answer.status == "Status: 200 OK")
            live.append(answer.seconds)
            let read = try other.send("GET", "/articles/", token: token)
            #expect(read.status == "Status: 200 OK" && read.body == page.body)
            reads.append(read.seconds)
        }
        #expect(live.count > 20)
        #expect(live.max()! < 0.05, "the stopped backend's loop answers /livez within 50 ms")
        #expect(Self.p99(reads) < 0.05, "the other loop's cached reads go on")
        for pid in backends { kill(pid, SIGCONT) }
        #expect(try stopped.send("GET", "/articles/", token: token).body == page.body)
    }

    /// Alone: while psql holds its row lock (a transaction with an id), no change feed on the
    /// cluster could connect (a new slot waits for the transactions running).
    @Test(.lane(.alone)) func aPostWaitingForARowLockLeavesTheReadsOfItsLoopTheirLatency() throws {
        let stack = try Stack(environment: ["FCGI_THREADS": "2", "DATABASE_LOCK_TIMEOUT_SECONDS": "10"])
        let admin = try stack.database.connect()
        try admin.query("INSERT INTO users (username, email) VALUES ('reader', 'reader@example.com'), ('writer', 'writer@example.com')")
        try admin.query("INSERT INTO articles (name, owner_id) SELECT 'kept', id FROM users WHERE username = 'reader'")
        let reader = TestPool.token(claims: TestPool.idClaims(email: "reader@example.com"))
        let writer = TestPool.token(claims: TestPool.idClaims(email: "writer@example.com"))
        let clients = try Self.clients(stack, on: [0, 0])
        let (reads, post) = (clients[0], clients[1])
        let page = try reads.send("GET", "/articles/", token: reader)
        // Binds the writer's token (a first write looks its user up).
        #expect(try post.send("GET", "/articles/", token: writer).status == "Status: 200 OK")
        func latencies(for seconds: Double) throws -> [Double] {
            var samples: [Double] = []
            let until = Date().addingTimeInterval(seconds)
            while Date() < until {
                let read = try reads.send("GET", "/articles/", token: reader)
                #expect(read.status == "Status: 200 OK" && read.body == page.body)
                samples.append(read.seconds)
            }
            return samples
        }
        let unlocked = try latencies(for: 1)

        let psql = try stack.database.connect()
        try psql.query("BEGIN")
        try psql.query("SELECT 1 FROM users WHERE username = 'writer' FOR UPDATE")
        let created = Results()
        let writing = Thread {
            let answer = try? post.send("POST", "/articles/", token: writer, body: #"{"name":"after the lock"}"#)
            created.add(answer?.status == "Status: 201 Created" ? 201 : -1, answer?.body ?? "")
        }
        writing.start()
        try stack.database.waitForALockWait()
        let locked = try latencies(for: 1.5)
        #expect(created.all.isEmpty, "the POST still waits")
        try psql.query("COMMIT")
        try waitFor("the POST's answer", within: 10) { !created.all.isEmpty }
        #expect(created.all.map(\.status) == [201])
        #expect(try admin.query("SELECT count(*) FROM articles WHERE name = 'after the lock'").first?.decode(Int.self, at: 0) == 1)
        let (before, during) = (Self.p99(unlocked), Self.p99(locked))
        #expect(during < 2 * max(before, 0.002), "p99 \(during) s with the lock, \(before) s without")
    }
}
