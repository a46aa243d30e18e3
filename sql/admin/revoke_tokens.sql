-- Revokes every token of a user issued up to now: tokens whose iat is at or before this
-- moment, in whole seconds (so one minted in the same second is refused too), are refused
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
RETURNING format('revoked the tokens of user %s (id %s) issued up to %s', username, id, tokens_valid_after);
COMMIT;
