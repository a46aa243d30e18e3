import Auth
import FoundationEssentials
import HTTP
import JSON
import Logging
import Observability
import PG
import Stores
import Support

/// Answers the requests of one serving loop: routes each to its handler and turns what goes
/// wrong into a JSON answer, with the loop's database connections, authenticator, caches and
/// shared create statement. The loop's requests interleave where one waits (`await`).
final class App: Responder {
    let database: LoopDatabase
    let authenticator: Authenticator
    /// What every loop of the worker shares: its configuration, keys, feed and metrics.
    let services: Services
    private let caches: LoopCaches
    private let creator: ArticleCreator
    /// This loop's copy of the groups' roles.
    private let groupRoles: FeedState<[Authorization.Group: Authorization.Role]>.View
    let metrics: LoopMetrics
    /// The reconnects of the loop's connections counted so far.
    private var reconnects = 0

    private var authorization: Authorization { services.config.cognito.authorization }
    private var cors: CORSPolicy { services.config.cors }
    /// `PROVISIONING_SECRET`: without it, the provisioning route does not exist.
    private var provisioning: ProvisioningSecret? { services.config.provisioning }
    var logger: Logger { services.logger }

    /// A responder on `loop`, with its own connections made by `connect`.
    init(loop: EventLoop, services: Services, connect: @escaping (EventLoop) -> Connection) {
        database = LoopDatabase(loop: loop, metrics: services.metrics, logger: services.logger, make: connect)
        self.services = services
        authenticator = Authenticator(
            verifier: services.verifier, revoked: services.revoked, autoProvision: services.config.autoProvisionUsers)
        caches = LoopCaches(changes: services.changes, metrics: services.metrics, loop: loop)
        creator = ArticleCreator(metrics: services.metrics)
        groupRoles = .init(services.groupRoles)
        metrics = LoopMetrics(services.metrics)
    }

    func respond(to request: Request) async -> Answer {
        let started = monotonicNanoseconds()
        noteReconnects()
        metrics.shared.inFlight.increment()
        defer { metrics.shared.inFlight.decrement() }
        let route = Route(path: request.path)
        var context = RequestContext(route: route?.name)
        // The request's waits for a database connection end within its budget.
        let scope = RequestScope(deadline: started + services.config.connectionWaitNanoseconds)
        var response = await LoopDatabase.$scope.withValue(scope) { cors.decorate(await self.route(route, request, &context), for: request) }
        // Every answer is what its Content-Type says; the articles' answers are one principal's
        // data, which no shared cache or browser store may keep.
        response.headers.append(("X-Content-Type-Options", "nosniff"))
        if route == .articles || route.map({ if case .article = $0 { true } else { false } }) == true {
            response.headers.append(("Cache-Control", "no-store"))
        }
        metrics.answered(route: context.route ?? "other", status: response.status.code, after: elapsed(since: started))
        return Answer(response: response, context: context)
    }

    /// Counts and logs the times this loop's connections were made again since the last request
    /// (a connection's first session is not a reconnect).
    private func noteReconnects() {
        let total = database.made.reduce(0) { $0 + max(0, $1.session - 1) }
        defer { reconnects = total }
        guard total > reconnects else { return }
        metrics.shared.databaseReconnects.increment(by: Int64(total - reconnects))
        logger.info("connected to the database again", metadata: ["reconnects": "\(total)"])
    }

    private func route(_ route: Route?, _ request: Request, _ context: inout RequestContext) async -> Response {
        do {
            guard let route, route != .provisioning || provisioning != nil else { throw HTTPError.notFound }
            guard route.allowedMethods.contains(request.method) else {
                throw HTTPError.methodNotAllowed(request.method, allow: route.allowedMethods)
            }
            if request.method == "OPTIONS" {
                // A preflight needs no token, and touches no data: whether an article exists is
                // for callers with a token to learn. A plain OPTIONS lists the methods.
                return cors.preflight(request, methods: route.allowedMethods)
                    ?? Response(status: .noContent, headers: [("Allow", route.allowedMethods.joined(separator: ", "))])
            }
            func articles(cached: LoopCaches? = nil, roles: [Authorization.Group: Authorization.Role] = [:]) -> ArticlesAPI {
                ArticlesAPI(
                    db: database, creator: creator, cache: cached?.articles, mayKeep: caches.mayKeep, authorization: authorization,
                    roles: roles)
            }
            switch (route, request.method) {
            case (.health, _):
                return await health()
            case (.live, _):
                return .json(Health(status: "ok"))
            case (.appConfig, _):
                var response = Response.json(AppConfig(services.config))
                // A changed environment shows at the page's next load.
                response.headers.append(("Cache-Control", "no-cache"))
                return response
            case (.provisioning, _):
                return try await Provisioning(
                    secret: provisioning!, pools: services.pools, db: database, now: wallSeconds()
                ).handle(request)
            case (.metrics, _):
                await readSlots()
                return Response(
                    status: .ok, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                    body: metrics.shared.exposition())
            case (.articles, "POST"):
                let (claims, _) = try await claims(for: .write, request)
                let (response, ownerID) = try await articles().create(request, claims: claims) {
                    try await authenticate(claims, caches: nil, &context)
                }
                context.user = ownerID
                return response
            case (.articles, _):
                return try await articles(cached: read(request, &context)).list(request)
            case (.article(let id), "PUT"), (.article(let id), "PATCH"):
                let (caller, roles) = try await change(request, &context)
                return try await articles(roles: roles).update(id, request, by: caller, partial: request.method == "PATCH")
            case (.article(let id), "DELETE"):
                let (caller, roles) = try await change(request, &context)
                return try await articles(roles: roles).delete(id, request, by: caller)
            case (.article(let id), _):
                return try await articles(cached: read(request, &context)).read(id, request)
            }
        } catch {
            return response(for: error, &context)
        }
    }

