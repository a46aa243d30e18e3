-- Reactivates a user deactivated with deactivate_user.sql: their tokens are accepted again.
--
--   psql "$ADMIN_URL" -v username=alice -f sql/admin/reactivate_user.sql
\ir lib/settings.psql
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
UPDATE users SET is_active = true WHERE username = :'username'
RETURNING format('reactivated user %s (id %s)', username, id);
COMMIT;
