import Auth
import Foundation
import HTTP
import Support

/// The stand-in's pages and redirects, and the OAuth 2.0 value checks it makes.
extension ManagedLoginStandIn {
    /// `uri` (one of the page's URLs, without a fragment) with `parameters` added to its query
    /// (nil values left out).
    package func redirect(_ uri: String, _ parameters: KeyValuePairs<String, String?>) -> Response {
        let query = parameters.compactMap { name, value in value.map { "\(name)=\(Self.percentEncoded($0))" } }
        let location = uri + (uri.contains("?") ? "&" : "?") + query.joined(separator: "&")
        return Response(status: .found, headers: [("Location", location), ("Cache-Control", "no-store")])
    }

    /// Every byte but RFC 3986's unreserved characters as `%XY`.
    package static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            if byte.isUnreserved {
                out.append(Character(Unicode.Scalar(byte)))
            } else {
                out += "%" + Hex.encode([byte]).uppercased()
            }
        }
        return out
    }

    package func page(status: HTTPStatus, error: String) -> Response {
        page(status: status, body: "<h1>Sign-in error</h1>\n<p class=\"error\" role=\"alert\">\(Self.escaped(error))</p>\n")
    }

    /// The pages' policy: the form posts here, and its answer sends the browser on to the page
    /// (which a browser checks against `form-action` too).
    package static func policy(pageURLs: [String]) -> String {
        let origins = pageURLs.compactMap(origin(of:)).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        return "default-src 'none'; style-src 'self'; img-src data:; form-action 'self' \(origins.joined(separator: " ")); frame-ancestors 'none'; base-uri 'none'"
    }

    /// An HTML page in the sign-in page's style, which no other site may frame.
    package func page(status: HTTPStatus, body: String) -> Response {
        let html = """
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Sign in (local)</title>
            <link rel="icon" href="data:,">
            <link rel="stylesheet" href="/assets/\(articlesFCGIVersion)/style.css">
            </head>
            <body>
            <main class="standin">
            \(body)</main>
            </body>
            </html>

            """
        return Response(
            status: status,
            headers: [
                ("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store"),
                ("Content-Security-Policy", policy),
                ("Referrer-Policy", "no-referrer"),
            ],
            body: Array(html.utf8))
    }

    package static func escaped(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    /// A PKCE code verifier (RFC 7636 §4.1): 43 to 128 unreserved characters.
    package static func isVerifier(_ text: String) -> Bool {
        (43...128).contains(text.utf8.count) && text.utf8.allSatisfy(\.isUnreserved)
    }

    package static func isBase64URL(_ text: String, length: ClosedRange<Int>) -> Bool {
        length.contains(text.utf8.count)
            && text.utf8.allSatisfy { $0.isASCIIAlphanumeric || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }
    }

    /// 32 random bytes, base64url.
    package static func randomText() -> String {
        var generator = SystemRandomNumberGenerator()
        return Base64URL.encode((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }
}

extension UInt8 {
    package var isASCIIAlphanumeric: Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(self) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(self)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self)
    }

    /// RFC 3986's unreserved characters: letters, digits, `-`, `.`, `_`, `~`.
    package var isUnreserved: Bool {
        isASCIIAlphanumeric || self == UInt8(ascii: "-") || self == UInt8(ascii: ".") || self == UInt8(ascii: "_") || self == UInt8(ascii: "~")
    }
}
