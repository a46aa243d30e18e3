@testable import Auth
@testable import FastCGI
@testable import FCGIApp
import Foundation
import Logging
@testable import Support
import Testing

@Suite(.lane()) struct ConfigTests {
    static let pool = ["AWS_USER_POOLS_ID": "ap-southeast-2_AbC123", "AWS_APP_CLIENT_ID": "client1"]
    static let defaultCognito = CognitoConfig(
        poolID: "ap-southeast-2_AbC123", region: "ap-southeast-2", clientIDs: ["client1"], tokenUses: [.id],
        keySource: .url("https://cognito-idp.ap-southeast-2.amazonaws.com/ap-southeast-2_AbC123/.well-known/jwks.json"),
        leewaySeconds: 60)

    @Test func defaults() throws {
        let config = try Config.fromEnvironment(Self.pool)
        // One serving loop per core.
        #expect(config == Config(
            databaseURL: nil, listen: nil, threads: ProcessInfo.processInfo.activeProcessorCount, logLevel: .info, cognito: Self.defaultCognito))
        #expect(config.cognito.issuer == "https://cognito-idp.ap-southeast-2.amazonaws.com/ap-southeast-2_AbC123")
    }

    @Test func databaseBoundsNginxWouldNotWaitForAreNamed() throws {
        // A 2 s wait for a connection, and three statements of 9 s: within nginx's 30 s.
        let fits = try Config.fromEnvironment(Self.pool.merging(["DATABASE_LOCK_TIMEOUT_SECONDS": "9"]) { $1 })
        // A lock wait the statement's own bound would cut short raises it.
        #expect(fits.sessionSettings.first { $0.name == "statement_timeout" }?.value == "9s")
        #expect(fits.readTimeoutWarning == nil)
        #expect(try Config.fromEnvironment(Self.pool.merging(["DATABASE_LOCK_TIMEOUT_SECONDS": "10"]) { $1 }).readTimeoutWarning != nil)
        let binary = try TestEnvironment.binary()
        let long = try run(binary, ["check-config"], environment: Self.pool.merging(["DATABASE_STATEMENT_TIMEOUT_SECONDS": "11"]) { $1 })
        #expect(long.status == 0)
        #expect(long.output.contains(
            "\nwarning: with DATABASE_STATEMENT_TIMEOUT_SECONDS=11 and DATABASE_LOCK_TIMEOUT_SECONDS=2 a request may wait 35 s on "
                + "the database, longer than the shipped nginx site's fastcgi_read_timeout (30s)"), "\(long.output)")
        #expect(long.output.contains(#"raise it ("fastcgi_read_timeout 40s;" in location / of /etc/nginx/sites-available/articles-fcgi)"#))
        // The shipped site says what the worker assumes.
        let site = try String(contentsOfFile: TestEnvironment.path("nginx/articles-fcgi.conf"), encoding: .utf8)
        #expect(site.contains("fastcgi_read_timeout \(Config.nginxReadTimeoutSeconds)s;"))
    }

    @Test func versionComesFromTheVersionFile() throws {
        let version = try String(contentsOfFile: TestEnvironment.path("VERSION"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let printed = try run(try TestEnvironment.binary(), ["--version"])
        #expect(printed.status == 0)
        #expect(printed.output == version + "\n")
    }

    @Test func theIssuerPicksTheDefaultKeysAndBothAreAccepted() throws {
        let updated = try Config.fromEnvironment(Self.pool.merging(["COGNITO_ISSUER": "updated"]) { $1 }).cognito
        let issuer = "https://issuer-cognito-idp.ap-southeast-2.amazonaws.com/ap-southeast-2_AbC123"
        #expect(updated.issuer == issuer)
        #expect(updated.keySource == .url("\(issuer)/.well-known/jwks.json"))
        #expect(updated.acceptedIssuers == ["https://cognito-idp.ap-southeast-2.amazonaws.com/ap-southeast-2_AbC123", issuer])
        #expect(Self.defaultCognito.acceptedIssuers == updated.acceptedIssuers)
        #expect(throws: ConfigError("COGNITO_ISSUER must be original or updated, got \"UPDATED\"")) {
            try Config.fromEnvironment(Self.pool.merging(["COGNITO_ISSUER": "UPDATED"]) { $1 })
        }
    }

    @Test func readsEveryVariable() throws {
        let config = try Config.fromEnvironment([
            "DATABASE_URL": "postgresql://app@db/articles", "FCGI_LISTEN": "unix:/run/articles-fcgi.sock",
            "FCGI_THREADS": "16", "LOG_LEVEL": "WARNING", "AWS_USER_POOLS_ID": "us-east-1_Xy9", "AWS_REGION": "us-east-1",
            "AWS_APP_CLIENT_ID": "a, b", "COGNITO_TOKEN_USE": "id,access", "COGNITO_JWKS_FILE": "/etc/jwks.json",
            "COGNITO_LEEWAY_SECONDS": "5", "LOG_REQUESTS": "false",
        ])
        #expect(config == Config(
            databaseURL: "postgresql://app@db/articles", listen: .unix(path: "/run/articles-fcgi.sock"),
            threads: 16, logLevel: .warning, logRequests: false,
            cognito: CognitoConfig(
                poolID: "us-east-1_Xy9", region: "us-east-1", clientIDs: ["a", "b"], tokenUses: [.id, .access],
                keySource: .file("/etc/jwks.json"), leewaySeconds: 5)))
    }

    @Test(arguments: [
        ([:], "AWS_USER_POOLS_ID is not set: the Cognito user pool id, e.g. ap-southeast-2_AbC123"),
        (["AWS_USER_POOLS_ID": "nounderscore"], "AWS_USER_POOLS_ID must be <region>_<letters and digits>, e.g. ap-southeast-2_AbC123, got \"nounderscore\""),
        (["AWS_USER_POOLS_ID": "us-east-1_ab-c"], "AWS_USER_POOLS_ID must be <region>_<letters and digits>, e.g. ap-southeast-2_AbC123, got \"us-east-1_ab-c\""),
        (["AWS_USER_POOLS_ID": "us-east-1_abc"], "AWS_APP_CLIENT_ID is not set: the app client id(s) tokens are issued for, comma-separated"),
        (["AWS_USER_POOLS_ID": "us-east-1_abc", "AWS_REGION": "eu-west-1", "AWS_APP_CLIENT_ID": "c"], "AWS_REGION is eu-west-1 but the user pool us-east-1_abc is in us-east-1"),
        (["AWS_USER_POOLS_ID": "us-east-1_abc", "AWS_APP_CLIENT_ID": "a,,b"], "AWS_APP_CLIENT_ID has an empty client id: \"a,,b\""),
        (["AWS_USER_POOLS_ID": "us-east-1_abc", "AWS_APP_CLIENT_ID": "a", "COGNITO_TOKEN_USE": "refresh"], "COGNITO_TOKEN_USE must be id, access or id,access, got \"refresh\""),
        (["AWS_USER_POOLS_ID": "us-east-1_abc", "AWS_APP_CLIENT_ID": "a", "COGNITO_JWKS_URL": "http://x", "COGNITO_JWKS_FILE": "/f"], "set COGNITO_JWKS_URL or COGNITO_JWKS_FILE, not both"),
        (["AWS_USER_POOLS_ID": "us-east-1_abc", "AWS_APP_CLIENT_ID": "a", "COGNITO_JWKS_URL": "ftp://x"], "COGNITO_JWKS_URL must be an https:// or http:// URL, got \"ftp://x\""),
        (["AWS_USER_POOLS_ID": "us-east-1_abc", "AWS_APP_CLIENT_ID": "a", "COGNITO_LEEWAY_SECONDS": "61"], "COGNITO_LEEWAY_SECONDS must be a whole number from 0 to 60, got \"61\""),
    ])
    func refusesBadCognitoSettings(environment: [String: String], message: String) {
        #expect(throws: ConfigError(message)) { try Config.fromEnvironment(environment) }
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
        ("LOG_REQUESTS", "off", "LOG_REQUESTS must be true or false, got \"off\""),
        ("AUTO_PROVISION_USERS", "yes", "AUTO_PROVISION_USERS must be true or false, got \"yes\""),
        ("FCGI_WEB_SERVER_ADDRS", "10.0.0.1,nginx", "FCGI_WEB_SERVER_ADDRS must be comma-separated IPv4 addresses, got \"nginx\""),
        ("FCGI_REQUEST_TIMEOUT_SECONDS", "0", "FCGI_REQUEST_TIMEOUT_SECONDS must be a whole number of seconds from 1 to 300, got \"0\""),
        ("DATABASE_STATEMENT_TIMEOUT_SECONDS", "1.5", "DATABASE_STATEMENT_TIMEOUT_SECONDS must be a whole number of seconds from 1 to 300, got \"1.5\""),
        ("DATABASE_LOCK_TIMEOUT_SECONDS", "301", "DATABASE_LOCK_TIMEOUT_SECONDS must be a whole number of seconds from 1 to 300, got \"301\""),
        ("RATE_LIMIT_WRITES_PER_MINUTE", "-1", "RATE_LIMIT_WRITES_PER_MINUTE must be a whole number of requests from 0 (no limit) to 100000000, got \"-1\""),
        ("RATE_LIMIT_READS_PER_MINUTE", "1e3", "RATE_LIMIT_READS_PER_MINUTE must be a whole number of requests from 0 (no limit) to 100000000, got \"1e3\""),
        ("COGNITO_RESOURCE_SERVER", "https://api.example.com/",
         "COGNITO_RESOURCE_SERVER must be a resource server identifier (e.g. articles or https://api.example.com: printable, no spaces, quotes or trailing slash), got \"https://api.example.com/\""),
        ("COGNITO_DEFAULT_ROLE", "admin", "COGNITO_DEFAULT_ROLE must be writer or reader, got \"admin\""),
        ("COGNITO_RESOURCE_SERVER", "my api",
         "COGNITO_RESOURCE_SERVER must be a resource server identifier (e.g. articles or https://api.example.com: printable, no spaces, quotes or trailing slash), got \"my api\""),
    ])
    func refusesBadValues(name: String, value: String, message: String) {
        #expect(throws: ConfigError(message)) { try Config.fromEnvironment(Self.pool.merging([name: value]) { $1 }) }
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
        let good = try run(binary, ["check-config"], environment: Self.pool.merging([
            "DATABASE_URL": "postgresql://app:hunter2@db/articles", "FCGI_LISTEN": "127.0.0.1:9000", "FCGI_THREADS": "3",
        ]) { $1 })
        let feed = try run(binary, ["check-config"], environment: Self.pool.merging([
            "DATABASE_URL": "postgresql://app@bouncer/articles", "DATABASE_FEED_URL": "postgresql://feed:hunter2@db/articles",
        ]) { $1 })
        #expect(feed.status == 0 && feed.output.contains("DATABASE_FEED_URL=postgresql://feed:***@db/articles\n"), "\(feed.output)")
        let secret = String(repeating: "s3cret", count: 6)
        let withSecret = try run(binary, ["check-config"], environment: Self.pool.merging(["PROVISIONING_SECRET": secret]) { $1 })
        #expect(withSecret.status == 0)
        #expect(withSecret.output.contains("PROVISIONING_SECRET=*** (from PROVISIONING_SECRET)\n") && !withSecret.output.contains(secret))
        let both = try run(binary, ["check-config"], environment: Self.pool.merging([
            "PROVISIONING_SECRET": secret, "PROVISIONING_SECRET_FILE": "/etc/secret",
        ]) { $1 })
        #expect(both.status != 0 && both.output.contains("set PROVISIONING_SECRET or PROVISIONING_SECRET_FILE, not both"))
        #expect(good.status == 0)
        #expect(good.output == """
            DATABASE_URL=postgresql://app:***@db/articles
            DATABASE_FEED_URL=(unset: DATABASE_URL)
            FCGI_LISTEN=127.0.0.1:9000
            FCGI_THREADS=3
            FCGI_WEB_SERVER_ADDRS=(unset: any address may connect over TCP)
            FCGI_REQUEST_TIMEOUT_SECONDS=5
            DATABASE_STATEMENT_TIMEOUT_SECONDS=5
            DATABASE_LOCK_TIMEOUT_SECONDS=2
            LOG_LEVEL=info
            LOG_REQUESTS=true
            AWS_USER_POOLS_ID=ap-southeast-2_AbC123
            AWS_APP_CLIENT_ID=client1
            COGNITO_TOKEN_USE=id
            COGNITO_ISSUER=original
            COGNITO_JWKS_URL=https://cognito-idp.ap-southeast-2.amazonaws.com/ap-southeast-2_AbC123/.well-known/jwks.json
            COGNITO_LEEWAY_SECONDS=60
            COGNITO_ADMIN_GROUP=(unset: only owners, and members of groups granted the admin role, change their articles)
            COGNITO_DEFAULT_ROLE=writer
            COGNITO_RESOURCE_SERVER=(unset: access tokens' scopes are not checked)
            COGNITO_DOMAIN=(unset: the sign-in page says sign-in is not configured)
            COGNITO_SCOPES=openid email
            CORS_ALLOWED_ORIGINS=(unset: no cross-origin access)
            PROVISIONING_SECRET=(unset: no provisioning endpoint)
            AUTO_PROVISION_USERS=false
            RATE_LIMIT_READS_PER_MINUTE=0 (no limit)
            RATE_LIMIT_WRITES_PER_MINUTE=0 (no limit)
            issuer=https://cognito-idp.ap-southeast-2.amazonaws.com/ap-southeast-2_AbC123
            serving: 3 loops (FCGI_THREADS), each with 2 database sessions, and up to 8 while statements are stuck: with the change feed's, 7 sessions to PostgreSQL (or the pooler), at most 25
            configuration OK

            """)
        let updated = try run(binary, ["check-config"], environment: Self.pool.merging([
            "COGNITO_ISSUER": "updated", "FCGI_WEB_SERVER_ADDRS": "127.0.0.5, 10.0.0.1",
        ]) { $1 })
        #expect(updated.status == 0)
        #expect(updated.output.contains("\nFCGI_WEB_SERVER_ADDRS=10.0.0.1,127.0.0.5\n"))
        let issuer = "https://issuer-cognito-idp.ap-southeast-2.amazonaws.com/ap-southeast-2_AbC123"
        #expect(updated.output.contains("\nCOGNITO_ISSUER=updated\nCOGNITO_JWKS_URL=\(issuer)/.well-known/jwks.json\n"))
        #expect(updated.output.contains("\nissuer=\(issuer)\n"))
        // With a resource server, only access tokens by default; ID tokens accepted beside them
        // are not scope-checked, which check-config says.
        let scoped = try run(binary, ["check-config"], environment: Self.pool.merging(["COGNITO_RESOURCE_SERVER": "articles"]) { $1 })
        #expect(scoped.status == 0 && scoped.output.contains("\nCOGNITO_TOKEN_USE=access\n") && !scoped.output.contains("warning"))
        let withID = try run(binary, ["check-config"], environment: Self.pool.merging([
            "COGNITO_RESOURCE_SERVER": "articles", "COGNITO_TOKEN_USE": "id,access",
        ]) { $1 })
        #expect(withID.status == 0)
        #expect(withID.output.contains(
            "\nwarning: COGNITO_TOKEN_USE=id,access with COGNITO_RESOURCE_SERVER=articles: ID tokens carry no scopes and are not "
                + "scope-checked (their principal's role alone decides), so any app client's ID tokens may do what articles/write "
                + "allows; accept only access tokens (COGNITO_TOKEN_USE=access, the default with a resource server) to have every "
                + "request scope-checked\n"), "\(withID.output)")
        let bad = try run(binary, ["check-config"], environment: Self.pool.merging(["FCGI_THREADS": "-1"]) { $1 })
        #expect(bad.status != 0)
        #expect(bad.output.contains("FCGI_THREADS must be a whole number from 1 to 512, got \"-1\""))
    }
}
