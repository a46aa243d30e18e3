-- The workers follow changes to the tables they cache through logical decoding of the WAL
-- (the built-in pgoutput plugin reading this publication from a temporary replication slot),
-- instead of the notifications of migrations 0005, 0006 and 0008: a transaction that notifies
-- holds a database-wide lock through its commit, so notifying writers could not share a WAL
-- flush. Decoding costs writers nothing at commit, and sees psql's changes as well.
DROP TRIGGER users_notify_change ON users;
DROP FUNCTION users_notify_change();
DROP TRIGGER articles_notify_change ON articles;
DROP TRIGGER revoked_sessions_notify_change ON revoked_sessions;
DROP FUNCTION notify_channel();

CREATE PUBLICATION articles_fcgi FOR TABLE users, articles, revoked_sessions;

-- Streaming a slot needs the REPLICATION attribute, which only a superuser may give (on managed
-- services: GRANT rds_replication TO articles_app on Amazon RDS and Aurora; ALTER ROLE ...
-- REPLICATION as the service's admin role on Cloud SQL and Azure). The server also needs
-- wal_level = logical. `articles-fcgi check-config` says what is missing.
DO $$
BEGIN
  IF (SELECT rolreplication FROM pg_roles WHERE rolname = 'articles_app') THEN
    NULL;
  ELSIF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    ALTER ROLE articles_app REPLICATION;
  ELSE
    RAISE WARNING 'articles_app lacks the REPLICATION attribute: the workers serve without caches until an administrator gives it (see the README)';
  END IF;
EXCEPTION
  -- Roles belong to the whole cluster: another database's migration changed the role at the
  -- same moment ("tuple concurrently updated"), giving it the attribute.
  WHEN internal_error THEN
    IF SQLERRM <> 'tuple concurrently updated' THEN RAISE; END IF;
END
$$;
