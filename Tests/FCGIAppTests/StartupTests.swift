@testable import FCGIApp
import Foundation
@testable import PG
import Testing

/// What `serve` and `check-config` refuse before serving, and how they say it.
@Suite(.lane()) struct StartupTests {
    @Test func refusesToStartWithoutADatabase() throws {
        let dir = try TestEnvironment.scratchFolder("nodb")
        let result = try run(try TestEnvironment.binary(), ["serve"], environment: try TestPool.environment(dir: dir).merging([
            "DATABASE_URL": "host=\(dir) port=5432 user=postgres dbname=articles connect_timeout=2",
            "FCGI_LISTEN": "unix:\(dir)/fcgi.sock",
        ]) { $1 })
        #expect(result.status != 0)
        #expect(result.output.contains("cannot connect to the database"))
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/fcgi.sock"))
    }

    @Test func refusesToStartOnADatabaseNotMigrated() throws {
        let dir = try TestEnvironment.scratchFolder("unmigrated")
        let database = TestDatabase(name: "u_" + UUID().uuidString.prefix(8).lowercased())
        try Connection(database.conninfo(database: "postgres")).query("CREATE DATABASE \(database.name)")
        let result = try run(try TestEnvironment.binary(), ["serve"], environment: try TestPool.environment(dir: dir).merging([
            "DATABASE_URL": try database.conninfo(), "FCGI_LISTEN": "unix:\(dir)/fcgi.sock",
        ]) { $1 })
        #expect(result.status != 0)
        #expect(result.output.contains("is the database migrated? articles-fcgi migrate"), "\(result.output)")
    }

    @Test func checkConfigSaysWhatTheFeedNeeds() throws {
        let database = try TestDatabase.migrated()
        let pool = try TestPool.environment(dir: TestEnvironment.scratchFolder("check"))
        let binary = try TestEnvironment.binary()
        let good = try run(binary, ["check-config", "--database"], environment: pool.merging(try database.workerEnvironment()) { $1 })
        #expect(good.status == 0, "\(good.output)")
        #expect(good.output.contains("change feed: ok (wal_level logical"))
        #expect(good.output.contains("\nphysical replication: refused for both roles\n"), "\(good.output)")
        // The serving role cannot follow the feed itself.
        let unset = try run(binary, ["check-config", "--database"], environment: pool.merging([
            "DATABASE_URL": try database.conninfo(user: "articles_app"),
        ]) { $1 })
        #expect(unset.status != 0)
        #expect(unset.output.contains("DATABASE_FEED_URL is unset, so it connects as DATABASE_URL's role, which may not replicate"),
                "\(unset.output)")
        // A role that may copy the cluster is named (the test cluster lets its superuser).
        let copier = try run(binary, ["check-config", "--database"], environment: pool.merging([
            "DATABASE_URL": try database.conninfo(user: "articles_app"), "DATABASE_FEED_URL": try database.conninfo(),
        ]) { $1 })
        #expect(copier.status != 0)
        #expect(copier.output.contains("DATABASE_FEED_URL's role may open a physical replication connection"), "\(copier.output)")
        // A role without REPLICATION is named as the problem.
        let admin = try database.connect()
        try admin.query("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'no_replication') THEN CREATE ROLE no_replication LOGIN; END IF; END $$")
        let refused = try run(binary, ["check-config", "--database"], environment: pool.merging([
            "DATABASE_URL": try database.conninfo(user: "articles_app"),
            "DATABASE_FEED_URL": try database.conninfo(user: "no_replication"),
        ]) { $1 })
        #expect(refused.status != 0)
        #expect(refused.output.contains("REPLICATION"), "\(refused.output)")
    }
}
