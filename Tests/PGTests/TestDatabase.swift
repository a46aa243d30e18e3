import Foundation
import PG
import Testing

/// The cluster scripts/test starts: its socket folder and port come from the environment, and
/// each test gets a database of its own. A missing cluster fails the test; it never skips.
enum TestDatabase {
    struct Missing: Error, CustomStringConvertible {
        var description: String {
            "ARTICLES_TEST_PGHOST is not set: run the tests with scripts/test, which starts the test cluster"
        }
    }

    static func conninfo(database: String, user: String = "postgres") throws -> String {
        let environment = ProcessInfo.processInfo.environment
        guard let host = environment["ARTICLES_TEST_PGHOST"] else { throw Missing() }
        let port = environment["ARTICLES_TEST_PGPORT"] ?? "5432"
        return "host=\(host) port=\(port) user=\(user) dbname=\(database)"
    }

    /// Creates an empty database and returns a superuser connection to it.
    static func fresh() throws -> Connection {
        let name = "pg_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let admin = try Connection(conninfo(database: "postgres"))
        try admin.query("CREATE DATABASE \(name)")
        return try Connection(conninfo(database: name))
    }
}
