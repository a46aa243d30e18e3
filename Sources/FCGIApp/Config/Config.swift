import Auth
import FastCGI
import FoundationEssentials
import Glibc
import HTTP
import Logging
import Support

/// The worker's configuration, read from its environment (the variables in docs/configuration.md).
struct Config: Sendable, Equatable {
    /// `DATABASE_URL`: a libpq connection string or URI; `nil` for libpq's own defaults.
    var databaseURL: String?
    /// `DATABASE_FEED_URL`: the change feed's own direct connection (logical replication does
    /// not pass through PgBouncer); `nil` for `DATABASE_URL`.
    var feedURL: String?
    /// `FCGI_LISTEN`; `nil` to use the socket inherited from systemd or on fd 0.
    var listen: ListenAddress?
    /// `FCGI_THREADS`: serving threads, each running one serving loop (`EventLoop`) with its
    /// own database connections (`LoopDatabase`).
    var threads: Int
    /// `LOG_LEVEL`.
    var logLevel: Logger.Level
    /// `LOG_REQUESTS`: a line per request at `info` (nginx's access log has them too; the
    /// systemd unit turns them off so the journal's rate limit never drops the worker's events).
    var logRequests = true
    /// The Cognito user pool and the tokens it accepts.
    var cognito: CognitoConfig
    /// `COGNITO_DOMAIN` and `COGNITO_SCOPES`, for the sign-in page.
    var signIn = SignInConfig()
    /// `CORS_ALLOWED_ORIGINS`.
    var cors = CORSPolicy()
    /// `PROVISIONING_SECRET` or `PROVISIONING_SECRET_FILE`; without it there is no
    /// provisioning endpoint.
    var provisioning: ProvisioningSecret?
    /// `AUTO_PROVISION_USERS`: create a user on the first use of a valid ID token with a
    /// verified email that matches no row.
    var autoProvisionUsers = false
    /// `FCGI_REQUEST_TIMEOUT_SECONDS`: how long a FastCGI client has to send a whole request
    /// (and to take its response) before the connection is closed.
    var requestTimeoutSeconds = defaultRequestTimeoutSeconds
    /// `DATABASE_STATEMENT_TIMEOUT_SECONDS` and `DATABASE_LOCK_TIMEOUT_SECONDS`: the longest a
    /// worker's statement runs, and waits for a lock, before the request is answered 503. A
    /// statement's bound is never shorter than the lock bound (PostgreSQL's statement_timeout
    /// would end a longer lock wait first): `sessionStatementTimeoutSeconds`.
    var statementTimeoutSeconds = defaultStatementTimeoutSeconds
    var lockTimeoutSeconds = defaultLockTimeoutSeconds
    /// `RATE_LIMIT_READS_PER_MINUTE` and `RATE_LIMIT_WRITES_PER_MINUTE`: per principal and
    /// worker; 0, no limit.
    var readsPerMinute = 0
    var writesPerMinute = 0
    /// `FCGI_WEB_SERVER_ADDRS`, as libfcgi reads it: the IPv4 addresses (network byte order)
    /// TCP clients may connect from; empty, any.
    var allowedPeers: Set<UInt32> = []

    /// One serving loop per core the worker may run on.
    static var defaultThreads: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
    static let threadRange = 1...512
    static let timeoutRange = 1...300
    static let rateLimitRange = 0...100_000_000
    static let defaultRequestTimeoutSeconds = 5
    static let defaultStatementTimeoutSeconds = 5
    static let defaultLockTimeoutSeconds = 2

