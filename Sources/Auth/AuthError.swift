import HTTP

/// Why a request was not authenticated: a 401 (or a 503 when no signing keys are loaded) with a
/// message a client can act on. `reason` is for the log and never holds the token.
package struct AuthError: Error, Sendable, Equatable {
    package let status: HTTPStatus
    package let detail: String
    package let reason: String
    package let credentialsPresent: Bool
    /// The signature was checked against the key the token names, and is wrong: the same token
    /// is refused again for as long as that key set lasts.
    package private(set) var isBadSignature = false
    /// Set when a request on a serving loop met a reload of the keys in flight for the key its
    /// token names: instead of holding the loop, the request parks with this (until the reload
    /// ends, or `KeyStore.missWait` after it began) and is verified again.
    package private(set) var parkUntilKeysReload: (@Sendable () async -> Void)?

    package static let realm = "articles"

    package static let missing = AuthError(
        status: .unauthorized, detail: "Authentication credentials were not provided.", reason: "no credentials",
        credentialsPresent: false)

    package static func invalid(_ detail: String, _ reason: String? = nil) -> AuthError {
        AuthError(status: .unauthorized, detail: detail, reason: reason ?? detail, credentialsPresent: true)
    }

    package static func keysUnavailable(_ reason: String) -> AuthError {
        AuthError(
            status: .serviceUnavailable, detail: "Signing keys are not available; try again later.", reason: reason,
            credentialsPresent: true)
    }

    /// A reload of the keys is in flight; `park` waits for it on the caller's loop.
    package static func keysReloading(_ park: @escaping @Sendable () async -> Void) -> AuthError {
        var error = keysUnavailable("signing keys reloading")
        error.parkUntilKeysReload = park
        return error
    }

    package static func == (one: AuthError, other: AuthError) -> Bool {
        (one.status, one.detail, one.reason, one.credentialsPresent, one.isBadSignature)
            == (other.status, other.detail, other.reason, other.credentialsPresent, other.isBadSignature)
    }

    /// The token's signature does not verify with the key its `kid` names.
    package static func badSignature(_ kid: KeyID) -> AuthError {
        var error = invalid("Invalid token signature.", "bad signature for kid \(kid)")
        error.isBadSignature = true
        return error
    }

    package static let malformed = invalid("Malformed token.")
    package static let badHeader = invalid(#"Invalid Authorization header: expected "Bearer <token>"."#)

    /// The answer: `{"detail": ...}`, with the RFC 6750 challenge on a 401.
    package var httpError: HTTPError {
        guard status == .unauthorized else { return HTTPError(status: status, detail: detail) }
        let challenge = credentialsPresent
            ? #"Bearer realm="\#(Self.realm)", error="invalid_token", error_description="\#(detail)""#
            : #"Bearer realm="\#(Self.realm)""#
        return HTTPError(status: status, detail: detail, headers: [("WWW-Authenticate", challenge)])
    }
}
