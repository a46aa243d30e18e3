import ArgumentParser
import FoundationEssentials
import PG
import Stores
import Support

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the SQL migrations to the database DATABASE_URL names.",
        discussion: """
            Run it as the database owner. Each migration runs in its own transaction and is \
            recorded in schema_migrations; running it again applies only what is new.
            """)

    @Option(help: "The folder of NNNN_name.sql files (default: sql/migrations, else the installed copy).")
    var dir: String?

    func run() throws {
        let databaseURL = try Config.databaseURL(ProcessInfo.processInfo.environment)
        let migrator = try Migrator(directory: dir ?? Self.defaultDirectory())
        let database: Connection
        do {
            database = try Connection(databaseURL)
        } catch {
            throw ConfigError("cannot connect to the database: \(error.message)")
        }
        let applied = try migrator.apply(to: database)
        for migration in applied { print("applied \(migration.version)_\(migration.name)") }
        let latest = migrator.migrations.last.map { "\($0.version)_\($0.name)" } ?? "none"
        print(applied.isEmpty ? "up to date at \(latest)" : "migrated to \(latest)")
    }

    /// `sql/migrations` under the current folder (a checkout), else the copy installed beside
    /// the binary (`PREFIX/share/articles-fcgi/sql/migrations`).
    static func defaultDirectory() -> String {
        let local = "sql/migrations"
        if FileManager.default.fileExists(atPath: local) { return local }
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        return executable.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("share/articles-fcgi/sql/migrations").path
    }
}
