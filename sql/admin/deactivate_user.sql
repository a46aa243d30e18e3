-- Deactivates a user: the worker refuses their tokens from the next request on. Their articles
-- stay.
--
--   psql "$ADMIN_DATABASE_URL" -v username=alice -f sql/admin/deactivate_user.sql
\set ON_ERROR_STOP on
\set VERBOSITY terse
\set QUIET on
\pset tuples_only on
\pset format unaligned
\if :{?username}
\else
\set username ''
\endif

BEGIN;
SELECT set_config('articles_admin.username', :'username', true) \gset articles_admin_
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM users WHERE username = current_setting('articles_admin.username')) THEN
    RAISE EXCEPTION 'no user named "%"', current_setting('articles_admin.username');
  END IF;
END
$$;
UPDATE users SET is_active = false WHERE username = :'username'
RETURNING format('deactivated user %s (id %s)', username, id);
COMMIT;
