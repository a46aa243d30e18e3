/// What the worker uses of a verified token.
struct Claims: Sendable, Equatable {
    var sub: String
    var tokenUse: CognitoConfig.TokenUse
    var email: String?
    /// `email_verified` is `true` or `"true"`.
    var emailVerified: Bool
    /// `cognito:username` (ID tokens) or `username` (access tokens).
    var username: String?
    /// `cognito:groups`.
    var groups: [String]
    /// `exp`, in seconds since 1970.
    var expiresAt: Double
    /// `iat`, in seconds since 1970.
    var issuedAt: Double? = nil
    /// `origin_jti`: the sign-in session the token comes from.
    var originJTI: String? = nil
}
