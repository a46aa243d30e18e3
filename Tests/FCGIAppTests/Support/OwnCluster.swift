import Foundation
import Testing

/// A PostgreSQL cluster of one test's own (scripts/lib/common.sh's `cluster_start`), migrated,
/// which the test may stop and start again, and stops at its end (`defer { cluster.stopAtEnd() }`).
final class OwnCluster {
    let dir: String
    /// Its administrator's connection string, to the `articles` database.
    let database: String

    init() throws {
        dir = try TestEnvironment.scratchFolder("cluster")
        database = "host=\(dir)/pg port=5432 user=postgres dbname=articles"
        try start()
        let migrated = try run(try TestEnvironment.binary(), ["migrate", "--dir", TestEnvironment.path("sql/migrations")],
                               environment: ["DATABASE_URL": database])
        try #require(migrated.status == 0, "\(migrated.output)")
    }

    func start() throws { try script("cluster_start") }

    func stop() throws { try script("cluster_stop") }

    private func script(_ function: String) throws {
        let result = try run("/bin/bash", ["-c", "source \(TestEnvironment.path("scripts/lib/common.sh")) && \(function) \(dir)"])
        try #require(result.status == 0, "\(result.output)")
    }

    func stopAtEnd() { try? stop() }
}
