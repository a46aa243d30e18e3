@testable import FastCGI
@testable import FCGIApp
@testable import HTTP
@testable import PG
@testable import Stores
import Testing

@Suite(.lane()) struct HTTPTests {
    /// A request from `parameters` as a FastCGI PARAMS stream carries them.
    private func request(cgi parameters: [String: String]) -> Request {
        var stream: [UInt8] = []
        for (name, value) in parameters { FastCGIParameters.append(name: name, value: value, to: &stream) }
        return CGIGateway.request(stream)!
    }

    @Test func requestComesFromCGIParameters() {
        let request = request(cgi: [
            "REQUEST_METHOD": "POST", "DOCUMENT_URI": "/articles/", "REQUEST_URI": "/articles/?limit=5",
            "QUERY_STRING": "limit=5", "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": "2",
            "HTTP_AUTHORIZATION": "Bearer a=b", "HTTP_X_REQUEST_ID": "r-1", "SERVER_NAME": "_",
        ])
        #expect(request.method == "POST")
        #expect(request.path == "/articles/")
        #expect(request.query == "limit=5")
        #expect(request.headers == [
            "authorization": "Bearer a=b", "x-request-id": "r-1", "content-type": "application/json", "content-length": "2",
        ])
        #expect(request.body.isEmpty, "the body is read after the parameters")
    }

    @Test func queryItemsArePercentDecoded() {
        let request = Request(method: "GET", path: "/", query: "a=1&b=x%20y+z&c&limit=%31%30&bad=%zz&sign=%+f&Up=%4A%4a")
        #expect(request.queryItems.map { "\($0.name)=\($0.value)" }
            == ["a=1", "b=x y z", "c=", "limit=10", "bad=%zz", "sign=% f", "Up=JJ"])
    }

    @Test func entityTagsCompareStronglyOrWeakly() {
        #expect(EntityTags(#""a", "b""#).matches(#""b""#, weak: false))
        #expect(!EntityTags(#"W/"b""#).matches(#""b""#, weak: false))
        #expect(EntityTags(#"W/"b""#).matches(#""b""#, weak: true))
        #expect(EntityTags("*").matches(#""x""#, weak: false))
        #expect(!EntityTags(#""c""#).matches(#""b""#, weak: true))
    }

    @Test(arguments: [
        ("2026-11-27 12:13:48.930045", "2026-11-27T12:13:48.930045Z"),
        ("2026-11-27 12:13:48.93", "2026-11-27T12:13:48.930000Z"),
        ("2026-11-27 12:13:48", "2026-11-27T12:13:48.000000Z"),
        ("0001-01-01 00:00:00.000001", "0001-01-01T00:00:00.000001Z"),
        // Not RFC 3339 material: passed on as PostgreSQL wrote it.
        ("infinity", "infinity"),
        ("0044-03-15 12:00:00 BC", "0044-03-15 12:00:00 BC"),
        ("10000-01-01 00:00:00", "10000-01-01 00:00:00"),
        ("2026-11-27 12:13:48.", "2026-11-27 12:13:48."),
        ("2026-11-27 12:13:48.1234567", "2026-11-27 12:13:48.1234567"),
    ])
    func utcTimestampsBecomeRFC3339(text: String, expected: String) {
        var text = text
        let converted = text.withUTF8 { UTCTimestamp.decode(pgText: $0)?.rfc3339 }
        #expect(converted == expected)
    }

    @Test func pathFallsBackToTheRequestURI() {
        let request = request(cgi: ["REQUEST_URI": "/healthz?x=1"])
        #expect(request.method == "GET")
        #expect(request.path == "/healthz")
    }

    @Test func responseIsWrittenInCGIForm() {
        let response = Response.error(.notFound, "Not found.")
        #expect(String(decoding: response.cgiBytes(), as: UTF8.self)
            == "Status: 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 23\r\n\r\n{\"detail\":\"Not found.\"}")
        #expect(String(decoding: response.cgiBytes(includeBody: false), as: UTF8.self)
            == "Status: 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 23\r\n\r\n")
        let escaped = Response.error(.methodNotAllowed, "Method \"PUT\" not allowed. </a>")
        #expect(String(decoding: escaped.body, as: UTF8.self) == #"{"detail":"Method \"PUT\" not allowed. </a>"}"#)
    }

    @Test func routing() {
        #expect(Route(path: "/healthz") == .health)
        #expect(Route(path: "/healthz/x") == nil)
        #expect(Route(path: "/") == nil)
        #expect(Route.health.allowedMethods == ["GET", "HEAD", "OPTIONS"])
        #expect(Route(path: "/articles") == .articles)
        #expect(Route(path: "/articles/") == .articles)
        #expect(Route(path: "/articles/42") == .article(42))
        #expect(Route(path: "/articles/007/") == .article(7))
        for malformed in ["/articles/x/", "/articles/-1/", "/articles/1.5/", "/articles/99999999999999999999/", "/articles//", "/articles/1//", "/articlesX"] {
            #expect(Route(path: malformed) == nil, "\(malformed)")
        }
    }
}
