/// A user pool trusted beside the worker's own: the rules its tokens are checked by (its
/// issuers, app clients and token kinds) and its signing keys.
struct TrustedPool: Sendable {
    let config: CognitoConfig
    let keys: KeyStore
}

/// The pools trusted beside the worker's own (`trusted_pools`), as the verifier asks for them:
/// by a token's issuer, and by id for a token verified before (a pool no longer trusted is
/// nil, so its cached verifications are refused too).
protocol PoolDirectory: Sendable {
    func pool(issuer: String) -> TrustedPool?
    func pool(id: String) -> TrustedPool?
}
