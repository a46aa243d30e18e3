/// What the worker uses of a verified token.
package struct Claims: Sendable, Equatable {
    package var sub: String
    package var tokenUse: CognitoConfig.TokenUse
    package var email: String?
    /// `email_verified` is `true` or `"true"`.
    package var emailVerified: Bool
    /// `cognito:username` (ID tokens) or `username` (access tokens).
    package var username: String?
    /// `cognito:groups`.
    package var groups: [String]
    /// An access token's `scope` (space-separated); empty for ID tokens.
    package var scopes: Set<String> = []
    /// The app client the token was issued for (`aud` or `client_id`).
    package var clientID: String? = nil
    /// The trusted pool that issued the token (`trusted_pools`); nil for the worker's own.
    package var poolID: String? = nil
    /// The principal: a pool and a `sub` (the same `sub` in two pools is two principals).
    package var principal: String { poolID.map { "\($0) \(sub)" } ?? sub }
    /// The pool as the `users` table keys it.
    package var poolKey: String { Self.poolKey(poolID) }
    /// A trusted pool as the `users` table keys it: empty for the worker's own (nil).
    package static func poolKey(_ poolID: String?) -> String { poolID ?? "" }
    /// `exp`, in seconds since 1970.
    package var expiresAt: Double
    /// `iat`, in seconds since 1970.
    package var issuedAt: Double? = nil
    /// `auth_time`: when the user signed in, in seconds since 1970. Tokens minted from a refresh
    /// token keep the sign-in's `auth_time` with a new `iat`.
    package var authenticatedAt: Double? = nil
    /// When the sign-in the token comes from happened, in whole seconds since 1970: `auth_time`,
    /// or `iat` without it. What a revocation of the user's tokens (`tokens_valid_after`, also
    /// in whole seconds) is compared with.
    package var signedInSecond: Int64? { (authenticatedAt ?? issuedAt).map { Int64($0.rounded(.down)) } }
    /// `origin_jti`: the sign-in session the token comes from.
    package var originJTI: String? = nil

    /// A machine client's token (the client-credentials grant): an access token with no
    /// `username` whose `sub` is its `client_id`.
    package var isMachineClient: Bool { tokenUse == .access && username == nil && clientID == sub }
}
