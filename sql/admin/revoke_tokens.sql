-- Revokes every token of a user from sign-ins up to now: tokens whose auth_time (the sign-in
-- they come from; iat for a token without one) is at or before this moment, in whole seconds
-- (so a sign-in in the same second is refused too), refreshed ones included, are refused
-- from the next request on, by every worker, also after a restart. The user signs in again
-- to get tokens that work.
--
--   psql "$ADMIN_URL" -v username=alice -f sql/admin/revoke_tokens.sql
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
UPDATE users SET tokens_valid_after = now() WHERE username = :'username'
RETURNING format('revoked the tokens of user %s (id %s) from sign-ins up to %s', username, id, tokens_valid_after);
COMMIT;
