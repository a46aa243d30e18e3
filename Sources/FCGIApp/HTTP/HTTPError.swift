/// An error that becomes an HTTP response: `{"detail": "<detail>"}` with `status`.
struct HTTPError: Error, Sendable {
    var status: HTTPStatus
    var detail: String
    var headers: [(name: String, value: String)] = []

    static let notFound = HTTPError(status: .notFound, detail: "Not found.")

    static func methodNotAllowed(_ method: String, allow: [String]) -> HTTPError {
        HTTPError(
            status: .methodNotAllowed, detail: "Method \"\(method)\" not allowed.",
            headers: [("Allow", allow.joined(separator: ", "))])
    }

    var response: Response { .error(status, detail, headers: headers) }
}
