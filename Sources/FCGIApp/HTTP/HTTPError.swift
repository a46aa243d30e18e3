/// An error that becomes an HTTP response: `{"detail": "<detail>"}` with `status`, or, for
/// validation errors, `{"<field>": ["<message>", ...]}` as Django REST framework writes them.
struct HTTPError: Error, Sendable {
    var status: HTTPStatus
    var detail: String
    var headers: [(name: String, value: String)] = []
    var fieldErrors: [String: [String]]? = nil

    static func fields(_ errors: [String: [String]]) -> HTTPError {
        HTTPError(status: .badRequest, detail: "Invalid input.", fieldErrors: errors)
    }

    static let notFound = HTTPError(status: .notFound, detail: "Not found.")

    static func methodNotAllowed(_ method: String, allow: [String]) -> HTTPError {
        HTTPError(
            status: .methodNotAllowed, detail: "Method \"\(method)\" not allowed.",
            headers: [("Allow", allow.joined(separator: ", "))])
    }

    var response: Response {
        if let fieldErrors { return .json(fieldErrors, status: status) }
        return .error(status, detail, headers: headers)
    }
}
