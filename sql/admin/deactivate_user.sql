-- Deactivates a user: the worker refuses their tokens from the next request on. Their articles
-- stay.
--
--   psql "$ADMIN_URL" -v username=alice -f sql/admin/deactivate_user.sql
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
UPDATE users SET is_active = false WHERE username = :'username'
RETURNING format('deactivated user %s (id %s)', username, id);
COMMIT;
