import JSON

/// An HTTP response, written to nginx in CGI form (`Status:` line, headers, blank line, body).
package struct Response: Sendable {
    package var status: HTTPStatus
    package var headers: [(name: String, value: String)]
    package var body: [UInt8]

    package init(status: HTTPStatus, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON response with `value` written as the body.
    package static func json(_ value: some JSONWritable, status: HTTPStatus = .ok) -> Response {
        Response(status: status, headers: [("Content-Type", "application/json")], body: JSONWriter.bytes(of: value))
    }

    /// `{"detail": "<message>"}` with `status`, the shape of every error this service returns.
    package static func error(_ status: HTTPStatus, _ detail: String, headers: [(name: String, value: String)] = []) -> Response {
        var response = json(ErrorBody(detail: detail), status: status)
        response.headers += headers
        return response
    }

    /// The bytes of the response in CGI form. A `HEAD` response keeps its headers and drops the
    /// body.
    package func cgiBytes(includeBody: Bool = true) -> [UInt8] {
        var head = "Status: \(status.code) \(status.reason)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if status != .noContent && status != .notModified { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        var bytes = Array(head.utf8)
        if includeBody { bytes += body }
        return bytes
    }
}

package struct ErrorBody: Codable, Equatable, JSONWritable {
    package let detail: String

    package func write(to json: inout JSONWriter) {
        json.beginObject()
        json.member("detail", detail)
        json.endObject()
    }
}
