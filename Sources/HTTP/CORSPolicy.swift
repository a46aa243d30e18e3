import Support

/// Cross-origin access for the browser frontends listed in `CORS_ALLOWED_ORIGINS`.
///
/// A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) from a listed
/// origin is answered without authentication; other responses to a listed origin carry
/// `Access-Control-Allow-Origin` and expose `ETag`, `Link` and `Location`. Other origins get no
/// CORS headers. While any origin is listed, every response says `Vary: Origin`.
package struct CORSPolicy: Sendable, Equatable {
    package static let allowedHeaders = "Authorization, Content-Type, If-Match, If-None-Match"
    package static let exposedHeaders = "ETag, Link, Location"
    package static let maxAgeSeconds = 600

    package let origins: Set<String>

    package init(origins: Set<String> = []) { self.origins = origins }

    /// Parses `CORS_ALLOWED_ORIGINS`: comma-separated `scheme://host[:port]`, exactly as browsers
    /// send `Origin` (no path, no trailing slash).
    package init(parsing text: String) throws(ConfigError) {
        var origins: Set<String> = []
        for item in text.split(separator: ",") {
            let origin = item.trimmingSpaces
            guard origin.hasPrefix("http://") || origin.hasPrefix("https://"),
                let rest = origin.split(separator: "/", omittingEmptySubsequences: false).dropFirst(2).first,
                !rest.isEmpty, origin.split(separator: "/", omittingEmptySubsequences: false).count == 3,
                !origin.contains(where: { $0 == " " || $0 == "\t" })
            else {
                throw ConfigError("CORS_ALLOWED_ORIGINS: \"\(origin)\" is not an origin such as https://app.example.com or http://localhost:3000")
            }
            origins.insert(origin)
        }
        self.origins = origins
    }

    package var isEnabled: Bool { !origins.isEmpty }

    /// The answer to a preflight request on a route that allows `methods`, or `nil` when the
    /// request is not a preflight.
    package func preflight(_ request: Request, methods: [String]) -> Response? {
        guard request.method == "OPTIONS", let origin = request.header("origin"),
            request.header("access-control-request-method") != nil
        else { return nil }
        var response = Response(status: .noContent, headers: [("Allow", methods.joined(separator: ", "))])
        if origins.contains(origin) {
            response.headers += [
                ("Access-Control-Allow-Origin", origin),
                ("Access-Control-Allow-Methods", methods.joined(separator: ", ")),
                ("Access-Control-Allow-Headers", Self.allowedHeaders),
                ("Access-Control-Max-Age", String(Self.maxAgeSeconds)),
            ]
        }
        return response
    }

    /// `response` with the CORS headers `request`'s origin gets.
    package func decorate(_ response: Response, for request: Request) -> Response {
        guard isEnabled else { return response }
        var decorated = response
        decorated.headers.append(("Vary", "Origin"))
        if let origin = request.header("origin"), origins.contains(origin),
            !response.headers.contains(where: { $0.name == "Access-Control-Allow-Origin" })
        {
            decorated.headers += [("Access-Control-Allow-Origin", origin), ("Access-Control-Expose-Headers", Self.exposedHeaders)]
        }
        return decorated
    }
}
