import FoundationEssentials
import PG
import Support

/// Applies the numbered SQL files in `sql/migrations` (`0001_name.sql`, ...) in order, each in
/// its own transaction, recording each in `schema_migrations`. Applying them again changes
/// nothing. Concurrent runs wait for each other on an advisory lock.
package struct Migrator {
    package struct Migration: Equatable {
        package let version: String
        package let name: String
        package let sql: String
    }

    /// An arbitrary constant naming the advisory lock migrations hold.
    package static let lockKey = 7_042_318_555

    package let migrations: [Migration]

    /// Loads every `NNNN_name.sql` in `directory`, ordered by number.
    package init(directory: String) throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
        var migrations: [Migration] = []
        for file in names where file.hasSuffix(".sql") {
            let stem = file.dropLast(4)
            guard let underscore = stem.firstIndex(of: "_"), stem[..<underscore].allSatisfy(\.isNumber),
                underscore > stem.startIndex
            else {
                throw ConfigError("migration file \(file) is not named NNNN_name.sql")
            }
            guard let data = FileManager.default.contents(atPath: directory + "/" + file),
                let sql = String(data: data, encoding: .utf8)
            else {
                throw ConfigError("cannot read migration \(directory)/\(file)")
            }
            migrations.append(Migration(
                version: String(stem[..<underscore]), name: String(stem[stem.index(after: underscore)...]), sql: sql))
        }
        migrations.sort { $0.version < $1.version }
        for (previous, next) in zip(migrations, migrations.dropFirst()) where previous.version == next.version {
            throw ConfigError("two migrations are numbered \(next.version)")
        }
        self.migrations = migrations
    }

    /// Applies what is not yet applied; returns the migrations it applied.
    @discardableResult
    package func apply(to database: Connection) throws -> [Migration] {
        try database.transaction { db in
            try db.query("SELECT pg_advisory_xact_lock($1)", Self.lockKey)
            try db.query("""
                CREATE TABLE IF NOT EXISTS schema_migrations (
                  version    text        PRIMARY KEY,
                  name       text        NOT NULL,
                  applied_at timestamptz NOT NULL DEFAULT now())
                """)
        }
        var applied: [Migration] = []
        for migration in migrations {
            let ran = try database.transaction { db in
                try db.query("SELECT pg_advisory_xact_lock($1)", Self.lockKey)
                let done = try db.query("SELECT 1 FROM schema_migrations WHERE version = $1", migration.version)
                guard done.isEmpty else { return false }
                try db.execute(script: migration.sql)
                try db.query(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", migration.version, migration.name)
                return true
            }
            if ran { applied.append(migration) }
        }
        return applied
    }
}
