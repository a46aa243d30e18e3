import FoundationEssentials
import Logging
import PG

/// Answers requests on one serving thread, with that thread's database connection and caches,
/// and the token verifier all threads share.
final class App: Responder {
    let database: Connection
    let verifier: TokenVerifier
    let creator: ArticleCreator
    let cors: CORSPolicy
    /// `PROVISIONING_SECRET`: without it, the provisioning route does not exist.
    let provisioning: ProvisioningSecret?
    /// `AUTO_PROVISION_USERS`.
    let autoProvision: Bool
    let logger: Logger

    // This thread's own caches and views of what all threads share.
    private let recentTokens = TokenCache.Recent()
    private let users: UserCache
    private let articleCache: ArticleCache
    private let revoked: RevokedSessions.View
    private let changes: ChangeFeed
    /// How many of the feed's changes this thread's caches have applied, and the highest id of
    /// the transactions among them.
    private var changesApplied: UInt64 = 0
    private var highestApplied: UInt32?
    /// Whether the current request may use the caches, once a cache was first needed.
    private var cachesCurrent: Bool?
    private let metrics: ThreadMetrics
    /// The connection's session at the last request: a later one means it connected again.
    private var session = 0
    /// The user the current request authenticated as, for its log line.
    private var authenticated: Int64?

    init(
        database: Connection, verifier: TokenVerifier, creator: ArticleCreator, changes: ChangeFeed,
        revoked: RevokedSessions, metrics: Metrics,
        cors: CORSPolicy = CORSPolicy(), provisioning: ProvisioningSecret? = nil, autoProvision: Bool = false,
        logger: Logger
    ) {
        self.database = database
        self.verifier = verifier
        self.creator = creator
        self.cors = cors
        self.provisioning = provisioning
        self.autoProvision = autoProvision
        self.logger = logger
        users = UserCache()
        articleCache = ArticleCache()
        self.changes = changes
        self.revoked = RevokedSessions.View(revoked)
        self.metrics = ThreadMetrics(metrics)
    }

    func respond(to request: Request) -> Response {
        authenticated = nil
        cachesCurrent = nil
        metrics.shared.inFlight.increment()
        defer { metrics.shared.inFlight.decrement() }
        let route = Route(path: request.path)
        var response = cors.decorate(self.route(route, request), for: request)
        response.notes.user = authenticated
        response.notes.route = route?.name
        return response
    }

    func answered(_ response: Response, after duration: Duration) {
        metrics.answered(route: response.notes.route ?? "other", status: response.status.code, after: duration)
        if database.session > session {
            // The first connection is not a reconnect.
            if session > 0 {
                metrics.shared.databaseReconnects.increment(by: Int64(database.session - session))
                logger.info("connected to the database again", metadata: ["session": "\(database.session)"])
            }
            session = database.session
        }
    }

    private func route(_ route: Route?, _ request: Request) -> Response {
        guard let route, route != .provisioning || provisioning != nil else { return HTTPError.notFound.response }
        guard route.allowedMethods.contains(request.method) else {
            return HTTPError.methodNotAllowed(request.method, allow: route.allowedMethods).response
        }
        do {
            if request.method == "OPTIONS" {
                // A preflight needs no token, and touches no data: whether an article exists is
                // for callers with a token to learn. A plain OPTIONS lists the methods.
                return cors.preflight(request, methods: route.allowedMethods)
                    ?? Response(status: .noContent, headers: [("Allow", route.allowedMethods.joined(separator: ", "))])
            }
            func articles(cached: Bool = false) throws -> ArticlesAPI {
                ArticlesAPI(
                    db: database, creator: creator, cache: try cached && usesCaches() ? articleCache : nil, mayKeep: mayKeep,
                    adminGroup: verifier.config.adminGroup)
            }
            switch (route, request.method) {
            case (.health, _):
                return health()
            case (.live, _):
                return .json(Health(status: "ok"))
            case (.provisioning, _):
                return try Provisioning(
                    secret: provisioning!, poolID: verifier.config.poolID, db: database, now: Date().timeIntervalSince1970
                ).handle(request)
            case (.metrics, _):
                return Response(
                    status: .ok, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                    body: metrics.shared.exposition())
            case (.articles, "POST"):
                let claims = try verifier.verify(authorization: request.header("authorization"), recent: recentTokens)
                let (response, ownerID) = try articles().create(request, claims: claims) { try authenticate(request) }
                authenticated = ownerID
                return response
            case (.articles, _):
                _ = try authenticate(request)
                return try articles(cached: true).list(request)
            case (.article(let id), "PUT"), (.article(let id), "PATCH"):
                return try articles().update(id, request, by: authenticate(request), partial: request.method == "PATCH")
            case (.article(let id), "DELETE"):
                return try articles().delete(id, request, by: authenticate(request))
            case (.article(let id), _):
                _ = try authenticate(request)
                return try articles(cached: true).read(id, request)
            }
        } catch let error as AuthError {
            metrics.refused(reason: error.detail)
            var response = error.response
            response.notes.refusal = error.reason
            return response
        } catch let error as HTTPError {
            return error.response
        } catch let error as PGError where error.constraint == "articles_name_length" {
            // The worker's check matches the table's; should they ever differ, the table wins.
            return HTTPError.fields(["name": ["Ensure this field has no more than \(ArticleName.maxLength) characters."]]).response
        } catch let error as PGError where error.sqlState == .queryCanceled || error.sqlState == .lockNotAvailable {
            // statement_timeout or lock_timeout: the statement was stopped, the thread goes on.
            metrics.shared.databaseErrors.increment()
            logger.warning("database statement timed out", metadata: ["error": "\(error)"])
            return .error(.serviceUnavailable, "The database did not answer in time; try again later.")
        } catch let error as PGError where error.isConnectionError {
            metrics.shared.databaseErrors.increment()
            logger.warning("database unavailable", metadata: ["error": "\(error)"])
            return .error(.serviceUnavailable, "The database is unavailable; try again later.")
        } catch {
            if error is PGError { metrics.shared.databaseErrors.increment() }
            logger.error("request failed", metadata: ["error": "\(String(reflecting: error))"])
            return .error(.internalServerError, "A server error occurred.")
        }
    }