    static func fromEnvironment(_ environment: [String: String]) throws(ConfigError) -> Config {
        func value(_ name: String) -> String? {
            guard let text = environment[name], !text.isEmpty else { return nil }
            return text
        }
        var threads = defaultThreads
        if let text = value("FCGI_THREADS") {
            guard let number = Int(text), threadRange.contains(number) else {
                throw ConfigError(
                    "FCGI_THREADS must be a whole number from \(threadRange.lowerBound) to \(threadRange.upperBound), got \"\(text)\"")
            }
            threads = number
        }
        func seconds(_ name: String, default fallback: Int) throws(ConfigError) -> Int {
            guard let text = value(name) else { return fallback }
            guard let number = Int(text), timeoutRange.contains(number) else {
                throw ConfigError(
                    "\(name) must be a whole number of seconds from \(timeoutRange.lowerBound) to \(timeoutRange.upperBound), got \"\(text)\"")
            }
            return number
        }
        func perMinute(_ name: String) throws(ConfigError) -> Int {
            guard let text = value(name) else { return 0 }
            guard let number = Int(text), rateLimitRange.contains(number) else {
                throw ConfigError(
                    "\(name) must be a whole number of requests from \(rateLimitRange.lowerBound) (no limit) to \(rateLimitRange.upperBound), got \"\(text)\"")
            }
            return number
        }
        func boolean(_ name: String, default fallback: Bool) throws(ConfigError) -> Bool {
            switch value(name) {
            case nil: return fallback
            case "true": return true
            case "false": return false
            case let text?: throw ConfigError("\(name) must be true or false, got \"\(text)\"")
            }
        }
        var level = Logger.Level.info
        if let text = value("LOG_LEVEL") {
            let levels: [String: Logger.Level] = [
                "debug": .debug, "info": .info, "warning": .warning, "error": .error,
            ]
            guard let parsed = levels[text.lowercased()] else {
                throw ConfigError("LOG_LEVEL must be debug, info, warning or error, got \"\(text)\"")
            }
            level = parsed
        }
        return Config(
            databaseURL: try databaseURL(environment),
            feedURL: try databaseURL(environment, "DATABASE_FEED_URL"),
            listen: try value("FCGI_LISTEN").map { text throws(ConfigError) in try ListenAddress(parsing: text) },
            threads: threads,
            logLevel: level,
            logRequests: try boolean("LOG_REQUESTS", default: true),
            cognito: try CognitoConfig.fromEnvironment(value),
            signIn: try SignInConfig.fromEnvironment(value),
            cors: try value("CORS_ALLOWED_ORIGINS").map { text throws(ConfigError) in try CORSPolicy(parsing: text) } ?? CORSPolicy(),
            provisioning: try ProvisioningSecret.fromEnvironment(value),
            autoProvisionUsers: try boolean("AUTO_PROVISION_USERS", default: false),
            requestTimeoutSeconds: try seconds("FCGI_REQUEST_TIMEOUT_SECONDS", default: defaultRequestTimeoutSeconds),
            statementTimeoutSeconds: try seconds("DATABASE_STATEMENT_TIMEOUT_SECONDS", default: defaultStatementTimeoutSeconds),
            lockTimeoutSeconds: try seconds("DATABASE_LOCK_TIMEOUT_SECONDS", default: defaultLockTimeoutSeconds),
            readsPerMinute: try perMinute("RATE_LIMIT_READS_PER_MINUTE"),
            writesPerMinute: try perMinute("RATE_LIMIT_WRITES_PER_MINUTE"),
            allowedPeers: try allowedPeers(value("FCGI_WEB_SERVER_ADDRS")))
    }

    /// `FCGI_WEB_SERVER_ADDRS`: comma-separated IPv4 addresses.
    private static func allowedPeers(_ text: String?) throws(ConfigError) -> Set<UInt32> {
        var peers = Set<UInt32>()
        for item in (text ?? "").split(separator: ",").map(\.trimmingSpaces) where !item.isEmpty {
            var address = in_addr()
            guard inet_pton(AF_INET, item, &address) == 1 else {
                throw ConfigError("FCGI_WEB_SERVER_ADDRS must be comma-separated IPv4 addresses, got \"\(item)\"")
            }
            peers.insert(address.s_addr)
        }
        return peers
    }

    /// `allowedPeers` as the addresses they are, in order.
    var allowedPeersSummary: String {
        guard !allowedPeers.isEmpty else { return "(unset: any address may connect over TCP)" }
        return allowedPeers.sorted { UInt32(bigEndian: $0) < UInt32(bigEndian: $1) }.map { peer in
            var address = in_addr(s_addr: peer)
            var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            inet_ntop(AF_INET, &address, &text, socklen_t(text.count))
            return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }.joined(separator: ",")
    }

    /// `DATABASE_URL` (all that `migrate` needs), or another variable holding a libpq URI.
    static func databaseURL(_ environment: [String: String], _ name: String = "DATABASE_URL") throws(ConfigError) -> String? {
        guard let url = environment[name], !url.isEmpty else { return nil }
        guard !url.utf8.contains(0) else { throw ConfigError("\(name) contains a NUL byte") }
        return url
    }

    /// Where the change feed connects.
    var feedDatabaseURL: String? { feedURL ?? databaseURL }
}
