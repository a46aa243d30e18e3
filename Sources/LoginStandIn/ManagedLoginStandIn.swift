import Auth
import Foundation
import HTTP
import JSON
import Support
import Synchronization

/// The local stand-in for a user pool's managed login (`articles-fcgi dev-login`), answering
/// what the sign-in page asks of Cognito's: `GET /oauth2/authorize` shows a form (an email; sign
/// in, or sign up), its `POST` sends the browser back with a one-time code, `POST /oauth2/token`
/// redeems the code for ID and access tokens signed with the local key, and `GET /logout` sends
/// the browser to the page's own `logout_uri`. Errors are Cognito's: an error page where the
/// browser cannot be sent back safely (an unknown client or `redirect_uri`), `error=` on the
/// redirect for a bad request, and `400 {"error": "invalid_grant"}` and the like from the token
/// endpoint.
///
/// Sign-up makes the user as a pool with a Post Confirmation trigger would: a signed event to
/// the worker's provisioning endpoint. Nobody has a password: any email signs in, and the
/// API's user mapping decides what the token may do. Codes live in memory for five minutes,
/// and every attempt to redeem one uses it up.
package final class ManagedLoginStandIn: Responder, Sendable {
    package struct Settings: Sendable {
        /// The app client id the page signs in with.
        package var clientID = LocalDevelopment.clientID
        /// The app client's callback and sign-out URLs: the page's own URL.
        package var pageURLs: [String]
        /// Where sign-up posts the Post Confirmation event, and the secret it signs it with.
        package var provisioningURL: URL
        package var provisioningSecret: ProvisioningSecret
        package var key: RSAPrivateKey
        package var kid: String
        package var tokenLifetime = 3600

        package init(
            clientID: String = LocalDevelopment.clientID, pageURLs: [String], provisioningURL: URL,
            provisioningSecret: ProvisioningSecret, key: RSAPrivateKey, kid: String, tokenLifetime: Int = 3600
        ) {
            self.clientID = clientID
            self.pageURLs = pageURLs
            self.provisioningURL = provisioningURL
            self.provisioningSecret = provisioningSecret
            self.key = key
            self.kid = kid
            self.tokenLifetime = tokenLifetime
        }
    }

    /// What a code stands for until it is redeemed.
    package struct Grant {
        package let email: String
        package let redirectURI: String
        package let challenge: String
        package let nonce: String?
        package let scope: String
        package let expires: Double
    }

    package static let codeLifetime: Double = 300
    /// The scopes an app client of the local pool may ask for.
    package static let allowedScopes: Set<Substring> = ["openid", "email", "profile", "phone", "aws.cognito.signin.user.admin"]

    package let settings: Settings
    /// The Content-Security-Policy of its pages, made once from the page's URLs.
    package let policy: String
    package let now: @Sendable () -> Double
    /// Codes not yet redeemed.
    package let grants = Mutex<[String: Grant]>([:])

    package init(_ settings: Settings, now: @escaping @Sendable () -> Double = wallSeconds) {
        self.settings = settings
        policy = Self.policy(pageURLs: settings.pageURLs)
        self.now = now
    }

    package func respond(to request: Request) -> Answer {
        Answer(response: route(request))
    }

    private func route(_ request: Request) -> Response {
        switch (request.path, request.method) {
        case ("/oauth2/authorize", "GET"), ("/oauth2/authorize", "HEAD"): authorize(Form(request.queryItems), failure: nil)
        case ("/oauth2/authorize", "POST"): signIn(Form(Request.formItems(String(decoding: request.body, as: UTF8.self))))
        case ("/oauth2/token", "POST"): token(request)
        case ("/logout", "GET"), ("/logout", "HEAD"): logout(Form(request.queryItems))
        case ("/oauth2/authorize", _), ("/oauth2/token", _), ("/logout", _):
            .error(.methodNotAllowed, "Method \"\(request.method)\" not allowed.")
        default: .error(.notFound, "Not found.")
        }
    }

    /// Parameters by name; a repeated one counts as missing, as OAuth 2.0 wants (RFC 6749 §3.1).
    package struct Form {
        private var values: [String: String?] = [:]

        package init(_ items: [(name: String, value: String)]) {
            for (name, value) in items { values[name] = values[name] == nil ? value : .some(nil) }
        }

        package subscript(name: String) -> String? { values[name] ?? nil }
    }

    // MARK: - Authorize

    /// The request checked as Cognito checks it: an unknown client or `redirect_uri` gets an
    /// error page, anything else wrong an `error` sent back to the `redirect_uri`.
    private enum Checked {
        case page(Response)
        case valid(redirectURI: String, scope: String)
    }

    private func check(_ form: Form) -> Checked {
        guard form["client_id"] == settings.clientID else {
            return .page(page(status: .badRequest, error: "invalid_client: the app client id is not this pool's (\(settings.clientID))."))
        }
        guard let redirectURI = form["redirect_uri"], settings.pageURLs.contains(redirectURI) else {
            return .page(page(status: .badRequest, error: "redirect_mismatch: redirect_uri is not one of the app client's callback URLs."))
        }
        func back(_ error: String, _ description: String) -> Checked {
            .page(redirect(redirectURI, ["error": error, "error_description": description, "state": form["state"]]))
        }
        guard form["response_type"] == "code" else { return back("unsupported_response_type", "response_type must be code") }
        guard form["code_challenge_method"] == "S256", let challenge = form["code_challenge"], Self.isBase64URL(challenge, length: 43...43) else {
            return back("invalid_request", "a code_challenge (S256) is required")
        }
        let scopes = (form["scope"] ?? "openid").split(separator: " ")
        guard !scopes.isEmpty, scopes.allSatisfy(Self.allowedScopes.contains) else { return back("invalid_scope", "unknown scope") }
        return .valid(redirectURI: redirectURI, scope: scopes.joined(separator: " "))
    }

    private func authorize(_ form: Form, failure: String?) -> Response {
        if case .page(let response) = check(form) { return response }
        let carried = ["client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge", "code_challenge_method"]
        var html = "<h1>Sign in</h1>\n<p class=\"note\">The local stand-in for the user pool's managed login: no password, any email.</p>\n"
        if let failure { html += "<p class=\"error\" role=\"alert\">\(Self.escaped(failure))</p>\n" }
        html += "<form method=\"post\" action=\"/oauth2/authorize\">\n"
        for name in carried {
            if let value = form[name] { html += "<input type=\"hidden\" name=\"\(name)\" value=\"\(Self.escaped(value))\">\n" }
        }
        html += """
            <label for="email">Email</label>
            <input id="email" name="email" type="email" autocomplete="email" required autofocus value="\(Self.escaped(form["email"] ?? ""))">
            <div class="actions">
            <button type="submit" name="action" value="signin">Sign in</button>
            <button type="submit" name="action" value="signup">Sign up</button>
            </div>
            </form>

            """
        return page(status: failure == nil ? .ok : .badRequest, body: html)
    }

    /// The form's answer: the email signed in (after making the user, for a sign-up), and the
    /// browser sent back with a new code.
    private func signIn(_ form: Form) -> Response {
        let redirectURI: String, scope: String
        switch check(form) {
        case .page(let response): return response
        case .valid(let uri, let scopes): (redirectURI, scope) = (uri, scopes)
        }
        guard let email = form["email"]?.trimmingSpaces, email.wholeMatch(of: /[^@\s]{1,64}@[^@\s]{1,189}/) != nil else {
            return authorize(form, failure: "Enter an email address.")
        }
        switch form["action"] {
        case "signin": break
        case "signup":
            if let failure = signUp(email) { return authorize(form, failure: failure) }
        default: return authorize(form, failure: "Choose Sign in or Sign up.")
        }
        let code = Self.randomText()
        let grant = Grant(
            email: email, redirectURI: redirectURI, challenge: form["code_challenge"]!, nonce: form["nonce"], scope: scope,
            expires: now() + Self.codeLifetime)
        grants.withLock { grants in
            grants = grants.filter { $0.value.expires > now() }
            grants[code] = grant
        }
        return redirect(redirectURI, ["code": code, "state": form["state"]])
    }

    /// The Post Confirmation event Cognito would send for a confirmed sign-up, signed and posted
    /// to the worker; nil when the user was made, else what to tell the person signing up.
    private func signUp(_ email: String) -> String? {
        let event: [String: Any] = [
            "version": "1", "triggerSource": "PostConfirmation_ConfirmSignUp", "region": LocalDevelopment.region,
            "userPoolId": LocalDevelopment.poolID, "userName": LocalDevelopment.username(forEmail: email),
            "callerContext": ["clientId": settings.clientID],
            "request": ["userAttributes": ["sub": LocalDevelopment.sub(forEmail: email), "email": email, "email_verified": "true"]],
            "response": [String: Any](),
        ]
        guard let body = try? JSONSerialization.data(withJSONObject: event, options: [.sortedKeys]) else { return "The sign-up failed." }
        let timestamp = String(Int(now()))
        let signature = hmacSHA256(key: settings.provisioningSecret.bytes, data: Array((timestamp + ".").utf8) + Array(body))
        let headers = [
            ("Content-Type", "application/json"), ("X-Signature-Timestamp", timestamp), ("X-Signature", "sha256=" + Hex.encode(signature)),
        ]
        do {
            let answer = try HTTPFetch.send(settings.provisioningURL.absoluteString, headers: headers, body: Array(body), timeout: 5, maxBytes: 64 * 1024)
            guard answer.status == 200 else {
                let detail = (try? StrictJSON.parse(answer.body))?.object?["detail"]?.string
                return "The sign-up failed: \(detail ?? "the provisioning endpoint answered \(answer.status)")"
            }
            return nil
        } catch {
            return "The sign-up failed: the provisioning endpoint at \(settings.provisioningURL.absoluteString) did not answer (\(error))."
        }
    }
}
