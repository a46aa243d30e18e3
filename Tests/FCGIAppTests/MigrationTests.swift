@testable import FCGIApp
import Foundation
@testable import JSON
@testable import PG
@testable import Stores
@testable import Support
import Testing

@Suite(.lane()) struct MigrationTests {
    @Test func applyingTwiceChangesNothing() throws {
        let database = try TestDatabase.migrated()
        let db = try database.connect()
        let migrator = try Migrator(directory: TestEnvironment.path("sql/migrations"))
        let recorded = try db.query("SELECT version, name FROM schema_migrations ORDER BY version")
        #expect(try recorded.map { try $0.decode(String.self, "version") } == migrator.migrations.map(\.version))
        #expect(migrator.migrations.map(\.version) == ["0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010", "0011", "0012", "0013", "0014", "0015", "0016", "0017"])
        let schemaBefore = try schema(db)
        #expect(try migrator.apply(to: db).isEmpty)
        #expect(try schema(db) == schemaBefore)
        #expect(try db.query("SELECT count(*) FROM schema_migrations").first?.decode(Int.self, at: 0) == 17)
    }

    @Test func theMigrateCommandReportsWhatItApplied() throws {
        let database = TestDatabase(name: "m_" + UUID().uuidString.prefix(8).lowercased())
        try Connection(database.conninfo(database: "postgres")).query("CREATE DATABASE \(database.name)")
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = try database.conninfo()
        let binary = try TestEnvironment.binary()
        let dir = TestEnvironment.path("sql/migrations")
        let first = try run(binary, ["migrate", "--dir", dir], environment: environment)
        #expect(first.status == 0)
        #expect(first.output == """
            applied 0001_create_users
            applied 0002_create_articles
            applied 0003_create_app_role
            applied 0004_grant_article_changes
            applied 0005_notify_user_changes
            applied 0006_notify_article_changes
            applied 0007_grant_user_provisioning
            applied 0008_revocations
            applied 0009_change_feed_publication
            applied 0010_verified_provisioning
            applied 0011_feed_role
            applied 0012_group_roles
            applied 0013_machine_clients
            applied 0014_trusted_pools
            applied 0015_group_roles_per_pool
            applied 0016_serving_role_least_privilege
            applied 0017_feed_columns
            migrated to 0017_feed_columns

            """)
        let second = try run(binary, ["migrate", "--dir", dir], environment: environment)
        #expect(second.status == 0)
        #expect(second.output == "up to date at 0017_feed_columns\n")
    }

    @Test func aFailingMigrationLeavesNothingBehind() throws {
        let database = TestDatabase(name: "f_" + UUID().uuidString.prefix(8).lowercased())
        try Connection(database.conninfo(database: "postgres")).query("CREATE DATABASE \(database.name)")
        let dir = try TestEnvironment.scratchFolder("migrations")
        try "CREATE TABLE good (id int);".write(toFile: "\(dir)/0001_good.sql", atomically: true, encoding: .utf8)
        try "CREATE TABLE half (id int);\nCREATE TABLE broken (;".write(
            toFile: "\(dir)/0002_broken.sql", atomically: true, encoding: .utf8)
        let db = try database.connect()
        let error = try #require(throws: PGError.self) { try Migrator(directory: dir).apply(to: db) }
        #expect(error.sqlState == .syntaxError)
        #expect(try db.query("SELECT version FROM schema_migrations").map { $0["version"] } == ["0001"])
        #expect(try db.query("SELECT to_regclass('half') IS NULL AS gone").first?.decode(Bool.self, "gone") == true)
    }

    @Test func misnamedMigrationFilesAreRefused() throws {
        let dir = try TestEnvironment.scratchFolder("migrations")
        try "SELECT 1;".write(toFile: "\(dir)/create.sql", atomically: true, encoding: .utf8)
        #expect(throws: ConfigError("migration file create.sql is not named NNNN_name.sql")) {
            try Migrator(directory: dir)
        }
    }

    /// Tables, columns, constraints and indexes of the public schema.
    private func schema(_ db: Connection) throws -> [String] {
        try db.query("""
            SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || coalesce(column_default, '')
            FROM information_schema.columns WHERE table_schema = 'public'
            UNION ALL SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'public'::regnamespace
            UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'
            ORDER BY 1
            """).map { try $0.decode(String.self, at: 0) }
    }
}

@Suite(.lane()) struct SchemaTests {
    let database: TestDatabase
    let db: Connection
    init() throws {
        database = try TestDatabase.migrated()
        db = try database.connect()
    }

    @Test func psqlStyleInsertsGetDefaults() throws {
        let user = try #require(try db.query(
            "INSERT INTO users (username, email) VALUES ('ann', 'Ann@Example.com') RETURNING id, is_active, cognito_sub, now() - created_at < interval '60 s' AS recent"
        ).first)
        #expect(try user.decode(Bool.self, "is_active") == true)
        #expect(try user.decode(String?.self, "cognito_sub") == nil)
        #expect(try user.decode(Bool.self, "recent"))
        let article = try #require(try db.query(
            "INSERT INTO articles (name, owner_id) VALUES ('First', $1) RETURNING id, created_at = updated_at AS same",
            try user.decode(Int64.self, "id")
        ).first)
        #expect(try article.decode(Int64.self, "id") == 1)
        #expect(try article.decode(Bool.self, "same"))
    }

    @Test func emailIsUniqueWhateverItsCase() throws {
        try db.query("INSERT INTO users (username, email) VALUES ('ann', 'ann@example.com')")
        let error = try #require(throws: PGError.self) {
            try db.query("INSERT INTO users (username, email) VALUES ('other', 'ANN@EXAMPLE.COM')")
        }
        #expect(error.sqlState == .uniqueViolation)
        #expect(error.constraint == "users_email_key")
        let username = try #require(throws: PGError.self) {
            try db.query("INSERT INTO users (username, email) VALUES ('ann', 'new@example.com')")
        }
        #expect(username.constraint == "users_username_key")
    }

    @Test func anArticleNameOf51CharactersIs23514AndFiftyCodePointsFit() throws {
        let owner = try #require(try db.query(
            "INSERT INTO users (username, email) VALUES ('ann', 'ann@example.com') RETURNING id").first?.decode(Int64.self, at: 0))
        let error = try #require(throws: PGError.self) {
            try db.query("INSERT INTO articles (name, owner_id) VALUES ($1, $2)", String(repeating: "a", count: 51), owner)
        }
        #expect(error.sqlState == .checkViolation)
        #expect(error.constraint == "articles_name_length")
        let empty = try #require(throws: PGError.self) {
            try db.query("INSERT INTO articles (name, owner_id) VALUES ('', $1)", owner)
        }
        #expect(empty.sqlState == .checkViolation)
        // 50 code points: emoji and combining marks count one each, as PostgreSQL counts.
        let emoji = String(repeating: "😀", count: 25) + String(repeating: "e\u{301}", count: 12) + "x"
        #expect(emoji.unicodeScalars.count == 50)
        try db.query("INSERT INTO articles (name, owner_id) VALUES ($1, $2)", emoji, owner)
        #expect(try db.query("SELECT name FROM articles").first?.decode(String.self, "name") == emoji)
    }

    @Test func updatedAtFollowsChanges() throws {
        try db.query("INSERT INTO users (username, email) VALUES ('ann', 'ann@example.com')")
        try db.query("INSERT INTO articles (name, owner_id) SELECT 'a', id FROM users")
        try db.query("UPDATE articles SET name = 'b', updated_at = '2000-01-01Z'")
        let row = try #require(try db.query("SELECT updated_at >= created_at AS touched FROM articles").first)
        #expect(try row.decode(Bool.self, "touched"))
    }

    @Test func theWorkerRoleHasOnlyTheRightsItNeeds() throws {
        try db.query("INSERT INTO users (username, email) VALUES ('ann', 'ann@example.com')")
        let app = try database.connect(user: "articles_app")
        #expect(try app.query("SELECT username FROM users").first?["username"] == "ann")
        #expect(try app.query("UPDATE users SET cognito_sub = 'sub-1' WHERE username = 'ann'").rowsAffected == 1)
        // Provisioning: new users, and a user's name and email as Cognito has them.
        #expect(try app.query("INSERT INTO users (username, email) VALUES ('bob', 'bob@example.com')").rowsAffected == 1)
        #expect(try app.query("UPDATE users SET username = 'bobby', email = 'bobby@example.com' WHERE username = 'bob'").rowsAffected == 1)
        #expect(try app.query("INSERT INTO articles (name, owner_id) SELECT 'mine', id FROM users WHERE username = 'ann' RETURNING id").count == 1)
        #expect(try app.query("SELECT name FROM articles").first?["name"] == "mine")
        #expect(try app.query("UPDATE articles SET name = 'renamed'").rowsAffected == 1)
        for statement in [
            "UPDATE users SET is_active = false", "UPDATE users SET created_at = now()", "DELETE FROM users", "UPDATE articles SET owner_id = owner_id", "UPDATE articles SET created_at = now()",
            "SELECT * FROM schema_migrations", "CREATE TABLE evil (id int)",
        ] {
            let error = try #require(throws: PGError.self, "\(statement)") { try app.query(statement) }
            #expect(error.sqlState == .insufficientPrivilege, "\(statement): \(error)")
        }
        #expect(try app.query("DELETE FROM articles").rowsAffected == 1)
    }
}
