/// An HTTP status code and its reason phrase.
struct HTTPStatus: Hashable, Sendable, CustomStringConvertible {
    let code: Int
    let reason: String

    static let ok = HTTPStatus(code: 200, reason: "OK")
    static let created = HTTPStatus(code: 201, reason: "Created")
    static let noContent = HTTPStatus(code: 204, reason: "No Content")
    static let found = HTTPStatus(code: 302, reason: "Found")
    static let notModified = HTTPStatus(code: 304, reason: "Not Modified")
    static let badRequest = HTTPStatus(code: 400, reason: "Bad Request")
    static let unauthorized = HTTPStatus(code: 401, reason: "Unauthorized")
    static let forbidden = HTTPStatus(code: 403, reason: "Forbidden")
    static let notFound = HTTPStatus(code: 404, reason: "Not Found")
    static let methodNotAllowed = HTTPStatus(code: 405, reason: "Method Not Allowed")
    static let conflict = HTTPStatus(code: 409, reason: "Conflict")
    static let preconditionFailed = HTTPStatus(code: 412, reason: "Precondition Failed")
    static let contentTooLarge = HTTPStatus(code: 413, reason: "Content Too Large")
    static let unsupportedMediaType = HTTPStatus(code: 415, reason: "Unsupported Media Type")
    static let tooManyRequests = HTTPStatus(code: 429, reason: "Too Many Requests")
    static let requestHeaderFieldsTooLarge = HTTPStatus(code: 431, reason: "Request Header Fields Too Large")
    static let internalServerError = HTTPStatus(code: 500, reason: "Internal Server Error")
    static let serviceUnavailable = HTTPStatus(code: 503, reason: "Service Unavailable")

    var description: String { "\(code) \(reason)" }
}
