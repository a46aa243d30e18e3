import FoundationEssentials
import JSON
import Observability
import Support

/// Accepts exactly the tokens the configured Cognito user pool, or a pool trusted beside it
/// (`pools`), issued for its app clients: compact JWS, RS256 by a key of that pool's JWKS, one
/// of the pool's issuers, an accepted `token_use`, one of the client ids, and `exp`/`iat`/`nbf`
/// within the leeway. Every claim is checked at its JSON type, after a strict parse (no
/// duplicate members, valid UTF-8).
package final class TokenVerifier: Sendable {
    /// Cognito tokens are a few KB; anything longer is refused before any decoding.
    package static let maxTokenBytes = 16 * 1024

    package let config: CognitoConfig
    package let keys: KeyStore
    package let cache: TokenCache
    /// The pools trusted beside the configured one.
    package let pools: (any PoolDirectory)?
    private let clock: @Sendable () -> Double

    private let metrics: Metrics?

    package init(config: CognitoConfig, keys: KeyStore, pools: (any PoolDirectory)? = nil, cache: TokenCache = TokenCache(),
         metrics: Metrics? = nil, clock: @escaping @Sendable () -> Double = wallSeconds) {
        self.config = config
        self.keys = keys
        self.pools = pools
        self.cache = cache
        self.metrics = metrics
        self.clock = clock
    }

    /// The claims of the token in an `Authorization` header value: `Bearer <jwt>` (the scheme
    /// in any case, one space) or a bare `<jwt>`. `recent`, the calling loop's own cache, is
    /// looked in before the shared one, without a lock.
    package func verify(authorization: String?, recent: TokenCache.Recent? = nil) throws(AuthError) -> Claims {
        guard let authorization, !authorization.isEmpty else { throw .missing }
        let token = try Self.token(fromAuthorization: authorization)
        let now = clock()
        switch recent?[token] {
        case .verified(let cached):
            if let claims = try accept(cached, now: now) {
                metrics?.tokenCacheHits.increment()
                return claims
            }
            recent?[token] = nil
        case .forged(let error, let keys, let keySetGeneration) where keySetGeneration == keys.generation:
            // Refused again without RS256, for as long as the keys are the same.
            throw error
        case .forged, nil:
            break
        }
        if let cached = cache.entry(for: token) {
            if let claims = try accept(cached, now: now) {
                metrics?.tokenCacheHits.increment()
                recent?[token] = .verified(cached)
                return claims
            }
            cache.remove(token)
        }
        metrics?.tokenCacheMisses.increment()
        let entry: TokenCache.Entry
        var checked: (keys: KeyStore, generation: Int)?
        do {
            entry = try verifySignedToken(token, now: now, checked: &checked)
        } catch where error.isBadSignature {
            if let checked { recent?[token] = .forged(error, keys: checked.keys, keySetGeneration: checked.generation) }
            throw error
        }
        cache.insert(entry, for: token, now: now, leeway: Double(config.leewaySeconds))
        recent?[token] = .verified(entry)
        return entry.claims
    }

    /// The claims of a cached token whose pool is still trusted, still for the token's app
    /// client and kind (`trust_pool.sql` may have narrowed them), and whose key is still in the
    /// very key set that verified it (nil when not), once its expiry is checked again.
    private func accept(_ cached: TokenCache.Entry, now: Double) throws(AuthError) -> Claims? {
        let claims = cached.claims
        let pool: TrustedPool
        if let poolID = claims.poolID {
            guard let trusted = pools?.pool(id: poolID) else { return nil }
            pool = trusted
        } else {
            pool = TrustedPool(config: config, keys: keys)
        }
        guard pool.config.tokenUses.contains(claims.tokenUse), let client = claims.clientID, pool.config.clientIDs.contains(client)
        else { return nil }
        // An unchanged key set still holds the key (no lock taken on this path); generations
        // are unique across key stores, so a store made anew never matches an old entry.
        guard cached.keySetGeneration == pool.keys.generation || pool.keys.current?[cached.kid] === cached.key else { return nil }
        try checkTimes(expiresAt: claims.expiresAt, issuedAt: nil, notBefore: nil, now: now)
        return claims
    }

    package static func token(fromAuthorization value: String) throws(AuthError) -> String {
        var token = Substring(value)
        if value.utf8.count >= 6, value.utf8.prefix(6).lazy.map({ $0 | 0x20 }).elementsEqual("bearer".utf8) {
            let rest = value.utf8.dropFirst(6)
            if rest.isEmpty { throw .invalid("No token after \"Bearer\".") }
            if rest.first == UInt8(ascii: " ") { token = Substring(rest.dropFirst()) }
        }
        guard token.utf8.count <= maxTokenBytes else { throw .invalid("Token is too large.") }
        // Compact JWS is base64url and dots only: this refuses other schemes, extra spaces
        // or tabs, several tokens and trailing text alike.
        // Over the contiguous bytes where the text has them (it always has, from a request): a
        // scan of a thousand bytes through the string's index type showed in profiles.
        let valid = token.utf8.withContiguousStorageIfAvailable { $0.allSatisfy(isTokenCharacter) }
            ?? token.utf8.allSatisfy(isTokenCharacter)
        guard !token.isEmpty, valid else { throw .badHeader }
        return String(token)
    }

    private static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."):
            true
        default:
            false
        }
    }

    /// The cache entry of a token whose signature and claims hold. `checked` is set to the
    /// issuing pool's keys and their generation, read before the key is looked up (a reload in
    /// between only costs later hits a lookup).
    private func verifySignedToken(
        _ token: String, now: Double, checked: inout (keys: KeyStore, generation: Int)?
    ) throws(AuthError) -> TokenCache.Entry {
        let bytes = Array(token.utf8)
        let segments = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard segments.count == 3, !segments[0].isEmpty, !segments[1].isEmpty else { throw .malformed }
        let header = try Self.jsonObject(segments[0])
        let payload = try Self.jsonObject(segments[1])

        guard let alg = header["alg"] else { throw .malformed }
        guard alg.string == "RS256" else { throw .invalid("Unsupported token algorithm.", "alg \(alg)") }
        guard header["crit"] == nil else { throw .invalid("Unsupported token header.", "crit header") }
        guard let kidText = header["kid"]?.string else { throw .invalid("Malformed token.", "no kid") }
        guard let signature = Base64URL.decode(segments[2]), !signature.isEmpty else {
            throw .invalid("Invalid token signature.", "signature is not base64url")
        }
        let kid = KeyID(kidText)
        // The pool that issued it: the configured one, or one trusted beside it.
        let issuer = payload["iss"]?.string ?? ""
        var pool = TrustedPool(config: config, keys: keys)
        var poolID: String?
        if !config.acceptedIssuers.contains(issuer), let trusted = pools?.pool(issuer: issuer) {
            (pool, poolID) = (trusted, trusted.config.poolID)
        }
        let generation = pool.keys.generation
        checked = (pool.keys, generation)
        let key = try pool.keys.key(for: kid)
        let signed = bytes.count - segments[2].count - 1
        let verified = bytes.withUnsafeBytes { key.verifyRS256(signature: signature, message: UnsafeRawBufferPointer(rebasing: $0.prefix(signed))) }
        guard verified else { throw .badSignature(kid) }
        var claims = try claims(payload, now: now, config: pool.config)
        claims.poolID = poolID
        return TokenCache.Entry(claims: claims, kid: kid, key: key, keySetGeneration: generation)
    }

    private static func jsonObject(_ segment: ArraySlice<UInt8>) throws(AuthError) -> [String: JSONValue] {
        guard let decoded = Base64URL.decode(segment) else { throw .invalid("Malformed token.", "segment is not base64url") }
        do {
            guard let object = try StrictJSON.parse(decoded).object else { throw AuthError.malformed }
            return object
        } catch let error as JSONError {
            throw .invalid("Malformed token.", "segment is not strict JSON: \(error)")
        } catch {
            throw .malformed
        }
    }

    /// The claims, checked by the rules of the pool `config` describes.
    private func claims(_ payload: [String: JSONValue], now: Double, config: CognitoConfig) throws(AuthError) -> Claims {
        func string(_ name: String) throws(AuthError) -> String? {
            guard let value = payload[name] else { return nil }
            guard let text = value.string else { throw .invalid("Malformed token claims.", "\(name) is not a string") }
            return text
        }
        func number(_ name: String) throws(AuthError) -> Double? {
            guard let value = payload[name] else { return nil }
            guard let number = value.number else { throw .invalid("Malformed token claims.", "\(name) is not a number") }
            return number
        }
        guard let expiresAt = try number("exp") else { throw .invalid("Malformed token claims.", "no exp") }
        let issuedAt = try number("iat")
        let notBefore = try number("nbf")
        let authenticatedAt = try number("auth_time")
        guard let issuer = try string("iss"), config.acceptedIssuers.contains(issuer) else {
            throw .invalid("Token was not issued by this user pool.", "iss \(payload["iss"].map { "\($0)" } ?? "missing")")
        }
        guard let use = try string("token_use").flatMap(CognitoConfig.TokenUse.init(rawValue:)),
            config.tokenUses.contains(use)
        else {
            throw .invalid("Tokens of this kind are not accepted.", "token_use \(payload["token_use"].map { "\($0)" } ?? "missing")")
        }
        let client = try string(use == .id ? "aud" : "client_id")
        guard let client, config.clientIDs.contains(client) else {
            throw .invalid("Token was not issued for this client.", "\(use == .id ? "aud" : "client_id") \(client ?? "missing")")
        }
        guard let sub = try string("sub"), !sub.isEmpty else { throw .invalid("Malformed token claims.", "no sub") }
        try checkTimes(expiresAt: expiresAt, issuedAt: issuedAt, notBefore: notBefore, now: now)
        var groups: [String] = []
        if let value = payload["cognito:groups"] {
            guard case .array(let items) = value, items.allSatisfy({ $0.string != nil }) else {
                throw .invalid("Malformed token claims.", "cognito:groups is not an array of strings")
            }
            groups = items.compactMap(\.string)
        }
        let verified = payload["email_verified"] == .bool(true) || payload["email_verified"] == .string("true")
        // Checked whatever the token's kind; only an access token's scopes grant anything.
        let scopes = try string("scope").map { Set($0.split(separator: " ").map(String.init)) } ?? []
        return Claims(
            sub: sub, tokenUse: use, email: try string("email"), emailVerified: verified,
            username: try string(use == .id ? "cognito:username" : "username"), groups: groups,
            scopes: use == .access ? scopes : [], clientID: client, expiresAt: expiresAt, issuedAt: issuedAt,
            authenticatedAt: authenticatedAt, originJTI: try string("origin_jti"))
    }

    private func checkTimes(expiresAt: Double, issuedAt: Double?, notBefore: Double?, now: Double) throws(AuthError) {
        let leeway = Double(config.leewaySeconds)
        guard now < expiresAt + leeway else { throw .invalid("Token has expired.") }
        if let issuedAt, issuedAt > now + leeway { throw .invalid("Token was issued in the future.") }
        if let notBefore, notBefore > now + leeway { throw .invalid("Token is not valid yet.") }
    }
}
