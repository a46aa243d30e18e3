@testable import FastCGI
@testable import FCGIApp
import Foundation
@testable import Support
import Testing

/// What the production site passes to the worker, read off the FastCGI socket by the test
/// itself standing in for the worker.
@Suite(.lane()) struct NginxSiteTests {
    @Test func noProxyHeaderReachesTheWorkerAndTheHostIsNginxs() throws {
        let dir = try TestEnvironment.scratchFolder("capture")
        let socketPath = "\(dir)/capture.sock"
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        try #require(withUnixAddress(socketPath, { bind(listener, $0, $1) }) == 0 && listen(listener, 8) == 0)
        chmod(socketPath, 0o666)
        let httpPort = try TestEnvironment.freePort()
        let nginx = try Stack.nginx(dir: dir, httpPort: httpPort, upstream: "unix:\(socketPath)")
        defer { nginx.stop() }

        let answer = Results()
        let client = Thread {
            let request = "GET /articles/ HTTP/1.1\r\nHost: api.example.com\r\nProxy: http://evil.example:3128\r\nConnection: close\r\n\r\n"
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline {
                if let reply = try? HTTPClient.exchange(port: httpPort, Data(request.utf8)) {
                    return answer.add(0, String(decoding: reply, as: UTF8.self))
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
        client.start()

        var ready = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        try #require(poll(&ready, 1, 10_000) == 1, "nginx passed no request on")
        let connection = accept(listener, nil, nil)
        defer { close(connection) }
        var reader = RecordReader(values: [:])
        var input: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var request: FastCGIRequest?
        while request == nil {
            let count = buffer.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            try #require(count > 0, "nginx closed the connection mid-request")
            input += buffer[0..<count]
            var slice = input[...]
            if case .request(let complete) = reader.next(&slice) { request = complete }
            input = Array(slice)
        }
        var parameters: [String: String] = [:]
        _ = request!.parameters.withUnsafeBytes {
            FastCGIParameters.forEach(in: $0) { parameters[String(decoding: $0, as: UTF8.self)] = String(decoding: $1, as: UTF8.self) }
        }
        let response = RecordReader.response(id: request!.id, payload: Array("Status: 200 OK\r\nContent-Type: application/json\r\n\r\n[]".utf8))
        _ = response.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }

        #expect((parameters["HTTP_PROXY"] ?? "") == "", "the client's Proxy header is not passed on")
        #expect(parameters["HTTP_HOST"] == "api.example.com")
        #expect(parameters["DOCUMENT_URI"] == "/articles/")
        let deadline = Date().addingTimeInterval(10)
        while answer.all.isEmpty, Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        #expect(answer.all.first?.body.hasPrefix("HTTP/1.1 200 OK\r\n") == true)
    }
}

/// The sign-in page as the production site serves it: from web/, with its policy and caching.
@Suite(.lane()) struct SignInPageTests {
    static let version = (try? String(contentsOfFile: TestEnvironment.path("VERSION"), encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""

    @Test func thePageNamesItsAssetsByTheRelease() throws {
        let page = try String(contentsOfFile: TestEnvironment.path("web/index.html"), encoding: .utf8)
        let named = page.matches(of: /"\/assets\/([^\/"]+)\/([a-z]+\.(?:js|css))"/).map { ($0.output.1, $0.output.2) }
        #expect(Set(named.map { String($0.1) }) == ["app.js", "style.css"])
        #expect(named.allSatisfy { $0.0 == Self.version }, "a new release must name its assets anew: \(named)")
        for (_, file) in named { #expect(FileManager.default.fileExists(atPath: TestEnvironment.path("web/assets/\(file)"))) }
    }

    @Test func nginxServesThePageWithItsPolicyAndTheAssetsForAYear() throws {
        let stack = try Stack()
        let page = try stack.get("/")
        #expect(page.status == 200)
        #expect(page.header("Content-Type") == "text/html; charset=utf-8")
        #expect(page.body == FileManager.default.contents(atPath: TestEnvironment.path("web/index.html")))
        #expect(page.header("Content-Security-Policy") == "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
        #expect(page.header("Referrer-Policy") == "no-referrer")
        #expect(page.header("Cache-Control") == "no-cache")
        #expect(page.header("X-Content-Type-Options") == "nosniff")

        for (file, type) in [("app.js", "text/javascript"), ("auth.js", "text/javascript"), ("style.css", "text/css")] {
            let asset = try stack.get("/assets/\(Self.version)/\(file)")
            #expect(asset.status == 200, "\(file)")
            #expect(asset.header("Content-Type") == "\(type); charset=utf-8")
            #expect(asset.header("Cache-Control") == "public, max-age=31536000, immutable")
            #expect(asset.body == FileManager.default.contents(atPath: TestEnvironment.path("web/assets/\(file)")))
        }
        // Anything else is the API's: a JSON 404, and the stand-in's paths exist only locally.
        for path in ["/assets/\(Self.version)/nope.js", "/assets/\(Self.version)/../index.html", "/index.html", "/oauth2/token", "/logout"] {
            let missing = try stack.get(path)
            #expect(missing.status == 404, "\(path)")
            // nginx's own 404 (a missing asset) ends in a newline, the worker's does not.
            #expect(try JSONSerialization.jsonObject(with: missing.body) as? [String: String] == ["detail": "Not found."], "\(path)")
        }
    }
}
