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
    /// `http` or `https`, as nginx received the request (`REQUEST_SCHEME`).
    var scheme = "http"
    /// The port nginx received the request on (`SERVER_PORT`).
    var port: Int?

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
        if parameters["REQUEST_SCHEME"] == "https" || parameters["HTTPS"] == "on" { scheme = "https" }
        port = parameters["SERVER_PORT"].flatMap { Int($0) }
    }

    /// The query parameters, percent-decoded (`+` is a space), in order.
    var queryItems: [(name: String, value: String)] {
        query.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (Self.percentDecoded(parts[0]), parts.count > 1 ? Self.percentDecoded(parts[1]) : "")
        }
    }

    private static func percentDecoded(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"): bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                let high = iterator.next(), low = iterator.next()
                if let high, let low, let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) {
                    bytes.append(value)
                } else {
                    bytes.append(byte)
                    if let high { bytes.append(high) }
                    if let low { bytes.append(low) }
                }
            default: bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    func header(_ name: String) -> String? { headers[name] }

    private static func headerName(_ cgiName: Substring) -> String {
        String(cgiName.lowercased().map { $0 == "_" ? "-" : $0 })
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs (header and list items).
    var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
