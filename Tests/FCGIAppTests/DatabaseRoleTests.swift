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

    /// The serving role changes of users and of the replay records only what its statements
    /// need: no machine clients or inactive rows, no rebinding, no erasing of signatures.
    @Test func theServingRoleChangesOnlyWhatItsStatementsNeed() throws {
        let database = try TestDatabase.migrated()
        let admin = try database.connect()
        try admin.query("INSERT INTO users (username, email, cognito_sub) VALUES ('bound', 'bound@example.com', 'sub-bound')")
        try admin.query("INSERT INTO users (username, email) VALUES ('waiting', 'waiting@example.com')")
        try admin.query("INSERT INTO provisioning_requests (signature, signed_at) VALUES ('\\x01', now())")
        let app = try database.connect(user: "articles_app")
        for statement in [
            "INSERT INTO users (username, cognito_sub, is_client) VALUES ('robot', 'client-1', true)",
            "INSERT INTO users (username, email, is_active) VALUES ('off', 'off@example.com', false)",
            "UPDATE users SET cognito_sub = 'sub-thief' WHERE username = 'bound'",
            "UPDATE users SET pool_id = 'eu-west-1_Other' WHERE username = 'bound'",
            "UPDATE users SET pool_id = 'eu-west-1_Other' WHERE username = 'waiting'",
            "UPDATE users SET is_client = true WHERE username = 'waiting'",
            "DELETE FROM provisioning_requests",
            "UPDATE provisioning_requests SET signed_at = now() - interval '1 day'",
            "INSERT INTO provisioning_requests (signature, signed_at) VALUES ('\\x02', now() - interval '1 day')",
        ] {
            let error = #expect(throws: PGError.self, "\(statement)") { try app.query(statement) }
            #expect(error?.sqlState == .insufficientPrivilege, "\(statement): \(String(describing: error))")
        }
        // What its statements do still works: a new user, a binding, a rename, a signature.
        try app.query("INSERT INTO users (username, email, cognito_sub, pool_id) VALUES ('new', 'new@example.com', 'sub-new', NULL)")
        try app.query("UPDATE users SET cognito_sub = 'sub-waiting' WHERE username = 'waiting' AND cognito_sub IS NULL")
        try app.query("UPDATE users SET username = 'renamed', email = 'renamed@example.com' WHERE username = 'bound'")
        #expect(try app.query("SELECT remember_provisioning_request('\\x03', now())").first!.decode(Bool?.self, at: 0) == true)
        #expect(try app.query("SELECT remember_provisioning_request('\\x03', now())").first!.decode(Bool?.self, at: 0) == nil)
        let rows = try admin.query(
            "SELECT username, coalesce(cognito_sub, '-'), is_client, is_active FROM users ORDER BY id"
        ).map { "\(try $0.decode(String.self, at: 0)) \(try $0.decode(String.self, at: 1)) \(try $0.decode(Bool.self, at: 2)) \(try $0.decode(Bool.self, at: 3))" }
        #expect(rows == ["renamed sub-bound false true", "waiting sub-waiting false true", "new sub-new false true"])
        #expect(try admin.query("SELECT count(*) FROM provisioning_requests").first!.decode(Int.self, at: 0) == 2)
    }


    /// The feed's messages carry only the columns the workers use: a new user's id, never its
    /// name or email.
    @Test func theFeedsMessagesForANewUserCarryNoEmail() throws {
        let database = try TestDatabase.migrated()
        let feed = try ReplicationStream(try database.conninfo(user: "articles_feed"), applicationName: "role-test")
        let slot = "columns_test_\(UInt32.random(in: 0...UInt32.max))"
        let (start, _) = try feed.createTemporarySlot(slot, plugin: "pgoutput") { _ throws(PGError) in 0 }
        try feed.start(slot: slot, options: "proto_version '1', publication_names 'articles_fcgi'")
        let admin = try database.connect()
        try admin.query("INSERT INTO users (username, email) VALUES ('erin', 'erin@example.com')")
        try admin.query("UPDATE users SET email = 'erin@example.org' WHERE username = 'erin'")
        let flushed = try admin.query("SELECT pg_current_wal_flush_lsn()").first!.decode(LSN.self, at: 0)
        var messages: [PGOutputMessage] = []
        var caughtUp = false
        let deadline = Date().addingTimeInterval(10)
        while !caughtUp, Date() < deadline {
            switch try feed.next(timeout: 0.5) {
            case .data(_, let bytes)?: messages.append(try PGOutputMessage(bytes))
            case .keepalive(let walEnd, _)?:
                caughtUp = walEnd >= flushed
                try feed.sendStatus(applied: walEnd, replyRequested: false)
            case nil: try feed.sendStatus(applied: start, replyRequested: true)
            }
        }
        feed.close()
        #expect(caughtUp)
        let rows = messages.filter { if case .begin = $0 { false } else if case .commit = $0 { false } else { true } }
        guard case .relation(let relation, "public", "users", ["id"])? = rows.first else {
            Issue.record("users' relation is not its id alone: \(rows)")
            return
        }
        let id = try admin.query("SELECT id::text FROM users").first!.decode(String.self, at: 0)
        #expect(Array(rows.dropFirst()) == [
            .insert(relation: relation, new: [.text(id)]), .update(relation: relation, old: nil, new: [.text(id)]),
        ])
    }


    /// A persistent logical slot is no worker's: check-config --database names it, and
    /// /metrics counts it and the WAL the slots hold back.
    @Test func aPersistentSlotIsNamedAndCounted() throws {
        let stack = try Stack()
        try stack.waitForChangeFeed()
        let slot = "left_behind_\(UInt32.random(in: 0...UInt32.max))"
        let feedRole = try stack.database.connect(user: "articles_feed")
        try feedRole.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", slot)
        defer { _ = try? stack.database.connect().query("SELECT pg_drop_replication_slot($1)", slot) }
        let pool = try TestPool.environment(dir: TestEnvironment.scratchFolder("slots"))
        let checked = try run(
            TestEnvironment.binary(), ["check-config", "--database"], environment: pool.merging(try stack.database.workerEnvironment()) { $1 })
        #expect(checked.status == 0, "\(checked.output)")
        #expect(checked.output.contains(
            "\nwarning: replication slot \(slot) (plugin pgoutput, database \(stack.database.name)) is persistent, so no worker made it"),
            "\(checked.output)")
        #expect(checked.output.contains("drop it if nothing uses it (SELECT pg_drop_replication_slot('\(slot)'))\n"))
        #expect(try stack.metric(#"articles_fcgi_replication_slots{kind="persistent"}"#).map { $0 >= 1 } == true)
        #expect(try stack.metric(#"articles_fcgi_replication_slots{kind="temporary"}"#).map { $0 >= 1 } == true, "the worker's own feed")
        #expect(try stack.metric("articles_fcgi_replication_slots_retained_wal_bytes").map { $0 >= 0 } == true)
    }


    /// The project's own cluster trusts whoever reaches its socket, so its socket's folder is
    /// the cluster owner's alone: another local account cannot connect at all.
    @Test(.enabled(if: getuid() == 0, "runuser needs root")) func anotherLocalAccountCannotReachTheCluster() throws {
        let host = try TestEnvironment.value("ARTICLES_TEST_PGHOST")
        let port = ProcessInfo.processInfo.environment["ARTICLES_TEST_PGPORT"] ?? "5432"
        let refused = try run("/usr/sbin/runuser", [
            "-u", "nobody", "--", "/usr/bin/psql", "-X", "-h", host, "-p", port, "-U", "postgres", "-d", "postgres", "-c", "SELECT 1",
        ])
        #expect(refused.status != 0, "\(refused.output)")
        #expect(refused.output.contains("Permission denied"), "\(refused.output)")
    }

}
