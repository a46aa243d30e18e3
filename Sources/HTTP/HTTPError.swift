/// An error that becomes an HTTP response: `{"detail": "<detail>"}` with `status`, or, for
/// validation errors, `{"<field>": ["<message>", ...]}` as Django REST framework writes them.
package struct HTTPError: Error, Sendable {
    package var status: HTTPStatus
    package var detail: String
    package var headers: [(name: String, value: String)] = []
    package var fieldErrors: [String: [String]]? = nil

    package init(
        status: HTTPStatus, detail: String, headers: [(name: String, value: String)] = [], fieldErrors: [String: [String]]? = nil
    ) {
        self.status = status
        self.detail = detail
        self.headers = headers
        self.fieldErrors = fieldErrors
    }

    package static func fields(_ errors: [String: [String]]) -> HTTPError {
        HTTPError(status: .badRequest, detail: "Invalid input.", fieldErrors: errors)
    }

    package static let notFound = HTTPError(status: .notFound, detail: "Not found.")

    package static func methodNotAllowed(_ method: String, allow: [String]) -> HTTPError {
        HTTPError(
            status: .methodNotAllowed, detail: "Method \"\(method)\" not allowed.",
            headers: [("Allow", allow.joined(separator: ", "))])
    }

    package var response: Response {
        if let fieldErrors { return .json(fieldErrors, status: status) }
        return .error(status, detail, headers: headers)
    }
}
