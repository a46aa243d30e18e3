import Auth
import Foundation
import HTTP
import JSON

/// The stand-in's token endpoint and sign-out, as Cognito's managed login answers them.
extension ManagedLoginStandIn {
    /// Answers to the page's own origins carry `Access-Control-Allow-Origin`, as Cognito's token
    /// endpoint answers a public client's page: the page at `localhost` calls the stand-in at
    /// `127.0.0.1`.
    package func token(_ request: Request) -> Response {
        var response = redeem(request)
        if let origin = request.header("origin"), settings.pageURLs.contains(where: { Self.origin(of: $0) == origin }) {
            response.headers += [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
        }
        return response
    }

    /// `scheme://host[:port]` of a URL.
    package static func origin(of url: String) -> String? {
        guard let components = URLComponents(string: url), let scheme = components.scheme, let host = components.host else { return nil }
        return "\(scheme)://\(host)" + (components.port.map { ":\($0)" } ?? "")
    }

    private func redeem(_ request: Request) -> Response {
        func refused(_ error: String, _ status: HTTPStatus = .badRequest) -> Response {
            tokenResponse(status, ["error": .string(error)])
        }
        guard request.header("content-type")?.lowercased().hasPrefix("application/x-www-form-urlencoded") == true else {
            return refused("invalid_request")
        }
        let form = Form(Request.formItems(String(decoding: request.body, as: UTF8.self)))
        guard form["grant_type"] == "authorization_code" else {
            return refused(form["grant_type"] == nil ? "invalid_request" : "unsupported_grant_type")
        }
        guard form["client_id"] == settings.clientID else { return refused("invalid_client") }
        guard let code = form["code"], let redirectURI = form["redirect_uri"], let verifier = form["code_verifier"] else {
            return refused("invalid_request")
        }
        // Used up by this attempt, whatever comes of it.
        guard let grant = grants.withLock({ $0.removeValue(forKey: code) }), grant.expires > now(), grant.redirectURI == redirectURI,
            Self.isVerifier(verifier), Base64URL.encode(sha256(Array(verifier.utf8))) == grant.challenge
        else {
            return refused("invalid_grant")
        }
        let issued = Int(now())
        func make(_ use: LocalDevelopment.TokenUse) throws -> String {
            try LocalDevelopment.token(
                key: settings.key, kid: settings.kid, email: grant.email, sub: LocalDevelopment.sub(forEmail: grant.email), use: use,
                issuedAt: issued, expiresIn: settings.tokenLifetime, nonce: grant.nonce, scope: grant.scope)
        }
        guard let id = try? make(.id), let access = try? make(.access) else { return refused("server_error", .internalServerError) }
        return tokenResponse(.ok, [
            "id_token": .string(id), "access_token": .string(access), "token_type": .string("Bearer"),
            "expires_in": .int(Int64(settings.tokenLifetime)),
        ])
    }

    private enum Member: JSONWritable {
        case string(String), int(Int64)
        func write(to json: inout JSONWriter) {
            switch self {
            case .string(let text): text.write(to: &json)
            case .int(let number): number.write(to: &json)
            }
        }
    }

    private func tokenResponse(_ status: HTTPStatus, _ members: [String: Member]) -> Response {
        var response = Response.json(members, status: status)
        response.headers += [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
        return response
    }

    // MARK: - Logout

    package func logout(_ form: Form) -> Response {
        guard form["client_id"] == settings.clientID else {
            return page(status: .badRequest, error: "invalid_client: the app client id is not this pool's (\(settings.clientID)).")
        }
        guard let uri = form["logout_uri"], settings.pageURLs.contains(uri) else {
            return page(status: .badRequest, error: "logout_uri is not one of the app client's sign-out URLs.")
        }
        return Response(status: .found, headers: [("Location", uri), ("Cache-Control", "no-store")])
    }
}
