/// What the worker learnt of a request while answering it, for its log line and metrics; never
/// sent. It flows through the handlers with the request.
package struct RequestContext: Sendable {
    /// The route's name (`Route.name`); nil for a path no route has.
    package var route: String?
    /// The id of the user the token mapped to.
    package var user: Int64?
    /// Why the request was refused (401/503 from authentication), in words for the log.
    package var refusal: String?

    package init(route: String? = nil, user: Int64? = nil, refusal: String? = nil) {
        self.route = route
        self.user = user
        self.refusal = refusal
    }
}

/// A response, and its request's context.
package struct Answer: Sendable {
    package var response: Response
    package var context: RequestContext

    package init(response: Response, context: RequestContext = RequestContext()) {
        self.response = response
        self.context = context
    }
}

/// Answers requests on one serving loop. Each loop makes its own, so a responder may hold
/// state that is not thread-safe, such as database connections; the requests of its loop
/// interleave wherever one waits (`await`).
package protocol Responder {
    func respond(to request: Request) async -> Answer
}
