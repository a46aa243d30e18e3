-- Deletes a user. A user who owns articles is deleted only when the articles go to another user:
--
--   psql "$ADMIN_URL" -v username=alice -f sql/admin/delete_user.sql
--   psql "$ADMIN_URL" -v username=alice -v reassign_to=bob -f sql/admin/delete_user.sql
--
-- Without reassign_to, a user who owns articles is not deleted (ERROR, nothing changed).
\ir lib/settings.psql
\if :{?username}
\else
\set username ''
\endif
\if :{?reassign_to}
\else
\set reassign_to ''
\endif

BEGIN;
SELECT set_config('articles_admin.username', :'username', true),
       set_config('articles_admin.reassign_to', :'reassign_to', true) \gset articles_admin_
DO $$
DECLARE
  doomed   users%ROWTYPE;
  heir     users%ROWTYPE;
  heir_name text := current_setting('articles_admin.reassign_to');
  owned    bigint;
BEGIN
  SELECT * INTO doomed FROM users WHERE username = current_setting('articles_admin.username') FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no user named "%"', current_setting('articles_admin.username');
  END IF;
  SELECT count(*) INTO owned FROM articles WHERE owner_id = doomed.id;
  IF heir_name <> '' THEN
    SELECT * INTO heir FROM users WHERE username = heir_name;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'no user named "%" to reassign the articles to; nothing was changed', heir_name;
    END IF;
    IF heir.id = doomed.id THEN
      RAISE EXCEPTION 'reassign_to must name another user; nothing was changed';
    END IF;
  ELSIF owned > 0 THEN
    RAISE EXCEPTION 'user "%" owns % article(s); pass -v reassign_to=USERNAME to give them to another user; nothing was changed',
      doomed.username, owned;
  END IF;
END
$$;
WITH doomed AS (
  SELECT id, username FROM users WHERE username = :'username'
), moved AS (
  UPDATE articles SET owner_id = (SELECT id FROM users WHERE username = :'reassign_to')
  WHERE owner_id = (SELECT id FROM doomed)
  RETURNING id
), gone AS (
  DELETE FROM users WHERE id = (SELECT id FROM doomed) RETURNING id, username
)
SELECT format('deleted user %s (id %s)', gone.username, gone.id)
       || CASE WHEN (SELECT count(*) FROM moved) > 0
               THEN format('; %s article(s) reassigned to %s', (SELECT count(*) FROM moved), :'reassign_to')
               ELSE '' END
FROM gone;
COMMIT;
