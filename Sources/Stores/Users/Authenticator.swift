import Auth
import HTTP
import PG

/// Who a request comes from, on one serving loop: the token verified (through the loop's own
/// cache of recent tokens in front of the shared one), then mapped to an active user whose
/// tokens of that sign-in are not revoked. The database is touched only for a token that passed
/// every check. Reads may take the user from the loop's cache, when the caches are current;
/// writes, which query the database anyway, read the user too rather than wait for the feed.
package final class Authenticator {
    package let verifier: TokenVerifier
    /// `AUTO_PROVISION_USERS`.
    package let autoProvision: Bool
    private let recentTokens = TokenCache.Recent()
    private let revoked: FeedState<Set<String>>.View

    package init(verifier: TokenVerifier, revoked: RevokedSessions, autoProvision: Bool) {
        self.verifier = verifier
        self.autoProvision = autoProvision
        self.revoked = .init(revoked)
    }

    /// The request's verified claims. A request that meets a reload of the keys in flight is
    /// parked in its loop until the reload ends (a second at most), then verified again.
    package func claims(_ request: Request) async throws(AuthError) -> Claims {
        do {
            return try verifier.verify(authorization: request.header("authorization"), recent: recentTokens)
        } catch {
            guard let park = error.parkUntilKeysReload else { throw error }
            await park()
            // The reload ended or its time is up: what is loaded answers, without a second park.
            return try KeyStore.$mayPark.withValue(false) {
                Result { () throws(AuthError) in try verifier.verify(authorization: request.header("authorization"), recent: recentTokens) }
            }.get()
        }
    }

    /// The active user verified `claims` map to, on `db`, or from `caches` when the request may
    /// use them (decided by the caller).
    package func caller(_ claims: Claims, db: any Database, caches: LoopCaches?) async throws -> Caller {
        func load() async throws -> UserStore.Match? { try await UserStore.user(for: claims, in: db, autoProvision: autoProvision) }
        let found: User?
        var sessionRevoked: Bool
        if let caches {
            sessionRevoked = claims.originJTI.map(revoked.value.contains) ?? false
            found = sessionRevoked ? nil : try await caches.users.user(for: claims.principal) {
                // A user looked up now: what the database says of the session counts too, and a
                // session it says is revoked keeps the user out of the cache, so the next request
                // asks the database again.
                guard let match = try await load() else { return nil }
                sessionRevoked = match.sessionRevoked
                return (match.user, !match.sessionRevoked && caches.mayKeep(match.snapshot))
            }
        } else {
            let match = try await load()
            (found, sessionRevoked) = (match?.user, match?.sessionRevoked ?? false)
        }
        if sessionRevoked {
            throw AuthError.invalid("Token has been revoked.", "sign-in session revoked (sub \(claims.sub))")
        }
        // A machine client's token maps to its registered client only, a user's to a user only.
        guard let user = found, user.isClient == claims.isMachineClient else {
            if claims.isMachineClient {
                throw AuthError.invalid(
                    "No machine client is registered for this token's client id.", "no client registered for \(claims.sub)")
            }
            throw AuthError.invalid("No user matches this token.", "no user for sub \(claims.sub)")
        }
        guard user.isActive else {
            throw AuthError.invalid("User is inactive.", "user \(user.username) is inactive (sub \(claims.sub))")
        }
        // Revoked up to a moment, in whole seconds: a token of a sign-in in that second is refused
        // too. The sign-in, not the token's iat: a refresh mints new tokens of the same sign-in.
        if let after = user.tokensValidAfter, (claims.signedInSecond ?? .min) <= after {
            throw AuthError.invalid("Token has been revoked.", "sign-ins of user \(user.username) up to \(after) revoked")
        }
        return Caller(user: user, claims: claims)
    }
}
