/// Handles requests on one thread. Each serving thread makes its own, so a responder may hold
/// state that is not thread-safe, such as a database connection.
protocol Responder {
    func respond(to request: Request) -> Response
    /// Called once `response` is written, `duration` after the request's parameters arrived.
    func answered(_ response: Response, after duration: Duration)
}
