@testable import FCGIApp
import Foundation
@testable import PG
@testable import Stores
import Synchronization
import Testing

/// What scripts/test provides: the test cluster, a scratch folder and the built worker. A
/// missing variable fails the test; it never skips.
enum TestEnvironment {
    struct Missing: Error, CustomStringConvertible {
        let name: String
        var description: String { "\(name) is not set: run the tests with scripts/test" }
    }

    static func value(_ name: String) throws -> String {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { throw Missing(name: name) }
        return value
    }

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
    }

    static func path(_ relative: String) -> String { repositoryRoot.appendingPathComponent(relative).path }

    static func binary() throws -> String { try value("ARTICLES_TEST_BINARY") }

    /// A new folder under the test run's scratch folder, reachable by nginx and postgres.
    static func scratchFolder(_ prefix: String) throws -> String {
        let base = try value("ARTICLES_TEST_RUN_DIR")
        let path = "\(base)/\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        chmod(path, 0o755)
        return path
    }

    /// A TCP port on 127.0.0.1 that nothing listens on right now.
    static func freePort() throws -> Int {
        // Below the kernel's ephemeral range (32768-60999 here), so no outgoing connection of
        // another test takes the port between this check and the server's bind; never the same
        // port twice in one run.
        for _ in 0..<1000 {
            let port = Int.random(in: 20_000..<32_768)
            guard handedOut.withLock({ $0.insert(port).inserted }) else { continue }
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
            }
            if bound { return port }
        }
        throw POSIXError(.EADDRINUSE)
    }

    private static let handedOut = Mutex<Set<Int>>([])

    /// A TCP socket listening on 127.0.0.1, on a port the kernel picks, and that port.
    static func loopbackListener() throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let port = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address -> Int in
                guard bind(fd, address, length) == 0, listen(fd, 8) == 0, getsockname(fd, address, &length) == 0 else { return 0 }
                return Int(UInt16(bigEndian: pointer.pointee.sin_port))
            }
        }
        guard port != 0 else {
            let failure = HTTPClient.Failure(description: "listen on 127.0.0.1: errno \(errno)")
            close(fd)
            throw failure
        }
        return (fd, port)
    }
}

/// A database of its own for one test, created in the test cluster and migrated.
struct TestDatabase {
    let name: String

    /// A new database holding every migration: a copy of one migrated once per run (creating
    /// a database from a template copies its files, far cheaper than migrating each anew).
    static func migrated() throws -> TestDatabase {
        let template = try migratedTemplate.get()
        let database = TestDatabase(name: "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""))
        let admin = try Connection(database.conninfo(database: "postgres"))
        try copy(template, to: database.name, on: admin)
        return database
    }

    private static let migratedTemplate = Result { () throws -> String in
        let template = TestDatabase(name: "t_template_\(getpid())")
        let admin = try Connection(template.conninfo(database: "postgres"))
        try admin.query("CREATE DATABASE \(template.name)")
        try Migrator(directory: TestEnvironment.path("sql/migrations")).apply(to: template.connect())
        return template.name
    }

    /// `CREATE DATABASE ... TEMPLATE`, which PostgreSQL refuses (55006) while a session is
    /// connected to the template, as the migrating one is until its backend has exited.
    private static func copy(_ template: String, to name: String, on admin: Connection) throws {
        try waitFor("the template to be free to copy", within: 10) {
            do throws(PGError) {
                try admin.query("CREATE DATABASE \(name) TEMPLATE \(template)")
                return true
            } catch {
                guard error.sqlState == "55006" else { throw error }
                return false
            }
        }
    }

    func conninfo(user: String = "postgres", database: String? = nil) throws -> String {
        let host = try TestEnvironment.value("ARTICLES_TEST_PGHOST")
        let port = ProcessInfo.processInfo.environment["ARTICLES_TEST_PGPORT"] ?? "5432"
        return "host=\(host) port=\(port) user=\(user) dbname=\(database ?? name)"
    }

    /// What a worker on this database is given: `DATABASE_URL` as the serving role and
    /// `DATABASE_FEED_URL` as the change feed's.
    func workerEnvironment() throws -> [String: String] {
        ["DATABASE_URL": try conninfo(user: "articles_app"), "DATABASE_FEED_URL": try conninfo(user: "articles_feed")]
    }

    /// A connection as the superuser (the owner that migrates), or as `user`.
    func connect(user: String = "postgres") throws -> Connection {
        try Connection(conninfo(user: user))
    }

    /// Waits up to 10 s until a session of this database waits for a lock.
    func waitForALockWait() throws {
        let admin = try connect()
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let waiting = try admin.query(
                // A client's session: a change feed that connects meanwhile waits for a lock too.
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND backend_type = 'client backend' AND datname = $1",
                name)
            if try waiting.first!.decode(Int64.self, at: 0) > 0 { return }
            Thread.sleep(forTimeInterval: 0.01)
        }
        throw HTTPClient.Failure(description: "no session waited for a lock within 10 s")
    }

    /// Runs sql/admin/`script` with psql as the administrator runs it, with `-v` `variables`:
    /// its exit status and output.
    func admin(_ script: String, _ variables: [String: String] = [:]) throws -> (status: Int32, output: String) {
        try run("/usr/bin/psql", ["-X", try adminURI()]
            + variables.sorted { $0.key < $1.key }.flatMap { ["-v", "\($0.key)=\($0.value)"] }
            + ["-f", TestEnvironment.path("sql/admin/\(script)")])
    }

    /// The URI psql takes, as the administrator.
    func adminURI() throws -> String {
        let host = try TestEnvironment.value("ARTICLES_TEST_PGHOST")
        let port = ProcessInfo.processInfo.environment["ARTICLES_TEST_PGPORT"] ?? "5432"
        return "postgresql:///\(name)?host=\(host)&port=\(port)&user=postgres"
    }
}

/// Checks `condition` every 20 ms until it holds; throws, naming `what`, after `seconds`.
func waitFor(_ what: String, within seconds: TimeInterval, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(seconds)
    while try !condition() {
        guard Date() < deadline else { throw HTTPClient.Failure(description: "\(what) did not happen within \(seconds) s") }
        Thread.sleep(forTimeInterval: 0.02)
    }
}

/// How many connections wait in the backlog of the unix socket listening at `path` (its
/// Recv-Q, as `ss` reads it from the kernel): 0 once the worker has accepted them all.
func acceptQueue(_ path: String) throws -> Int {
    let listing = try run("/usr/bin/ss", ["-Hxl", "src", path])
    guard listing.status == 0, let line = listing.output.split(separator: "\n").first,
          let queued = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst(2).first.flatMap({ Int($0) })
    else { throw HTTPClient.Failure(description: "ss does not list \(path): \(listing.output)") }
    return queued
}
