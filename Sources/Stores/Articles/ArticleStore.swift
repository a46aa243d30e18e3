import Auth
import PG

/// The articles table, through prepared statements. Every change is one statement, or one
/// transaction that locks the row it checks.
package enum ArticleStore {
    /// The columns of an `Article` and its owner's id, from `a` (articles) and `u` (users).
    /// Times leave as UTC `timestamp` text, which `UTCTimestamp` turns into RFC 3339 (cheaper
    /// than `to_char`).
    private static let columns = """
        a.id, a.name, u.username AS owner, a.created_at AT TIME ZONE 'UTC' AS created_at, \
        a.updated_at AT TIME ZONE 'UTC' AS updated_at, a.owner_id
        """

    /// Reads for the caches also return the statement's snapshot (`ChangeLog.mayHaveMissed`):
    /// a page as one row per article, or one row of NULLs when there is none.
    package static let page = PreparedStatement(
        name: "articles_page",
        sql: """
            SELECT pg_current_snapshot()::text, p.* FROM (SELECT) AS one LEFT JOIN LATERAL (
              SELECT \(columns) FROM articles a JOIN users u ON u.id = a.owner_id WHERE a.id > $1 ORDER BY a.id LIMIT $2
            ) p ON true
            """)
    package static let one = PreparedStatement(
        name: "articles_one",
        sql: "SELECT pg_current_snapshot()::text, \(columns) FROM articles a JOIN users u ON u.id = a.owner_id WHERE a.id = $1")
    package static let lockOne = PreparedStatement(
        name: "articles_lock_one",
        sql: "SELECT \(columns) FROM articles a JOIN users u ON u.id = a.owner_id WHERE a.id = $1 FOR UPDATE OF a")
    package static let create = PreparedStatement(
        name: "articles_create",
        sql: """
            WITH a AS (INSERT INTO articles (name, owner_id) VALUES ($1, $2) RETURNING *)
            SELECT \(columns) FROM a JOIN users u ON u.id = a.owner_id
            """)
    /// An article by the user a token maps to, in one statement, if that user is bound to the
    /// token's `sub` ($2), active, not signed out since the token's sign-in ($3, whole seconds),
    /// its sign-in session ($4) is not revoked, and it is a machine client exactly when the
    /// token is one ($5), of the token's pool ($6, empty for the worker's own); no row otherwise. The insert's foreign key
    /// takes a key-share lock on the user's row, waiting (within the lock bound) while another
    /// session holds it (a deletion, a rename, a psql `FOR UPDATE`).
    package static let createAsUser = PreparedStatement(name: "articles_create_as_user", sql: createAsUserSQL(unlessLocked: false))
    /// `createAsUser`, but no row, at once, when another session holds the user's row: the
    /// shared statement's, which must not make other users' requests wait for that lock.
    package static let createAsUserUnlessLocked = PreparedStatement(
        name: "articles_create_as_user_unless_locked", sql: createAsUserSQL(unlessLocked: true))
    private static func createAsUserSQL(unlessLocked: Bool) -> String {
        """
        WITH u AS (
          SELECT id, username FROM users
          WHERE coalesce(pool_id, '') = $6 AND cognito_sub = $2
            AND \(mayAct("users", client: "$5", signedIn: "$3", session: "$4"))\(unlessLocked ? "\n  FOR KEY SHARE SKIP LOCKED" : "")
        ), a AS (INSERT INTO articles (name, owner_id) SELECT $1, id FROM u RETURNING *)
        SELECT \(columns) FROM a JOIN u ON u.id = a.owner_id
        """
    }
    /// `createAsUserUnlessLocked` for several tokens' articles at once ($1 names, $2 subs, $3
    /// sign-ins, $4 sign-in sessions, $5 machine clients, $6 pools, as arrays): a row, numbered by its place in the arrays
    /// (from 1), for each article whose user may write and whose row no other session holds.
    /// Rows of equal name and owner are matched in order (they differ only in id, so either
    /// match is right).
    package static let createManyAsUsers = PreparedStatement(
        name: "articles_create_many_as_users",
        sql: """
            WITH input AS (
              SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::bool[], $6::text[])
                WITH ORDINALITY AS i (name, sub, signed_in, origin_jti, client, pool, n)
            ), u AS (
              SELECT i.n, i.name, users.id, users.username FROM input i
              JOIN users ON coalesce(users.pool_id, '') = i.pool AND users.cognito_sub = i.sub
              WHERE \(mayAct("users", client: "i.client", signedIn: "i.signed_in", session: "i.origin_jti"))
              FOR KEY SHARE OF users SKIP LOCKED
            ), a AS (INSERT INTO articles (name, owner_id) SELECT name, id FROM u ORDER BY n RETURNING *)
            SELECT u.n, \(columns)
            FROM (SELECT *, row_number() OVER (PARTITION BY name, owner_id ORDER BY id) AS k FROM a) a
            JOIN (SELECT *, row_number() OVER (PARTITION BY name, id ORDER BY n) AS k FROM u) u
              ON u.name = a.name AND u.id = a.owner_id AND u.k = a.k
            """)
    /// Whether the row `user` of `users` may act for a token (a machine client's when `client`),
    /// in SQL: active, a machine client exactly when the token is one, not signed out since the
    /// token's sign-in (`signedIn`, whole seconds), and the sign-in session (`session`) not
    /// revoked. Both create statements use it; `Authenticator.caller` decides the same from a
    /// row, or from the caches, and says which part failed.
    private static func mayAct(_ user: String, client: String, signedIn: String, session: String) -> String {
        """
        \(user).is_active AND \(user).is_client = \(client) \
        AND (\(user).tokens_valid_after IS NULL OR floor(extract(epoch FROM \(user).tokens_valid_after))::int8 < \(signedIn)) \
        AND NOT EXISTS (SELECT 1 FROM revoked_sessions WHERE origin_jti = \(session))
        """
    }

    package static let rename = PreparedStatement(
        name: "articles_rename",
        sql: """
            WITH a AS (UPDATE articles SET name = $2 WHERE id = $1 RETURNING *)
            SELECT \(columns) FROM a JOIN users u ON u.id = a.owner_id
            """)
    package static let delete = PreparedStatement(name: "articles_delete", sql: "DELETE FROM articles WHERE id = $1")

    /// An article and its owner's id.
    package struct Owned {
        package let article: Article
        package let ownerID: Int64

        package init(article: Article, ownerID: Int64) {
            self.article = article
            self.ownerID = ownerID
        }
    }

    /// Up to `limit` articles with ids above `after`, in id order, and the snapshot they were read in.
    package static func page(after: Int64, limit: Int, in db: any Database) async throws(PGError) -> (articles: [Owned], snapshot: Snapshot?) {
        let rows = try await db.query(page, after, limit)
        return (try articles(rows, first: 1), try rows.first?.decode(Snapshot.self, at: 0))
    }

    /// The article, and the snapshot it was read in.
    package static func find(_ id: Int64, in db: any Database) async throws(PGError) -> (article: Owned, snapshot: Snapshot)? {
        let rows = try await db.query(one, id)
        guard let article = try articles(rows, first: 1).first else { return nil }
        return (article, try rows[0].decode(Snapshot.self, at: 0))
    }

    package static func create(name: String, owner: User, in db: any Database) async throws(PGError) -> Article {
        try await articles(db.query(create, name, owner.id))[0].article
    }

    /// The new article, if the token's user may write (see `createAsUser`); nil when the caller
    /// must be looked up (to bind, or to learn why not), or with `unlessLocked` also when
    /// another session holds the user's row.
    package static func create(name: String, asUserOf claims: Claims, unlessLocked: Bool = false, in db: any Database) async throws(PGError) -> Owned? {
        try await articles(db.query(
            unlessLocked ? createAsUserUnlessLocked : createAsUser, name, claims.sub, claims.signedInSecond, claims.originJTI,
            claims.isMachineClient, claims.poolKey)).first
    }

    /// `create(name:asUserOf:unlessLocked: true, in:)` for several, in one statement: for each,
    /// in order, the new article or nil.
    package static func create(_ names: [String], asUsersOf claims: [Claims], in db: any Database) async throws(PGError) -> [Owned?] {
        let rows = try await db.query(
            createManyAsUsers, names, claims.map(\.sub), claims.map(\.signedInSecond),
            claims.map(\.originJTI), claims.map(\.isMachineClient), claims.map(\.poolKey))
        var created = [Owned?](repeating: nil, count: names.count)
        for (row, article) in zip(rows, try articles(rows, first: 1)) {
            let place = try row.decode(Int64.self, at: 0)
            guard (1...Int64(names.count)).contains(place) else {
                throw PGError(kind: .client, message: "articles_create_many_as_users returned place \(place) of \(names.count)")
            }
            created[Int(place) - 1] = article
        }
        return created
    }

    /// The article, locked until the transaction ends.
    package static func lock(_ id: Int64, in db: any Database) async throws(PGError) -> Owned? {
        try await articles(db.query(lockOne, id)).first
    }

    package static func rename(_ id: Int64, to name: String, in db: any Database) async throws(PGError) -> Article {
        try await articles(db.query(rename, id, name))[0].article
    }

    package static func delete(_ id: Int64, in db: any Database) async throws(PGError) {
        try await db.query(delete, id)
    }

    /// Reads the `columns` above by position, from `first` on; a row whose id is NULL is none.
    private static func articles(_ rows: QueryResult, first: Int = 0) throws(PGError) -> [Owned] {
        var articles: [Owned] = []
        articles.reserveCapacity(rows.count)
        for row in rows {
            guard let id = try row.decode(Int64?.self, at: first) else { continue }
            let article = Article(
                id: id, name: try row.decode(String.self, at: first + 1), owner: try row.decode(String.self, at: first + 2),
                createdAt: try row.decode(UTCTimestamp.self, at: first + 3).rfc3339,
                updatedAt: try row.decode(UTCTimestamp.self, at: first + 4).rfc3339)
            articles.append(Owned(article: article, ownerID: try row.decode(Int64.self, at: first + 5)))
        }
        return articles
    }
}
