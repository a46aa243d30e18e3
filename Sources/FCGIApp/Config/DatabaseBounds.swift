import Stores

/// The database bounds every serving loop's sessions get, and whether nginx waits for them.
extension Config {
    /// The shipped nginx site's `fastcgi_read_timeout`: nginx answers 504 to a request whose
    /// answer has not begun by then, though the worker goes on and may commit it.
    static let nginxReadTimeoutSeconds = 30

    /// The statement bound the sessions get: at least the lock bound.
    var sessionStatementTimeoutSeconds: Int { max(statementTimeoutSeconds, lockTimeoutSeconds) }

    /// How long a request's waits for one of its loop's database connections may take, from
    /// its arrival, before it is answered 503 with nothing sent (`LoopDatabase.defaultWait`).
    var connectionWaitNanoseconds: Int64 { LoopDatabase.defaultWait.nanoseconds }

    /// The longest a request may wait on the database before it is answered: its waits for a
    /// connection, then a `POST` may wait for the shared statement in flight, then its own,
    /// then run again alone (a `PATCH` locks, then writes), each statement within
    /// `sessionStatementTimeoutSeconds`.
    var longestAnswerSeconds: Int { Int(LoopDatabase.defaultWait.components.seconds) + 3 * sessionStatementTimeoutSeconds }

    /// What to tell the operator when nginx would give up on an answer the worker may still
    /// send (and a write it may still commit): the line of the site to raise.
    var readTimeoutWarning: String? {
        guard longestAnswerSeconds > Self.nginxReadTimeoutSeconds else { return nil }
        return "with DATABASE_STATEMENT_TIMEOUT_SECONDS=\(statementTimeoutSeconds) and DATABASE_LOCK_TIMEOUT_SECONDS="
            + "\(lockTimeoutSeconds) a request may wait \(longestAnswerSeconds) s on the database, longer than the shipped nginx "
            + "site's fastcgi_read_timeout (\(Self.nginxReadTimeoutSeconds)s), after which nginx answers 504 although the write "
            + "may commit: raise it (\"fastcgi_read_timeout \(longestAnswerSeconds + 5)s;\" in location / of "
            + "/etc/nginx/sites-available/articles-fcgi) or lower the timeouts"
    }

    /// What every serving loop sets on its database sessions: the statement and lock bounds,
    /// the same bound on a transaction left idle, and generic plans (the worker's statements
    /// are few and prepared; an index scan for each saves planning each page query anew).
    var sessionSettings: [(name: String, value: String)] {
        [
            ("statement_timeout", "\(sessionStatementTimeoutSeconds)s"),
            ("lock_timeout", "\(lockTimeoutSeconds)s"),
            ("idle_in_transaction_session_timeout", "\(sessionStatementTimeoutSeconds)s"),
            ("plan_cache_mode", "force_generic_plan"),
        ]
    }
}
