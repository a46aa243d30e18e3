/// What the worker learnt of a request while answering it, for its log line and metrics; never
/// sent. It flows through the handlers with the request.
struct RequestContext: Sendable {
    /// The route's name (`Route.name`); nil for a path no route has.
    var route: String?
    /// The id of the user the token mapped to.
    var user: Int64?
    /// Why the request was refused (401/503 from authentication), in words for the log.
    var refusal: String?
}

/// A response, and its request's context.
struct Answer: Sendable {
    var response: Response
    var context = RequestContext()
}

/// Answers requests on one serving loop. Each loop makes its own, so a responder may hold
/// state that is not thread-safe, such as database connections; the requests of its loop
/// interleave wherever one waits (`await`).
protocol Responder {
    func respond(to request: Request) async -> Answer
}
