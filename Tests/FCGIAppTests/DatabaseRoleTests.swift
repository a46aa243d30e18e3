import Foundation
@testable import PG
import Testing

/// The worker's two roles on the project's cluster (pg_hba.conf from scripts/lib/common.sh,
/// as scripts/run's): neither may copy the cluster, the serving role cannot replicate at all,
/// and the feed's role cannot write.
@Suite(.lane()) struct DatabaseRoleTests {
    @Test func neitherRoleCanCopyTheClusterAndOnlyTheFeedStreams() throws {
        let database = try TestDatabase.migrated()
        let host = try TestEnvironment.value("ARTICLES_TEST_PGHOST")
        let port = ProcessInfo.processInfo.environment["ARTICLES_TEST_PGPORT"] ?? "5432"
        let dir = try TestEnvironment.scratchFolder("basebackup")
        for role in ["articles_app", "articles_feed"] {
            let copy = try run("/usr/bin/pg_basebackup", ["-h", host, "-p", port, "-U", role, "-D", "\(dir)/\(role)", "-X", "none"])
            #expect(copy.status != 0, "\(copy.output)")
            #expect(copy.output.contains("pg_hba.conf rejects replication connection for host \"[local]\", user \"\(role)\""), "\(copy.output)")
        }
        let attributes = try database.connect().query(
            "SELECT rolname, rolreplication FROM pg_roles WHERE rolname IN ('articles_app', 'articles_feed') ORDER BY 1"
        ).map { "\(try $0.decode(String.self, at: 0)) \(try $0.decode(Bool.self, at: 1))" }
        #expect(attributes == ["articles_app false", "articles_feed true"])

        // The serving role cannot open a replication connection, so it can start no stream.
        let refused = #expect(throws: PGError.self) {
            try ReplicationStream(try database.conninfo(user: "articles_app"), applicationName: "role-test")
        }
        // PostgreSQL 15 says "must be superuser or replication role to start walsender", 16 "permission denied to start WAL sender".
        let message = refused?.message.lowercased() ?? ""
        #expect(message.contains("walsender") || message.contains("wal sender"), "\(message)")
        // The feed's role streams, and reads only what it loads.
        let feed = try ReplicationStream(try database.conninfo(user: "articles_feed"), applicationName: "role-test")
        let slot = "role_test_\(UInt32.random(in: 0...UInt32.max))"
        let (_, revoked) = try feed.createTemporarySlot(slot, plugin: "pgoutput") { stream throws(PGError) in
            try stream.execute("SELECT count(*) FROM revoked_sessions").first!.decode(Int.self, at: 0)
        }
        #expect(revoked == 0)
        try feed.start(slot: slot, options: "proto_version '1', publication_names 'articles_fcgi'")
        feed.close()
        let reader = try database.connect(user: "articles_feed")
        for statement in ["SELECT 1 FROM users", "INSERT INTO revoked_sessions (origin_jti) VALUES ('x')", "DELETE FROM articles"] {
            let error = #expect(throws: PGError.self, "\(statement)") { try reader.query(statement) }
            #expect(error?.sqlState == .insufficientPrivilege, "\(statement): \(String(describing: error))")
        }
    }
}
