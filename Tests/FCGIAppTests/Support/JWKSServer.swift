import Foundation
import Testing

/// A JWKS server the tests control (Tests/Fixtures/jwks-server.py).
final class JWKSServer: @unchecked Sendable {
    let dir: String
    let port: Int
    /// Whether it serves HTTPS, with a certificate of its own for 127.0.0.1 that no CA signed.
    let tls: Bool
    private let process: ChildProcess

    init(tls: Bool = false) throws {
        dir = try TestEnvironment.scratchFolder("jwks")
        self.tls = tls
        if tls {
            let made = try run("/usr/bin/openssl", [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", "\(dir)/key.pem", "-out", "\(dir)/cert.pem",
            ])
            try #require(made.status == 0, "\(made.output)")
        }
        process = try ChildProcess(
            "/usr/bin/python3", [TestEnvironment.path("Tests/Fixtures/jwks-server.py"), dir] + (tls ? ["--tls"] : []),
            environment: ["PATH": "/usr/bin:/bin"], log: "\(dir)/server.log")
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let line = process.output.split(separator: "\n").first, line.hasPrefix("port "), let port = Int(line.dropFirst(5)) {
                self.port = port
                return
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw HTTPClient.Failure(description: "the JWKS server did not start: \(process.output)")
    }

    func url(_ path: String) -> String { "\(tls ? "https" : "http")://127.0.0.1:\(port)\(path)" }

    func hits(_ path: String) throws -> Int {
        let stats = try HTTPClient.request(port: port, path: "/stats")
        return ((try JSONSerialization.jsonObject(with: stats.body)) as? [String: Int])?[path] ?? 0
    }

    func serve(_ keys: [[String: Any]], as name: String = "jwks.json") throws {
        try TestPool.writeJWKS(keys, to: "\(dir)/\(name)")
    }

    func remove(_ name: String) throws { try FileManager.default.removeItem(atPath: "\(dir)/\(name)") }
}
