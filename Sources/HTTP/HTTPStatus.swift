/// An HTTP status code and its reason phrase.
package struct HTTPStatus: Hashable, Sendable, CustomStringConvertible {
    package let code: Int
    package let reason: String

    package static let ok = HTTPStatus(code: 200, reason: "OK")
    package static let created = HTTPStatus(code: 201, reason: "Created")
    package static let noContent = HTTPStatus(code: 204, reason: "No Content")
    package static let found = HTTPStatus(code: 302, reason: "Found")
    package static let notModified = HTTPStatus(code: 304, reason: "Not Modified")
    package static let badRequest = HTTPStatus(code: 400, reason: "Bad Request")
    package static let unauthorized = HTTPStatus(code: 401, reason: "Unauthorized")
    package static let forbidden = HTTPStatus(code: 403, reason: "Forbidden")
    package static let notFound = HTTPStatus(code: 404, reason: "Not Found")
    package static let methodNotAllowed = HTTPStatus(code: 405, reason: "Method Not Allowed")
    package static let conflict = HTTPStatus(code: 409, reason: "Conflict")
    package static let preconditionFailed = HTTPStatus(code: 412, reason: "Precondition Failed")
    package static let contentTooLarge = HTTPStatus(code: 413, reason: "Content Too Large")
    package static let unsupportedMediaType = HTTPStatus(code: 415, reason: "Unsupported Media Type")
    package static let tooManyRequests = HTTPStatus(code: 429, reason: "Too Many Requests")
    package static let requestHeaderFieldsTooLarge = HTTPStatus(code: 431, reason: "Request Header Fields Too Large")
    package static let internalServerError = HTTPStatus(code: 500, reason: "Internal Server Error")
    package static let serviceUnavailable = HTTPStatus(code: 503, reason: "Service Unavailable")

    package var description: String { "\(code) \(reason)" }
}
