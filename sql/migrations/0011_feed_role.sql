-- The change feed connects as a role of its own, articles_feed: logical replication of this
-- database's publication, and the one table it loads when it (re)connects. The serving role,
-- articles_app, loses the REPLICATION attribute migration 0009 gave it: with it, the password
-- every worker host holds could copy the whole cluster (pg_basebackup: every database and
-- every role's password hash) wherever pg_hba.conf allows a physical replication connection.
-- A REPLICATION role can always do that, so pg_hba.conf must refuse articles_feed physical
-- replication (docs/operations.md: logical replication matches lines by database name, not
-- by the "replication" keyword), and `articles-fcgi check-config --database` checks it.
--
-- Creating the role needs CREATEROLE, and giving or taking the attribute a superuser (on
-- managed services: GRANT rds_replication TO articles_feed on Amazon RDS and Aurora; ALTER ROLE
-- ... REPLICATION as the service's admin role on Cloud SQL and Azure); without them the
-- migration warns, and the workers serve without caches until an administrator does it. Give
-- the role a password if the server asks for one (ALTER ROLE articles_feed PASSWORD '...').
DO $$
DECLARE
  superuser boolean := (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'articles_feed') THEN
    IF superuser THEN
      CREATE ROLE articles_feed LOGIN REPLICATION;
    ELSE
      CREATE ROLE articles_feed LOGIN;
    END IF;
  END IF;
  IF NOT (SELECT rolreplication FROM pg_roles WHERE rolname = 'articles_feed') THEN
    IF superuser THEN
      ALTER ROLE articles_feed REPLICATION;
    ELSE
      RAISE WARNING 'articles_feed lacks the REPLICATION attribute: the workers serve without caches until an administrator gives it (see docs/operations.md)';
    END IF;
  END IF;
  IF (SELECT rolreplication FROM pg_roles WHERE rolname = 'articles_app') THEN
    IF superuser THEN
      ALTER ROLE articles_app NOREPLICATION;
    ELSE
      RAISE WARNING 'articles_app has the REPLICATION attribute, with which it can copy the whole cluster: take it away (ALTER ROLE articles_app NOREPLICATION)';
    END IF;
  END IF;
EXCEPTION
  -- Roles belong to the whole cluster: another database's migration created or changed the
  -- role at the same moment ("tuple concurrently updated", or a duplicate), to the same end.
  WHEN duplicate_object OR unique_violation THEN NULL;
  WHEN internal_error THEN
    IF SQLERRM <> 'tuple concurrently updated' THEN RAISE; END IF;
END
$$;

GRANT SELECT ON revoked_sessions TO articles_feed;
