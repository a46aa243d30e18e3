-- Creates a user of the API. The first valid Cognito token with this email (any case, verified)
-- binds the row to that Cognito account.
--
--   psql "$ADMIN_URL" -v username=alice -v email=alice@example.com -f sql/admin/create_user.sql
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

BEGIN;
SELECT set_config('articles_admin.username', :'username', true),
       set_config('articles_admin.email', :'email', true) \gset articles_admin_
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
  IF EXISTS (SELECT FROM users WHERE username = new_username) THEN
    RAISE EXCEPTION 'a user named "%" already exists; nothing was changed', new_username;
  END IF;
  IF EXISTS (SELECT FROM users WHERE lower(email) = lower(new_email)) THEN
    RAISE EXCEPTION 'a user with email "%" already exists; nothing was changed', new_email;
  END IF;
END
$$;
INSERT INTO users (username, email) VALUES (:'username', :'email')
RETURNING format('created user %s (id %s, email %s)', username, id, email);
COMMIT;
