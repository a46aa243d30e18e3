import Logging
import PG

/// Answers requests on one serving thread, with that thread's database connection.
final class App: Responder {
    let database: Connection
    let logger: Logger

    init(database: Connection, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    func respond(to request: Request) -> Response {
        guard let route = Route(path: request.path) else { return HTTPError.notFound.response }
        let method = request.method == "HEAD" ? "GET" : request.method
        guard route.allowedMethods.contains(request.method) else {
            return HTTPError.methodNotAllowed(request.method, allow: route.allowedMethods).response
        }
        switch (method, route) {
        case ("GET", .health):
            return health()
        default:
            return HTTPError.methodNotAllowed(request.method, allow: route.allowedMethods).response
        }
    }

    struct Health: Codable, Equatable {
        var status: String
        var detail: String?
    }

    /// 200 when this thread's database connection answers (reconnecting if it was dropped),
    /// 503 otherwise.
    func health() -> Response {
        do {
            try database.query("SELECT 1")
            return .json(Health(status: "ok"))
        } catch {
            logger.warning("health check: database unavailable", metadata: ["error": "\(error)"])
            return .json(Health(status: "unavailable", detail: "database unavailable"), status: .serviceUnavailable)
        }
    }
}
