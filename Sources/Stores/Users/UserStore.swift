import Auth
import PG

/// A row of `users` that a token maps to.
package struct User: Sendable, Equatable {
    package let id: Int64
    package let username: String
    package let isActive: Bool
    /// `tokens_valid_after` in whole seconds since 1970: tokens issued at or before it are refused.
    package var tokensValidAfter: Int64? = nil
    /// A machine client's row (sql/admin/create_client.sql), which only its tokens map to.
    package var isClient = false
}

/// Who is calling: the user a verified token maps to, and the token's claims.
package struct Caller {
    package let user: User
    package let claims: Claims
}

/// Maps verified tokens to users.
///
/// By `sub` first. Failing that, an ID token with a verified ASCII email binds its `sub` to the
/// row with that email (in any ASCII case) whose `cognito_sub` is still empty and which waits
/// for the token's pool (`create_user.sql`'s `pool_id`), in one statement, so the next request
/// maps by `sub`. A row bound to another `sub` never matches by
/// email; access tokens map by `sub` only. An address with other characters is never bound
/// automatically: `lower()` folds some of them onto ASCII letters (`İ` to `i`), so two distinct
/// addresses could meet.
package enum UserStore {
    /// The user's columns, and whether the token's sign-in session (parameter `session`) is
    /// revoked, for requests that cannot rely on the change feed's copy of the revocations.
    private static func columns(session: Int) -> String {
        """
        id, username, is_active, floor(extract(epoch FROM tokens_valid_after))::int8, \
        EXISTS (SELECT 1 FROM revoked_sessions WHERE origin_jti = $\(session)), is_client
        """
    }
    /// A user of pool `$3` (empty for the worker's own, whose rows have none) and sub `$1`;
    /// also the statement's snapshot, for the user cache (`ChangeLog.mayHaveMissed`).
    package static let bySub = PreparedStatement(
        name: "user_by_sub",
        sql: "SELECT \(columns(session: 2)), pg_current_snapshot()::text FROM users WHERE coalesce(pool_id, '') = $3 AND cognito_sub = $1")
    package static let bindByEmail = PreparedStatement(
        name: "user_bind_by_email",
        sql: """
            UPDATE users SET cognito_sub = $1
            WHERE lower(email) = $2 AND \(EmailAddress.asciiFoldedSQL("email")) = $2 AND cognito_sub IS NULL
              AND coalesce(pool_id, '') = $4
            RETURNING \(columns(session: 3))
            """)

    /// A new user bound to a `sub`, the one way both first use (`AUTO_PROVISION_USERS`) and
    /// provisioning make one: nothing when a row holds the `sub` already (a request at the same
    /// moment made it); a unique violation when another row holds the username
    /// (`users_username_key`) or the email (`users_email_key`).
    package static let create = PreparedStatement(
        name: "user_create",
        sql: """
            INSERT INTO users (username, email, cognito_sub, pool_id) VALUES ($1, $2, $3, nullif($4, ''))
            ON CONFLICT ((coalesce(pool_id, '')), cognito_sub) DO NOTHING RETURNING id, username, email
            """)

    /// The user a token maps to, and whether its sign-in session is revoked in the table.
    package struct Match {
        package let user: User
        package let sessionRevoked: Bool
        /// The snapshot it was read in, for a plain read (not for a binding or a new row).
        package let snapshot: Snapshot?
    }

    /// With `autoProvision` (`AUTO_PROVISION_USERS`), an ID token with a verified email that
    /// matches no row creates one (username from `cognito:username`). Two first requests at
    /// once create one row: the second's insert does nothing (or fails on the email, once the
    /// first committed), and it finds the first's row.
    package static func user(for claims: Claims, in db: any Database, autoProvision: Bool = false) async throws(PGError) -> Match? {
        let session = claims.originJTI
        if let match = try await first(db.query(bySub, claims.sub, session, claims.poolKey)) { return match }
        guard claims.tokenUse == .id, claims.emailVerified, let email = claims.email else { return nil }
        if let folded = EmailAddress.asciiFolded(email),
            let match = try await first(db.query(bindByEmail, claims.sub, folded, session, claims.poolKey))
        {
            return match
        }
        if autoProvision, let username = claims.username {
            do {
                try await db.query(create, username, email, claims.sub, claims.poolKey)
            } catch let error where error.sqlState == .uniqueViolation {
                // A row holds this username or email: for another sub (then there is none), or
                // for this one, made by another request a moment ago.
            }
        }
        // The row made just now, or bound or made by another request a moment ago.
        return try await first(db.query(bySub, claims.sub, session, claims.poolKey))
    }

    private static func first(_ rows: QueryResult) throws(PGError) -> Match? {
        guard let row = rows.first else { return nil }
        let user = User(
            id: try row.decode(Int64.self, at: 0), username: try row.decode(String.self, at: 1),
            isActive: try row.decode(Bool.self, at: 2), tokensValidAfter: try row.decode(Int64?.self, at: 3),
            isClient: try row.decode(Bool.self, at: 5))
        let snapshot = rows.columnCount > 6 ? try row.decode(Snapshot?.self, at: 6) : nil
        return Match(user: user, sessionRevoked: try row.decode(Bool.self, at: 4), snapshot: snapshot)
    }
}

/// Email addresses as the worker compares them when it binds a row: ASCII letters in any case
/// are the same; an address with any other character matches nothing.
package enum EmailAddress {
    /// The address with A-Z as a-z, or nil when it holds a character outside ASCII.
    package static func asciiFolded(_ address: String) -> String? {
        guard address.utf8.allSatisfy({ $0 < 0x80 }) else { return nil }
        return String(decoding: address.utf8.map { (0x41...0x5a).contains($0) ? $0 | 0x20 : $0 }, as: UTF8.self)
    }

    /// The same folding in SQL, of `column`: A-Z become a-z, and nothing else changes.
    package static func asciiFoldedSQL(_ column: String) -> String {
        "translate(\(column), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"
    }
}
