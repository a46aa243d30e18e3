/// A user pool trusted beside the worker's own: the rules its tokens are checked by (its
/// issuers, app clients and token kinds) and its signing keys.
package struct TrustedPool: Sendable {
    package let config: CognitoConfig
    package let keys: KeyStore

    package init(config: CognitoConfig, keys: KeyStore) {
        self.config = config
        self.keys = keys
    }
}

/// The pools trusted beside the worker's own (`trusted_pools`), as the verifier asks for them:
/// by a token's issuer, and by id for a token verified before (a pool no longer trusted is
/// nil, so its cached verifications are refused too).
package protocol PoolDirectory: Sendable {
    func pool(issuer: String) -> TrustedPool?
    func pool(id: String) -> TrustedPool?
}
