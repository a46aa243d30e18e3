import Support

/// An HTTP request as nginx passes it over FastCGI: the CGI parameters, decoded.
package struct Request: Sendable {
    /// `REQUEST_METHOD`, e.g. `GET`.
    package var method: String
    /// The normalised, percent-decoded path (`DOCUMENT_URI`), without the query.
    package var path: String
    /// The raw query string (`QUERY_STRING`), without the `?`.
    package var query: String
    /// Header fields by lower-case name (`HTTP_X_FOO` becomes `x-foo`; `CONTENT_TYPE` and
    /// `CONTENT_LENGTH` become `content-type` and `content-length`).
    package var headers: [String: String]
    /// The body, at most `Request.maxBodyBytes` long.
    package var body: [UInt8]

    /// The largest body the worker reads; nginx's `client_max_body_size` matches it.
    package static let maxBodyBytes = 64 * 1024

    package init(method: String, path: String, query: String = "", headers: [String: String] = [:], body: [UInt8] = []) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    /// Builds a request from its CGI parameters, given one name-value pair at a time, turning
    /// into Swift strings only the parameters a request needs (nginx passes some thirty) and
    /// comparing names as bytes.
    package struct Builder {
        package var method = "GET", documentURI = "", requestURI = "/", query = ""
        package var headers: [String: String] = [:]

        package init() {}

        package mutating func add(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
            let text = { String(decoding: value, as: UTF8.self) }
            if name.starts(with: "HTTP_".utf8) {
                headers[Request.headerName(UnsafeRawBufferPointer(rebasing: name.dropFirst(5)))] = text()
                return
            }
            switch name.count {
            case 11 where name.elementsEqual("REQUEST_URI".utf8): requestURI = text()
            case 12 where name.elementsEqual("DOCUMENT_URI".utf8): documentURI = text()
            case 12 where name.elementsEqual("QUERY_STRING".utf8): query = text()
            case 12 where name.elementsEqual("CONTENT_TYPE".utf8),
                14 where name.elementsEqual("CONTENT_LENGTH".utf8):
                if !value.isEmpty { headers[Request.headerName(name)] = text() }
            case 14 where name.elementsEqual("REQUEST_METHOD".utf8): method = text()
            default: break
            }
        }

        package var request: Request {
            Request(
                method: method,
                path: documentURI.isEmpty ? String(requestURI.prefix { $0 != "?" }) : documentURI,
                query: query, headers: headers)
        }
    }

    /// The query parameters, percent-decoded (`+` is a space), in order.
    package var queryItems: [(name: String, value: String)] { Self.formItems(query) }

    /// `application/x-www-form-urlencoded` text (a query, or a form's body) as its pairs.
    package static func formItems(_ text: String) -> [(name: String, value: String)] {
        text.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (Self.percentDecoded(parts[0]), parts.count > 1 ? Self.percentDecoded(parts[1]) : "")
        }
    }

    /// As Python's `unquote_plus` (Django's query parsing): `+` is a space, `%XY` with two hex
    /// digits a byte, and a `%` without them stays as it is, the text after it decoded as usual.
    private static func percentDecoded(_ text: Substring) -> String {
        let input = Array(text.utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(input.count)
        var index = 0
        while index < input.count {
            let byte = input[index]
            index += 1
            if byte == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%"), index + 1 < input.count,
                let high = Hex.value(of: input[index]), let low = Hex.value(of: input[index + 1])
            {
                bytes.append(high << 4 | low)
                index += 2
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    package func header(_ name: String) -> String? { headers[name] }

    /// `X_REQUEST_ID` becomes `x-request-id`.
    private static func headerName(_ cgiName: UnsafeRawBufferPointer) -> String {
        String(unsafeUninitializedCapacity: cgiName.count) { buffer in
            for (index, byte) in cgiName.enumerated() {
                buffer[index] = switch byte {
                case UInt8(ascii: "_"): UInt8(ascii: "-")
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): byte | 0x20
                default: byte
                }
            }
            return cgiName.count
        }
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs (header and list items).
    package var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