    /// The one place where what went wrong becomes an answer: the client's mistakes as they
    /// were found, the database's troubles as a 503 when trying again may help, anything else
    /// as a 500 that tells the client nothing (and the log everything).
    private func response(for error: any Error, _ context: inout RequestContext) -> Response {
        let answer: HTTPError
        switch error {
        case let error as HTTPError:
            answer = error
        case let error as AuthError:
            metrics.refused(reason: error.detail)
            context.refusal = error.reason
            answer = error.httpError
        case let error as PGError where error.kind == .client && error.sqlState == .tooManyConnections:
            // No connection of the loop was free within the request's bound: nothing was sent.
            metrics.shared.databaseErrors.increment()
            logger.warning("no database connection free in time", metadata: ["error": "\(error)"])
            answer = HTTPError(status: .serviceUnavailable, detail: "The database is busy; try again later.")
        case let error as PGError where error.sqlState == .queryCanceled || error.sqlState == .lockNotAvailable:
            // statement_timeout or lock_timeout: the statement was stopped, the loop goes on.
            metrics.shared.databaseErrors.increment()
            logger.warning("database statement timed out", metadata: ["error": "\(error)"])
            answer = HTTPError(status: .serviceUnavailable, detail: "The database did not answer in time; try again later.")
        case let error as PGError where error.isConnectionError:
            metrics.shared.databaseErrors.increment()
            logger.warning("database unavailable", metadata: ["error": "\(error)"])
            answer = HTTPError(status: .serviceUnavailable, detail: "The database is unavailable; try again later.")
        default:
            if error is PGError { metrics.shared.databaseErrors.increment() }
            logger.error("request failed", metadata: ["error": "\(String(reflecting: error))"])
            answer = HTTPError(status: .internalServerError, detail: "A server error occurred.")
        }
        return answer.response
    }

    /// The caller of a change (PUT, PATCH, DELETE), through the authenticator, looked up in the
    /// database (writes query it anyway rather than wait for the change feed), noted in the
    /// request's context; and its groups' roles.
    private func change(_ request: Request, _ context: inout RequestContext) async throws -> (Caller, [Authorization.Group: Authorization.Role]) {
        let (claims, roles) = try await claims(for: .write, request)
        return (try await authenticate(claims, caches: nil, &context), roles)
    }

    /// The request's verified claims, once the principal's role and the token's scopes allow
    /// `action` (403) and the principal is within its rate limit for that kind (429); and, for
    /// a write, its groups' roles. Decided from the claims and the workers' copy of the roles,
    /// so a refusal costs no database round trip (but while the change feed is down, when a
    /// write reads its groups' roles from the table).
    private func claims(for action: Authorization.Action, _ request: Request) async throws -> (Claims, [Authorization.Group: Authorization.Role]) {
        let claims = try await authenticator.claims(request)
        LoopDatabase.scope?.principal = claims.principal
        // Roles decide only writes.
        let roles = action == .read || claims.groups.isEmpty
            ? [:] : services.changes.isUp ? groupRoles.value : try await services.groupRoles.load(claims, in: database)
        try authorization.require(action, claims, roles: roles)
        let (limit, throttled) = action == .read
            ? (services.readLimit, metrics.shared.throttledReads) : (services.writeLimit, metrics.shared.throttledWrites)
        if let wait = limit?.take(claims.principal) {
            throttled.increment()
            throw HTTPError(
                status: .tooManyRequests, detail: "Request was throttled. Expected available in \(wait) seconds.",
                headers: [("Retry-After", String(wait))])
        }
        return (claims, roles)
    }

    /// A read (GET or HEAD of the articles): its caller, and the caches it may use. The one
    /// place where a request's use of the caches is decided: once its token is verified (a
    /// refused token costs no round trip), when the change feed has applied everything up to
    /// the end of the WAL read after the request arrived (`LoopCaches.areCurrent`). Writes
    /// never use them.
    private func read(_ request: Request, _ context: inout RequestContext) async throws -> LoopCaches? {
        let (claims, _) = try await claims(for: .read, request)
        let cached = try await caches.areCurrent(using: database) ? caches : nil
        _ = try await authenticate(claims, caches: cached, &context)
        return cached
    }

    private func authenticate(_ claims: Claims, caches: LoopCaches?, _ context: inout RequestContext) async throws -> Caller {
        let caller = try await authenticator.caller(claims, db: database, caches: caches)
        context.user = caller.user.id
        return caller
    }
}