    /// The active user the request's token maps to. The database is touched only for a token
    /// that passed every check. Reads may take the user from the cache; writes, which query the
    /// database anyway, read the user too rather than wait for the change feed.
    func authenticate(_ request: Request) throws -> Caller {
        let claims = try verifier.verify(authorization: request.header("authorization"), recent: recentTokens)
        func load() throws -> UserStore.Match? { try UserStore.user(for: claims, in: database, autoProvision: autoProvision) }
        let found: User?
        let sessionRevoked: Bool
        let isRead = request.method == "GET" || request.method == "HEAD"
        if try isRead && usesCaches() {
            sessionRevoked = claims.originJTI.map(revoked.contains) ?? false
            found = sessionRevoked ? nil : try users.user(for: claims.sub) {
                try load().map { ($0.user, mayKeep($0.snapshot)) }
            }
        } else {
            let match = try load()
            (found, sessionRevoked) = (match?.user, match?.sessionRevoked ?? false)
        }
        if sessionRevoked {
            throw AuthError.invalid("Token has been revoked.", "sign-in session revoked (sub \(claims.sub))")
        }
        guard let user = found else {
            throw AuthError.invalid("No user matches this token.", "no user for sub \(claims.sub)")
        }
        guard user.isActive else {
            throw AuthError.invalid("User is inactive.", "user \(user.username) is inactive (sub \(claims.sub))")
        }
        // Revoked up to a moment, in whole seconds: a token of a sign-in in that second is refused
        // too. The sign-in, not the token's iat: a refresh mints new tokens of the same sign-in.
        if let after = user.tokensValidAfter, (claims.signedInAt.map { Int64($0.rounded(.down)) } ?? .min) <= after {
            throw AuthError.invalid("Token has been revoked.", "sign-ins of user \(user.username) up to \(after) revoked")
        }
        authenticated = user.id
        return Caller(user: user, claims: claims)
    }

    /// How long a read waits for the change feed to catch up before it bypasses the caches.
    static let feedWait: Duration = .milliseconds(5)

    /// Whether this request may use the caches: the change feed is up and has applied every
    /// change committed up to the database's WAL flush position, read after the request arrived
    /// (one round trip, shared with the requests that arrived meanwhile), so what the caches
    /// answer reflects every write answered before this request, by any worker. Then the caches
    /// apply the changes the feed logged since they last looked.
    private func usesCaches() throws -> Bool {
        if let cachesCurrent { return cachesCurrent }
        var current = false
        if changes.isUp, let position = try changes.flushed.position(using: database) {
            current = changes.applied.value >= position.value
            if !current {
                current = changes.isCurrent(for: position, waiting: Self.feedWait)
                (current ? metrics.shared.cacheWaits : metrics.shared.cacheBypasses).increment()
            }
        }
        if current && changes.log.total != changesApplied {
            let (logged, total, highest) = changes.log.changes(after: changesApplied)
            if let logged {
                for change in logged {
                    articleCache.apply(change)
                    users.apply(change)
                }
            } else {
                articleCache.removeAll()
                users.removeAll()
            }
            changesApplied = total
            highestApplied = highest
        }
        cachesCurrent = current
        return current
    }

    /// Whether an answer loaded with `snapshot` may be kept in this thread's caches: the snapshot
    /// shows every transaction whose changes the caches applied (`ChangeLog.mayHaveMissed`).
    private func mayKeep(_ snapshot: Snapshot?) -> Bool {
        !changes.log.mayHaveMissed(snapshot, appliedUpTo: highestApplied)
    }

    struct Health: Codable, Equatable, JSONWritable {
        var status: String
        var detail: String?

        func write(to json: inout JSONWriter) {
            json.raw("{")
            if let detail {
                json.key("detail", first: true)
                json.string(detail)
                json.key("status")
            } else {
                json.key("status", first: true)
            }
            json.string(status)
            json.raw("}")
        }
    }

    /// 200 when signing keys are loaded and this thread's database connection answers
    /// (reconnecting if it was dropped), 503 with the reason otherwise.
    func health() -> Response {
        if let summary = verifier.keys.unavailableSummary {
            return .json(Health(status: "unavailable", detail: summary), status: .serviceUnavailable)
        }
        do {
            try database.query("SELECT 1")
            return .json(Health(status: "ok"))
        } catch {
            logger.warning("health check: database unavailable", metadata: ["error": "\(error)"])
            return .json(Health(status: "unavailable", detail: "database unavailable"), status: .serviceUnavailable)
        }
    }
}
