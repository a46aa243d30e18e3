import ArgumentParser
import FoundationEssentials
import PG
import Stores
import Support

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate the environment and print the settings the worker would use.",
        discussion: """
            Secrets are masked. Exits non-zero with the first error found. With --database, also \
            connects as the worker would and checks what it needs from PostgreSQL: a migrated \
            database, and for the change feed (DATABASE_FEED_URL, else DATABASE_URL) \
            wal_level = logical, a role that may replicate, the articles_fcgi publication and a \
            free replication slot; and that neither role may open a physical replication \
            connection (with which it could copy the whole cluster).
            """)

    @Flag(help: "Also check the database and the change feed's connection.")
    var database = false

    func run() throws {
        let config = try Config.fromEnvironment(ProcessInfo.processInfo.environment)
        for (name, value) in config.summary { print("\(name)=\(value)") }
        print(Self.serving(config.threads))
        for warning in config.warnings { print("warning: \(warning)") }
        if database {
            do {
                for line in try Self.checkDatabase(config) { print(line) }
            } catch let error as PGError {
                throw ConfigError("database: \(error.message)")
            }
        }
        print("configuration OK")
    }

    /// The serving loops `FCGI_THREADS` asks for, and the database sessions they hold.
    static func serving(_ loops: Int) -> String {
        let (usual, most) = (loops * LoopDatabase.usual + 1, loops * LoopDatabase.most + 1)
        return "serving: \(loops) loop\(loops == 1 ? "" : "s") (FCGI_THREADS), each with \(LoopDatabase.usual) database "
            + "sessions, and up to \(LoopDatabase.most) while statements are stuck: with the change feed's, \(usual) sessions "
            + "to PostgreSQL (or the pooler), at most \(most)"
    }

    /// What the worker needs from PostgreSQL, one line each; throws the first thing missing.
    static func checkDatabase(_ config: Config) throws -> [String] {
        let db = try Connection(config.databaseURL)
        defer { db.close() }
        guard try db.query("SELECT to_regclass('revoked_sessions') IS NOT NULL").first!.decode(Bool.self, at: 0) else {
            throw ConfigError("database: not migrated (run articles-fcgi migrate as the owner)")
        }
        var lines = ["database: reachable, server \(db.serverVersion), migrated"]
        if let timeout = try Serve.pooledStatementTimeout(db, config) {
            lines.append("database: through a connection pooler (statements sent unnamed; the role's statement_timeout: \(timeout))")
        }
        // The serving role has no REPLICATION: the feed needs a role of its own.
        let unsetFeed = config.feedURL == nil
            ? "change feed: DATABASE_FEED_URL is unset, so it connects as DATABASE_URL's role, which may not replicate (as "
                + "articles_app should not): set DATABASE_FEED_URL to connect as articles_feed"
            : nil
        let feed: ReplicationStream
        do {
            feed = try ReplicationStream(config.feedDatabaseURL, applicationName: "articles-fcgi check-config")
        } catch {
            throw ConfigError(
                unsetFeed ?? "change feed: cannot open a replication connection (its role needs the REPLICATION attribute, and "
                    + "pg_hba.conf must let it connect to the database): \(error.message)")
        }
        defer { feed.close() }
        let settings = try feed.execute("""
            SELECT current_setting('wal_level'), \
            (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user), \
            EXISTS (SELECT 1 FROM pg_publication WHERE pubname = '\(ChangeFeed.publication)'), \
            current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots), \
            current_setting('max_slot_wal_keep_size')
            """).first!
        let walLevel = try settings.decode(String.self, at: 0)
        guard walLevel == "logical" else {
            throw ConfigError("change feed: wal_level is \(walLevel); set wal_level = logical and restart PostgreSQL")
        }
        guard try settings.decode(Bool.self, at: 1) else {
            throw ConfigError(
                unsetFeed ?? "change feed: the role lacks the REPLICATION attribute (ALTER ROLE ... REPLICATION, or rds_replication on RDS)")
        }
        guard try settings.decode(Bool.self, at: 2) else {
            throw ConfigError("change feed: no publication \(ChangeFeed.publication) (run articles-fcgi migrate)")
        }
        let freeSlots = try settings.decode(Int.self, at: 3)
        guard freeSlots > 0 else {
            throw ConfigError("change feed: no free replication slot (raise max_replication_slots; each worker takes one)")
        }
        lines.append(
            "change feed: ok (wal_level logical, \(freeSlots) free replication slots, max_slot_wal_keep_size \(try settings.decode(String.self, at: 4)))")
        // The workers' feeds use temporary slots only: a persistent logical slot is someone
        // else's, and with any plugin it reads every change of its database.
        for slot in try feed.execute("""
            SELECT slot_name, plugin, database, pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)) \
            FROM pg_replication_slots WHERE slot_type = 'logical' AND NOT temporary ORDER BY slot_name
            """) {
            let name = try slot.decode(String.self, at: 0)
            lines.append(
                "warning: replication slot \(name) (plugin \(try slot.decode(String.self, at: 1)), database "
                    + "\(try slot.decode(String.self, at: 2))) is persistent, so no worker made it: it holds back "
                    + "\(try slot.decode(String?.self, at: 3) ?? "no") WAL and lets its reader see every change of that database; "
                    + "drop it if nothing uses it (SELECT pg_drop_replication_slot('\(name)'))")
        }
        // A physical replication connection streams the whole cluster (pg_basebackup copies
        // every database and every role's password hash): pg_hba.conf must refuse it to both.
        for (name, url) in [("DATABASE_URL", config.databaseURL), ("DATABASE_FEED_URL", config.feedDatabaseURL)] {
            guard let physical = try? ReplicationStream(url, applicationName: "articles-fcgi check-config", physical: true) else { continue }
            defer { physical.close() }
            if (try? physical.execute("IDENTIFY_SYSTEM")) != nil {
                throw ConfigError(
                    "\(name)'s role may open a physical replication connection, with which it can copy the whole cluster "
                        + "(pg_basebackup): make pg_hba.conf reject replication for it (docs/operations.md)")
            }
        }
        lines.append("physical replication: refused for both roles")
        return lines
    }
}
