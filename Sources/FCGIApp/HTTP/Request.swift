/// An HTTP request as nginx passes it over FastCGI: the CGI parameters, decoded.
struct Request: Sendable {
    /// `REQUEST_METHOD`, e.g. `GET`.
    var method: String
    /// The normalised, percent-decoded path (`DOCUMENT_URI`), without the query.
    var path: String
    /// The raw query string (`QUERY_STRING`), without the `?`.
    var query: String
    /// Header fields by lower-case name (`HTTP_X_FOO` becomes `x-foo`; `CONTENT_TYPE` and
    /// `CONTENT_LENGTH` become `content-type` and `content-length`).
    var headers: [String: String]
    /// The body, at most `Request.maxBodyBytes` long.
    var body: [UInt8]

    /// The largest body the worker reads; nginx's `client_max_body_size` matches it.
    static let maxBodyBytes = 64 * 1024

    init(method: String, path: String, query: String = "", headers: [String: String] = [:], body: [UInt8] = []) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    /// Builds a request from CGI parameters (`NAME=value` pairs).
    init(parameters: [String: String], body: [UInt8]) {
        var headers: [String: String] = [:]
        for (name, value) in parameters {
            if name.hasPrefix("HTTP_") {
                headers[Self.headerName(name.dropFirst(5))] = value
            } else if name == "CONTENT_TYPE" || name == "CONTENT_LENGTH", !value.isEmpty {
                headers[Self.headerName(Substring(name))] = value
            }
        }
        let uri = parameters["REQUEST_URI"] ?? "/"
        self.init(
            method: parameters["REQUEST_METHOD"] ?? "GET",
            path: parameters["DOCUMENT_URI"].flatMap { $0.isEmpty ? nil : $0 }
                ?? String(uri.prefix { $0 != "?" }),
            query: parameters["QUERY_STRING"] ?? "",
            headers: headers,
            body: body)
    }

    func header(_ name: String) -> String? { headers[name] }

    private static func headerName(_ cgiName: Substring) -> String {
        String(cgiName.lowercased().map { $0 == "_" ? "-" : $0 })
    }
}
