import Foundation
import Logging
import Testing

@testable import FCGIApp

@Suite struct ConfigTests {
    @Test func defaults() throws {
        let config = try Config.fromEnvironment([:])
        #expect(config == Config(databaseURL: nil, listen: nil, threads: 8, logLevel: .info))
    }

    @Test func readsEveryVariable() throws {
        let config = try Config.fromEnvironment([
            "DATABASE_URL": "postgresql://app@db/articles", "FCGI_LISTEN": "unix:/run/articles-fcgi.sock",
            "FCGI_THREADS": "16", "LOG_LEVEL": "WARNING",
        ])
        #expect(config == Config(
            databaseURL: "postgresql://app@db/articles", listen: .unix(path: "/run/articles-fcgi.sock"),
            threads: 16, logLevel: .warning))
    }

    @Test(arguments: [
        ("unix:/run/a.sock", ListenAddress.unix(path: "/run/a.sock")),
        ("127.0.0.1:9000", .tcp(host: "127.0.0.1", port: 9000)),
        (":9000", .tcp(host: "", port: 9000)),
        ("localhost:65535", .tcp(host: "localhost", port: 65535)),
    ])
    func parsesListenAddresses(text: String, expected: ListenAddress) throws {
        #expect(try ListenAddress(parsing: text) == expected)
    }

    @Test(arguments: [
        ("FCGI_LISTEN", "unix:relative.sock", "FCGI_LISTEN: the unix socket path must be absolute, got \"relative.sock\""),
        ("FCGI_LISTEN", "unix:/run/a:b.sock", "FCGI_LISTEN: the unix socket path must not contain \":\" (libfcgi would read it as HOST:PORT)"),
        ("FCGI_LISTEN", "unix:/" + String(repeating: "x", count: 107), "FCGI_LISTEN: the unix socket path is longer than 107 bytes"),
        ("FCGI_LISTEN", "127.0.0.1", "FCGI_LISTEN must be unix:/path/to.sock or HOST:PORT, got \"127.0.0.1\""),
        ("FCGI_LISTEN", "127.0.0.1:70000", "FCGI_LISTEN must be unix:/path/to.sock or HOST:PORT, got \"127.0.0.1:70000\""),
        ("FCGI_LISTEN", "[::1]:9000", "FCGI_LISTEN: the host must be an IPv4 address or a host name, got \"[::1]\""),
        ("FCGI_THREADS", "0", "FCGI_THREADS must be a whole number from 1 to 512, got \"0\""),
        ("FCGI_THREADS", "eight", "FCGI_THREADS must be a whole number from 1 to 512, got \"eight\""),
        ("LOG_LEVEL", "verbose", "LOG_LEVEL must be debug, info, warning or error, got \"verbose\""),
    ])
    func refusesBadValues(name: String, value: String, message: String) {
        #expect(throws: ConfigError(message)) { try Config.fromEnvironment([name: value]) }
    }

    @Test(arguments: [
        ("postgresql://app:s3cret@db:5432/articles?sslmode=require", "postgresql://app:***@db:5432/articles?sslmode=require"),
        ("postgres://app@db/articles", "postgres://app@db/articles"),
        ("postgresql:///articles?host=/run/pg&user=app&password=s3cret", "postgresql:///articles?host=/run/pg&user=app&password=***"),
        ("host=db user=app password=s3cret dbname=articles", "host=db user=app password=*** dbname=articles"),
        ("host=db password='s3 \\' cret' dbname=x", "host=db password=*** dbname=x"),
        ("host=db mypassword=visible", "host=db mypassword=visible"),
    ])
    func masksPasswords(conninfo: String, masked: String) {
        #expect(Config.maskingPassword(conninfo) == masked)
    }

    @Test func checkConfigPrintsTheSettingsWithoutSecrets() throws {
        let binary = try TestEnvironment.binary()
        let good = try run(binary, ["check-config"], environment: [
            "DATABASE_URL": "postgresql://app:hunter2@db/articles", "FCGI_LISTEN": "127.0.0.1:9000", "FCGI_THREADS": "3",
        ])
        #expect(good.status == 0)
        #expect(good.output == """
            DATABASE_URL=postgresql://app:***@db/articles
            FCGI_LISTEN=127.0.0.1:9000
            FCGI_THREADS=3
            LOG_LEVEL=info
            configuration OK

            """)
        let bad = try run(binary, ["check-config"], environment: ["FCGI_THREADS": "-1"])
        #expect(bad.status != 0)
        #expect(bad.output.contains("FCGI_THREADS must be a whole number from 1 to 512, got \"-1\""))
    }
}
