import Auth
import Logging
import Observability
import PG
import Stores
import Support

/// What the serving loops of one worker share, made from its configuration: the signing keys,
/// the token verifier, the revoked sessions, the change feed and the metrics. Each loop asks
/// it for an `App` of its own.
final class Services: Sendable {
    let config: Config
    let metrics = Metrics()
    let keys: KeyStore
    let verifier: TokenVerifier
    let changes: ChangeFeed
    let revoked = RevokedSessions()
    let groupRoles: GroupRoles
    let pools: TrustedPools
    /// `RATE_LIMIT_READS_PER_MINUTE`, `RATE_LIMIT_WRITES_PER_MINUTE`: nil when off.
    let readLimit: RateLimit?
    let writeLimit: RateLimit?
    let logger: Logger

    /// Loads the keys once (requests get 503 until they load; a request with an unknown kid
    /// retries) and starts following the database's changes.
    init(config: Config, logger: Logger) throws(SystemError) {
        self.config = config
        self.logger = logger
        keys = KeyStore(source: config.cognito.keySource, logger: logger, metrics: metrics)
        keys.reload(force: true)
        pools = TrustedPools(own: config.cognito, logger: logger, metrics: metrics)
        groupRoles = GroupRoles(ownPoolID: config.cognito.poolID)
        verifier = TokenVerifier(config: config.cognito, keys: keys, pools: pools, metrics: metrics)
        readLimit = config.readsPerMinute > 0 ? RateLimit(perMinute: config.readsPerMinute) : nil
        writeLimit = config.writesPerMinute > 0 ? RateLimit(perMinute: config.writesPerMinute) : nil
        changes = ChangeFeed(
            handlers: FeedHandlers(
                loadSessions: revoked.replace, applySessions: revoked.apply, loadRoles: groupRoles.replace, applyRoles: groupRoles.apply,
                loadPools: pools.replace, applyPools: pools.apply),
            metrics: metrics)
        try changes.start(conninfo: config.feedDatabaseURL, logger: logger)
    }

    /// A responder for `loop`, with database connections of its own (made as its requests
    /// need them).
    func app(on loop: EventLoop) -> App {
        App(loop: loop, services: self) { [config] loop in
            Connection(
                lazy: config.databaseURL, applicationName: "articles-fcgi loop \(loop.index)", settings: config.sessionSettings,
                waiter: loop)
        }
    }
}
