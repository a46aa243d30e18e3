import ArgumentParser
import Auth
import FastCGI
import FoundationEssentials
import Glibc
import Logging
import Observability
import PG
import Support

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve FastCGI requests (the default).",
        discussion: """
            Listens where FCGI_LISTEN says, or on the socket inherited from systemd (LISTEN_FDS) \
            or on fd 0. SIGHUP loads the signing keys again. SIGTERM or SIGINT stops taking \
            connections, and stops once nginx has closed the ones it keeps (10 s at most).
            """)

    func run() throws {
        let config = try Config.fromEnvironment(ProcessInfo.processInfo.environment)
        Logger.bootstrap(level: config.logLevel)
        try LogSink.standardError.flushPeriodically()
        let logger = Logger(label: "articles-fcgi")
        for warning in config.warnings { logger.warning("\(warning)") }

        // Fail fast on a wrong DATABASE_URL or an unmigrated database; each thread then opens
        // its own connection.
        let probe: Connection
        do {
            probe = try Connection(config.databaseURL)
            logger.info("database reachable", metadata: ["server_version": "\(probe.serverVersion)", "pooled": "\(probe.isPooled)"])
        } catch {
            throw ConfigError("cannot connect to the database: \(error.message)")
        }
        if let timeout = try Self.pooledStatementTimeout(probe, config) {
            logger.info(
                "DATABASE_URL goes through a connection pooler: statements are sent unnamed, and statement_timeout and lock_timeout come from the role's settings (ALTER ROLE ... SET) or the pooler's")
            if timeout == "0" {
                logger.warning(
                    "no statement_timeout for the worker's role behind the pooler: a statement may wait without bound; set one (ALTER ROLE articles_app SET statement_timeout = '\(config.statementTimeoutSeconds)s')")
            }
        }
        do {
            try probe.query("SELECT 1 FROM revoked_sessions LIMIT 1")
        } catch {
            throw ConfigError("cannot read the revoked sessions (is the database migrated? articles-fcgi migrate): \(error.message)")
        }
        probe.close()

        let services = try Services(config: config, logger: logger)
        try FastCGIServer.initialiseLibrary()
        let server = FastCGIServer(
            listener: try Listener.open(config.listen), requestTimeout: .seconds(config.requestTimeoutSeconds),
            allowedPeers: config.allowedPeers, logger: logger, onAccept: { services.metrics.fastcgiConnections.increment() })
        let systemd = SystemdNotifier(environment: ProcessInfo.processInfo.environment)
        if let systemd {
            try Self.notifyWhenReady(systemd, keys: services.keys, server: server, threads: config.threads, logger: logger)
        }
        try server.run(
            threads: config.threads,
            reload: {
                systemd?.send("RELOADING=1")
                services.keys.reload(force: true)
                systemd?.send("READY=1")
            },
            stopping: { systemd?.send("STOPPING=1") }
        ) { CGIGateway(services.app(on: $0), on: $0, logRequests: config.logRequests, logger: logger) }
    }

    /// Through a connection pooler (PgBouncer), which cannot carry the change feed's
    /// replication connection and keeps neither named statements nor session settings with one
    /// client: the role's `statement_timeout` there, after checking that the feed connects
    /// directly. `nil` on a direct connection.
    static func pooledStatementTimeout(_ db: Connection, _ config: Config) throws -> String? {
        guard db.isPooled else { return nil }
        guard config.feedURL != nil else {
            throw ConfigError(
                "DATABASE_URL goes through a connection pooler, which cannot carry the change feed: set DATABASE_FEED_URL to a direct connection to PostgreSQL")
        }
        return try db.query("SELECT current_setting('statement_timeout')").first?.decode(String.self, at: 0) ?? ""
    }

    /// Tells systemd `READY=1` once the signing keys are loaded (the database answered at
    /// start and the socket is listening), retrying the keys every second until then; then
    /// sends `WATCHDOG=1` at half the interval systemd asked for, as long as no serving loop has
    /// been busy that long without waiting for events: when one is stuck, the pings stop and
    /// systemd restarts the worker.
    private static func notifyWhenReady(
        _ systemd: SystemdNotifier, keys: KeyStore, server: FastCGIServer, threads: Int, logger: Logger
    ) throws(SystemError) {
        _ = try PosixThread {
            while keys.current == nil {
                sleep(1)
                keys.reload(force: true)
            }
            systemd.send("READY=1\nSTATUS=serving on \(server.listener.description) with \(threads) threads")
            logger.info("told systemd the worker is ready")
            guard let interval = systemd.watchdogInterval else { return }
            let pause = interval / 2
            while true {
                let stuck = server.stuckLoops(after: pause)
                if stuck == 0 {
                    systemd.send("WATCHDOG=1")
                } else {
                    logger.warning("serving loops stuck: busy for half the watchdog interval without waiting for events", metadata: [
                        "loops": "\(stuck)"
                    ])
                }
                let (seconds, attoseconds) = pause.components
                var wait = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
                var left = timespec()
                // After a signal, only what was left of the pause.
                _ = try? systemCall("nanosleep", failure: .nonZero) {
                    defer { wait = left }
                    return nanosleep(&wait, &left)
                }
            }
        }
    }
}
