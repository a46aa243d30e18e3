-- Creates a user of the API. The first valid Cognito token with this email (any case, verified)
-- of the user's pool binds the row to that Cognito account: the worker's own pool
-- (AWS_USER_POOLS_ID), or with pool_id a pool trusted with trust_pool.sql. A token or a
-- provisioning event of any other pool never binds it.
--
--   psql "$ADMIN_URL" -v username=alice -v email=alice@example.com [-v pool_id=eu-west-1_AbC123] \
--        -f sql/admin/create_user.sql
--
-- A username or email that is taken prints one ERROR line, changes nothing and exits non-zero.
\ir lib/settings.psql
\if :{?username}
\else
\set username ''
\endif
\if :{?email}
\else
\set email ''
\endif
\if :{?pool_id}
\else
\set pool_id ''
\endif

BEGIN;
SELECT set_config('articles_admin.username', :'username', true),
       set_config('articles_admin.email', :'email', true), set_config('articles_admin.pool_id', :'pool_id', true) \gset articles_admin_
DO $$
DECLARE
  new_username text := current_setting('articles_admin.username');
  new_email    text := current_setting('articles_admin.email');
BEGIN
  IF new_username = '' THEN
    RAISE EXCEPTION 'a username is required: -v username=NAME';
  END IF;
  IF new_email !~ '^[^@[:space:]]+@[^@[:space:]]+$' THEN
    RAISE EXCEPTION 'a valid email is required: -v email=ADDRESS (got "%")', new_email;
  END IF;
  IF current_setting('articles_admin.pool_id') !~ '^([a-z0-9-]+_[A-Za-z0-9]+)?$' THEN
    RAISE EXCEPTION 'pool_id must be a user pool id, e.g. eu-west-1_AbC123 (got "%")', current_setting('articles_admin.pool_id');
  END IF;
  IF EXISTS (SELECT FROM users WHERE username = new_username) THEN
    RAISE EXCEPTION 'a user named "%" already exists; nothing was changed', new_username;
  END IF;
  IF EXISTS (SELECT FROM users WHERE lower(email) = lower(new_email)) THEN
    RAISE EXCEPTION 'a user with email "%" already exists; nothing was changed', new_email;
  END IF;
END
$$;
INSERT INTO users (username, email, pool_id) VALUES (:'username', :'email', nullif(:'pool_id', ''))
RETURNING format('created user %s (id %s, email %s%s)', username, id, email, ', pool ' || pool_id);
COMMIT;
