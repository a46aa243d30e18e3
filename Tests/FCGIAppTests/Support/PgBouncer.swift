import Foundation
@testable import JSON

/// Debian's PgBouncer in front of the test cluster, in transaction pooling mode: each
/// transaction (each statement outside one) runs on whichever of at most `poolSize` server
/// connections is free, as a php-fpm farm's pooler runs it. PgBouncer refuses to run as root,
/// so under root it runs as postgres (through setpriv, which becomes PgBouncer: runuser would
/// stay its parent, and take two seconds to pass on a SIGTERM).
final class PgBouncer: @unchecked Sendable {
    let dir: String
    let port: Int
    let poolSize: Int
    private let process: ChildProcess

    init(poolSize: Int) throws {
        dir = try TestEnvironment.scratchFolder("pgbouncer")
        port = try TestEnvironment.freePort()
        self.poolSize = poolSize
        let host = try TestEnvironment.value("ARTICLES_TEST_PGHOST")
        let serverPort = ProcessInfo.processInfo.environment["ARTICLES_TEST_PGPORT"] ?? "5432"
        // Trust, as the cluster does over its socket; PgBouncer still wants the names listed.
        try "\"postgres\" \"\"\n\"articles_app\" \"\"\n".write(toFile: "\(dir)/users.txt", atomically: true, encoding: .utf8)
        try """
            [databases]
            * = host=\(host) port=\(serverPort)
            [pgbouncer]
            listen_addr = 127.0.0.1
            listen_port = \(port)
            unix_socket_dir = \(dir)
            auth_type = trust
            auth_file = \(dir)/users.txt
            pool_mode = transaction
            default_pool_size = \(poolSize)
            max_client_conn = 200
            log_connections = 0
            log_disconnections = 0

            """.write(toFile: "\(dir)/pgbouncer.ini", atomically: true, encoding: .utf8)
        var command = ["/usr/sbin/pgbouncer"]
        if getuid() == 0, let postgres = getpwnam("postgres") {
            // Its socket goes into the folder.
            chown(dir, postgres.pointee.pw_uid, postgres.pointee.pw_gid)
            command = ["/usr/bin/setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] + command
        }
        process = try ChildProcess(
            command[0], Array(command.dropFirst()) + ["\(dir)/pgbouncer.ini"], environment: [:], log: "\(dir)/pgbouncer.log")
        try waitFor("PgBouncer to listen", within: 10) {
            guard process.isRunning else { throw HTTPClient.Failure(description: "PgBouncer exited: \(process.output)") }
            return FileManager.default.fileExists(atPath: "\(dir)/.s.PGSQL.\(port)")
        }
    }

    /// A libpq connection string to `database` through PgBouncer.
    func conninfo(_ database: TestDatabase, user: String = "articles_app") -> String {
        "host=\(dir) port=\(port) user=\(user) dbname=\(database.name)"
    }

    var log: String { process.output }

    deinit { process.stop() }
}
