-- Registers a machine client (an app client with the client-credentials grant) as a principal:
-- its access tokens (sub = the client id, no username) act as NAME, which owns what they
-- create. Managed afterwards by name like a user (deactivate_user.sql, reactivate_user.sql,
-- revoke_tokens.sql, delete_user.sql -v username=NAME); list_users.sql shows it as a client.
--
--   psql "$ADMIN_URL" -v client_id=1example23456789 -v name=reporting-job -f sql/admin/create_client.sql
--
-- A name or client id that is taken prints one ERROR line, changes nothing and exits non-zero.
\ir lib/settings.psql
\if :{?client_id}
\else
\set client_id ''
\endif
\if :{?name}
\else
\set name ''
\endif

BEGIN;
SELECT set_config('articles_admin.client_id', :'client_id', true),
       set_config('articles_admin.name', :'name', true) \gset articles_admin_
DO $$
DECLARE
  new_client text := current_setting('articles_admin.client_id');
  new_name   text := current_setting('articles_admin.name');
BEGIN
  IF new_client = '' THEN
    RAISE EXCEPTION 'a client id is required: -v client_id=ID (the app client''s id)';
  END IF;
  IF new_name = '' THEN
    RAISE EXCEPTION 'a name is required: -v name=NAME';
  END IF;
  IF EXISTS (SELECT FROM users WHERE username = new_name) THEN
    RAISE EXCEPTION 'a user or client named "%" already exists; nothing was changed', new_name;
  END IF;
  IF EXISTS (SELECT FROM users WHERE cognito_sub = new_client AND pool_id IS NULL) THEN
    RAISE EXCEPTION 'client id "%" is registered already; nothing was changed', new_client;
  END IF;
END
$$;
INSERT INTO users (username, cognito_sub, is_client) VALUES (:'name', :'client_id', true)
RETURNING format('created client %s (id %s, client id %s)', username, id, cognito_sub);
COMMIT;
