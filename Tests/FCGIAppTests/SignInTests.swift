@testable import Auth
@testable import FCGIApp
import Foundation
@testable import HTTP
@testable import LoginStandIn
@testable import PG
import Testing

/// The sign-in page's settings (`COGNITO_DOMAIN`, `COGNITO_SCOPES`, `GET /app-config.json`) and
/// the local managed-login stand-in's OAuth 2.0 rules, in process. scripts/browser-check drives
/// both in Chromium through nginx.
@Suite(.lane()) struct SignInTests {
    static let pool = ["AWS_USER_POOLS_ID": "us-east-1_Abc", "AWS_APP_CLIENT_ID": "web, cli"]

    @Test(arguments: [
        ("https://myapp.auth.us-east-1.amazoncognito.com", "https://myapp.auth.us-east-1.amazoncognito.com"),
        ("https://login.example.com/", "https://login.example.com"),
        ("https://login.example.com:8443", "https://login.example.com:8443"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:8080/", "http://localhost:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ])
    func aDomainIsAnOrigin(text: String, domain: String) throws {
        let config = try Config.fromEnvironment(Self.pool.merging(["COGNITO_DOMAIN": text]) { $1 })
        #expect(config.signIn == SignInConfig(domain: domain, scopes: "openid email"))
    }

    @Test(arguments: [
        ("COGNITO_DOMAIN", "myapp.auth.us-east-1.amazoncognito.com", "COGNITO_DOMAIN must be the managed login's origin"),
        ("COGNITO_DOMAIN", "https://login.example.com/oauth2", "COGNITO_DOMAIN must be the managed login's origin"),
        ("COGNITO_DOMAIN", "https://login.example.com?x=1", "COGNITO_DOMAIN must be the managed login's origin"),
        ("COGNITO_DOMAIN", "https://user@login.example.com", "COGNITO_DOMAIN must be the managed login's origin"),
        ("COGNITO_DOMAIN", "https://login.example.com:0", "COGNITO_DOMAIN must be the managed login's origin"),
        ("COGNITO_DOMAIN", "https://", "COGNITO_DOMAIN must be the managed login's origin"),
        ("COGNITO_DOMAIN", "http://login.example.com", "COGNITO_DOMAIN must use https://"),
        ("COGNITO_SCOPES", "email profile", "COGNITO_SCOPES must include openid"),
        ("COGNITO_SCOPES", "openid \"email\"", "COGNITO_SCOPES must be space-separated scope names"),
    ])
    func badSettingsAreRefused(name: String, value: String, message: String) {
        #expect {
            try Config.fromEnvironment(Self.pool.merging([name: value]) { $1 })
        } throws: { error in
            "\(error)".hasPrefix(message) && "\(error)".hasSuffix("got \"\(value)\"")
        }
    }

    @Test func appConfigSaysHowToSignIn() throws {
        let unset = try InProcess()
        let plain = try unset.get("/app-config.json")
        #expect(plain.status == 200)
        #expect(plain.header("Cache-Control") == "no-cache")
        #expect(String(decoding: plain.body, as: UTF8.self)
            == #"{"domain":null,"client_id":"test-client-1","scopes":"openid email","token_use":"id"}"#)
        // No token needed, and it answers a HEAD and a plain OPTIONS as the other open routes do.
        #expect(try unset.request("HEAD", "/app-config.json").status == 200)
        #expect(try unset.request("POST", "/app-config.json").status == 405)

        let set = try InProcess(environment: [
            "COGNITO_DOMAIN": "https://login.example.com/", "COGNITO_SCOPES": "openid  email profile",
            "COGNITO_TOKEN_USE": "access,id", "COGNITO_ADMIN_GROUP": "editors", "AWS_APP_CLIENT_ID": "web,cli",
        ])
        #expect(String(decoding: try set.get("/app-config.json").body, as: UTF8.self)
            == #"{"domain":"https://login.example.com","client_id":"web","scopes":"openid email profile","token_use":"id,access","admin_group":"editors"}"#)
    }

    // MARK: - The stand-in

    static let page = "http://127.0.0.1:8080/"
    static let verifier = String(repeating: "v", count: 43)
    static let challenge = Base64URL.encode(sha256(Array(verifier.utf8)))

    final class Clock: @unchecked Sendable {
        var now: Double = 1_800_000_000
    }

    static func standIn(_ clock: Clock = Clock()) -> ManagedLoginStandIn {
        ManagedLoginStandIn(
            .init(
                pageURLs: [page], provisioningURL: URL(string: "http://127.0.0.1:9/")!,
                provisioningSecret: try! ProvisioningSecret.fromEnvironment { $0 == "PROVISIONING_SECRET" ? String(repeating: "s", count: 32) : nil }!,
                key: TestPool.key,
                kid: TestPool.kid),
            now: { clock.now })
    }

    static func form(_ items: [String: String]) -> String {
        items.sorted { $0.key < $1.key }.map { "\($0.key)=\(ManagedLoginStandIn.percentEncoded($0.value))" }.joined(separator: "&")
    }

    static let authorize = [
        "response_type": "code", "client_id": LocalDevelopment.clientID, "redirect_uri": page, "scope": "openid email",
        "state": "s+1/=", "nonce": "n-1", "code_challenge": challenge, "code_challenge_method": "S256",
    ]

    static func send(_ standIn: ManagedLoginStandIn, _ method: String, _ path: String, query: [String: String] = [:], body: [String: String]? = nil)
        -> Response
    {
        var headers: [String: String] = [:]
        if body != nil { headers["content-type"] = "application/x-www-form-urlencoded" }
        return standIn.respond(to: Request(
            method: method, path: path, query: form(query), headers: headers, body: Array((body.map(form) ?? "").utf8))).response
    }

    /// The query parameters of a redirect's Location, if it goes to the page.
    static func back(_ response: Response) -> [String: String]? {
        guard response.status == .found, let location = response.headers.first(where: { $0.name == "Location" })?.value,
            location.hasPrefix(page + "?")
        else { return nil }
        return Dictionary(Request.formItems(String(location.dropFirst(page.count + 1))).map { ($0.name, $0.value) }) { $1 }
    }

    static func code(_ standIn: ManagedLoginStandIn, email: String = "demo@example.com") throws -> String {
        let answer = try #require(back(send(standIn, "POST", "/oauth2/authorize", body: authorize.merging(["email": email, "action": "signin"]) { $1 })))
        #expect(answer["state"] == "s+1/=")
        return try #require(answer["code"])
    }

    static func redeem(_ standIn: ManagedLoginStandIn, _ code: String, verifier: String = verifier, redirect: String = page) -> (HTTPStatus, String) {
        let response = send(standIn, "POST", "/oauth2/token", body: [
            "grant_type": "authorization_code", "client_id": LocalDevelopment.clientID, "code": code, "redirect_uri": redirect,
            "code_verifier": verifier,
        ])
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    @Test func theFormCarriesTheRequestEscaped() {
        let shown = Self.send(Self.standIn(), "GET", "/oauth2/authorize", query: Self.authorize.merging(["state": "<\"x\">"]) { $1 })
        #expect(shown.status == .ok)
        let html = String(decoding: shown.body, as: UTF8.self)
        #expect(html.contains(#"<input type="hidden" name="state" value="&lt;&quot;x&quot;&gt;">"#))
        #expect(html.contains(#"<button type="submit" name="action" value="signup">Sign up</button>"#))
        #expect(shown.headers.contains { $0 == ("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src data:; form-action 'self' http://127.0.0.1:8080; frame-ancestors 'none'; base-uri 'none'") })
    }

    @Test func anUnknownClientOrRedirectURIGetsAnErrorPageNotARedirect() {
        for (name, value, error) in [("client_id", "other", "invalid_client"), ("redirect_uri", "http://127.0.0.1:8080/x", "redirect_mismatch")] {
            let refused = Self.send(Self.standIn(), "GET", "/oauth2/authorize", query: Self.authorize.merging([name: value]) { $1 })
            #expect(refused.status == .badRequest)
            #expect(!refused.headers.contains { $0.name == "Location" })
            #expect(String(decoding: refused.body, as: UTF8.self).contains(error))
        }
    }

    @Test(arguments: [
        ("response_type", "token", "unsupported_response_type"), ("code_challenge_method", "plain", "invalid_request"),
        ("code_challenge", "short", "invalid_request"), ("scope", "openid admin", "invalid_scope"),
    ])
    func otherMistakesGoBackAsErrors(name: String, value: String, error: String) throws {
        let answer = try #require(Self.back(Self.send(Self.standIn(), "GET", "/oauth2/authorize", query: Self.authorize.merging([name: value]) { $1 })))
        #expect(answer["error"] == error && answer["state"] == "s+1/=" && answer["code"] == nil)
    }

    @Test func aCodeIsRedeemedOnceWithItsVerifierAndRedirectURIAndOnlyInTime() throws {
        let clock = Clock()
        let standIn = Self.standIn(clock)
        let refused = (HTTPStatus.badRequest, #"{"error":"invalid_grant"}"#)
        var code = try Self.code(standIn)
        #expect(Self.redeem(standIn, code, verifier: String(repeating: "w", count: 43)) == refused)
        #expect(Self.redeem(standIn, code) == refused, "the failed attempt used the code up")
        code = try Self.code(standIn)
        #expect(Self.redeem(standIn, code, redirect: "http://127.0.0.1:8080/other") == refused)
        code = try Self.code(standIn)
        clock.now += ManagedLoginStandIn.codeLifetime + 1
        #expect(Self.redeem(standIn, code) == refused)

        code = try Self.code(standIn, email: "Reader@Example.com")
        let (status, body) = Self.redeem(standIn, code)
        #expect(status == .ok)
        let tokens = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        #expect(Set(tokens.keys) == ["id_token", "access_token", "token_type", "expires_in"])
        #expect(tokens["token_type"] as? String == "Bearer" && tokens["expires_in"] as? Int == 3600)
        func claims(_ name: String) throws -> [String: Any] {
            let token = try #require(tokens[name] as? String)
            let payload = try #require(Base64URL.decode(Array(token.split(separator: ".")[1].utf8)))
            return try #require(try JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any])
        }
        let id = try claims("id_token")
        #expect(id["nonce"] as? String == "n-1" && id["aud"] as? String == LocalDevelopment.clientID)
        #expect(id["email"] as? String == "Reader@Example.com" && id["cognito:username"] as? String == "Reader")
        #expect(id["sub"] as? String == LocalDevelopment.sub(forEmail: "reader@example.com"))
        #expect(id["iat"] as? Int == Int(clock.now) && id["exp"] as? Int == Int(clock.now) + 3600)
        let access = try claims("access_token")
        #expect(access["scope"] as? String == "openid email" && access["token_use"] as? String == "access")
        #expect(Self.redeem(standIn, code) == refused, "a code is redeemed once")
    }

    @Test func theTokenEndpointAnswersAsCognitosDoes() throws {
        let standIn = Self.standIn()
        let code = try Self.code(standIn)
        let base = ["grant_type": "authorization_code", "client_id": LocalDevelopment.clientID, "code": code, "redirect_uri": Self.page, "code_verifier": Self.verifier]
        for (change, error) in [
            (["grant_type": "refresh_token"], "unsupported_grant_type"), (["client_id": "other"], "invalid_client"),
            (["code_verifier": ""], "invalid_grant"),
        ] {
            let response = Self.send(standIn, "POST", "/oauth2/token", body: base.merging(change) { $1 })
            #expect(response.status == .badRequest && String(decoding: response.body, as: UTF8.self) == #"{"error":"\#(error)"}"#)
            #expect(response.headers.contains { $0 == ("Cache-Control", "no-store") })
        }
        let form = standIn.respond(to: Request(method: "POST", path: "/oauth2/token", headers: ["content-type": "application/json"], body: Array("{}".utf8)))
        #expect(form.response.status == .badRequest && String(decoding: form.response.body, as: UTF8.self) == #"{"error":"invalid_request"}"#)
        #expect(Self.send(standIn, "GET", "/oauth2/token").status == .methodNotAllowed)
        // The page's own origin may read the answer across origins (localhost against 127.0.0.1); no other.
        for (origin, allowed) in [("http://127.0.0.1:8080", true), ("https://evil.example", false)] {
            let answer = standIn.respond(to: Request(
                method: "POST", path: "/oauth2/token", headers: ["content-type": "application/x-www-form-urlencoded", "origin": origin],
                body: Array("grant_type=authorization_code".utf8))).response
            #expect(answer.headers.contains { $0 == ("Access-Control-Allow-Origin", origin) } == allowed, "\(origin)")
        }
        #expect(Self.send(standIn, "GET", "/nope").status == .notFound)
    }

    @Test func theStandInRefusesARealPoolAndNeedsTheSecretAndTheKey() throws {
        let binary = try TestEnvironment.binary()
        let arguments = ["dev-login", "--listen", "unix:/nonexistent/dev-login.sock", "--page-url", Self.page,
                         "--provisioning-url", "http://127.0.0.1:9/internal/cognito/post-confirmation"]
        let base = ["PATH": "/usr/bin:/bin", "RUN_DIR": try TestEnvironment.scratchFolder("dev-login")]
        let real = try run(binary, arguments, environment: base.merging(["AWS_USER_POOLS_ID": "eu-west-1_Abc", "PROVISIONING_SECRET": String(repeating: "s", count: 32)]) { $1 })
        #expect(real.status != 0 && real.output.contains("dev-login stands in for the local pool only, and AWS_USER_POOLS_ID is eu-west-1_Abc"), "\(real.output)")
        let noSecret = try run(binary, arguments, environment: base)
        #expect(noSecret.status != 0 && noSecret.output.contains("dev-login needs PROVISIONING_SECRET or PROVISIONING_SECRET_FILE"), "\(noSecret.output)")
        let noKey = try run(binary, arguments, environment: base.merging(["PROVISIONING_SECRET": String(repeating: "s", count: 32)]) { $1 })
        #expect(noKey.status != 0 && noKey.output.contains("no local development key"), "\(noKey.output)")
    }

    @Test func logoutGoesOnlyToThePage() {
        let standIn = Self.standIn()
        let out = Self.send(standIn, "GET", "/logout", query: ["client_id": LocalDevelopment.clientID, "logout_uri": Self.page])
        #expect(out.status == .found && out.headers.contains { $0 == ("Location", Self.page) })
        let elsewhere = Self.send(standIn, "GET", "/logout", query: ["client_id": LocalDevelopment.clientID, "logout_uri": "https://evil.example/"])
        #expect(elsewhere.status == .badRequest && !elsewhere.headers.contains { $0.name == "Location" })
    }
}
